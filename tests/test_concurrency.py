"""Several processes building the same pipeline in the same folder at the same time."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List

import pytest
from pipelines import Report, families, make_raw, runs, write_raw
from processes import LoggedProcess

from luigi_repro.record import parse_record

TESTS = Path(__file__).resolve().parent


def start_builds(count: int, workers: int, sleep: float) -> List[LoggedProcess]:
    env = dict(os.environ, PIPELINE_SLEEP=str(sleep))
    command = [sys.executable, str(TESTS / "pipelines.py"), str(workers)]
    logs = Path("..")
    return [LoggedProcess(command, logs / f"build{index}.log", env) for index in range(count)]


def finish(processes: List[LoggedProcess]) -> None:
    for process in processes:
        process.finish(timeout=120)


def assert_records_valid() -> None:
    for path in Path("out").glob("*.txt"):
        parse_record(Path(str(path) + ".repro.json").read_bytes(), str(path))
    assert not list(Path("out").glob("*repro-tmp*"))


@pytest.mark.parametrize("workers", [1, 2])
def test_two_processes_run_every_task_once(workers: int) -> None:
    """Two builds racing on one folder: both succeed, each task runs once, records are valid."""
    make_raw()
    finish(start_builds(2, workers, sleep=0.3))
    assert families(runs()) == ["Clean", "Clean", "Merge", "Report"]
    assert_records_valid()
    assert Report().complete()


def test_racing_rebuild_after_an_edit_reruns_the_chain_once() -> None:
    """After a raw edit, two racing rebuilds rerun exactly the stale chain, once."""
    make_raw()
    finish(start_builds(1, 1, sleep=0))
    runs()
    write_raw("a", "Edited\n")
    finish(start_builds(2, 1, sleep=0.2))
    assert families(runs()) == ["Clean", "Merge", "Report"]
    assert_records_valid()
    assert Report().complete()
