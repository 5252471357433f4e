"""The run cache across processes and "hosts": separate checkouts, ``luigid``, forked workers.

Each checkout is its own folder (its outputs at other absolute paths), every build a separate
``luigi`` process talking to a real central scheduler on 127.0.0.1 with two forked workers. What
one checkout computed, another restores; two checkouts computing the same actions at once leave
one whole entry per action.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from processes import LoggedProcess

from luigi_repro.runcacheentry import parse_entry

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[object]:
    from servers import Luigid

    server = Luigid(tmp_path / "luigid").start()
    yield server
    server.stop()


def checkout(root: Path, name: str) -> Path:
    folder = root / name
    (folder / "raw").mkdir(parents=True)
    (folder / "raw" / "a.txt").write_text("alpha\nbeta\ngamma\n")
    return folder


def build_in(folder: Path, env: Dict[str, str], port: int, factor: int) -> LoggedProcess:
    command = [
        sys.executable,
        "-m",
        "luigi",
        "--module",
        "runcachepipeline",
        "RcCount",
        "--factor",
        str(factor),
        "--scheduler-host",
        "127.0.0.1",
        "--scheduler-port",
        str(port),
        "--workers",
        "2",
        "--no-lock",
        "--log-level",
        "INFO",
    ]
    here = os.getcwd()
    os.chdir(folder)  # the child starts in its checkout
    try:
        return LoggedProcess(command, folder / f"build-{factor}.log", env)
    finally:
        os.chdir(here)


def ran(folder: Path) -> List[str]:
    log = folder / "runs.log"
    return sorted(log.read_text().split()) if log.exists() else []


def test_a_teammates_checkout_restores_what_another_computed(
    tmp_path: Path, luigid: object
) -> None:
    """Checkout A computes factor 1 and 2 through luigid; checkout B (elsewhere) then builds
    both without computing anything, byte for byte the same."""
    port = luigid.port  # type: ignore[attr-defined]
    env = dict(os.environ, LUIGI_REPRO_RUN_CACHE=str(tmp_path / "team-cache"))
    first, second = checkout(tmp_path, "alice"), checkout(tmp_path, "bob")
    for factor in (1, 2):
        build_in(first, env, port, factor).finish()
    assert len(ran(first)) == 4
    for factor in (1, 2):  # ends where alice ended: factor 2
        process = build_in(second, env, port, factor)
        process.finish()
        assert "restored from run cache" in process.output()
    assert ran(second) == [], "bob's builds computed nothing"
    for name in ("scaled.txt", "count.txt"):
        assert (second / "out" / name).read_bytes() == (first / "out" / name).read_bytes()
    record = json.loads((second / "out" / "count.txt.repro.json").read_text())
    assert record["outputs"][0]["uri"] == str(second / "out" / "count.txt")
    assert record["run"]["restored_from"]["host"]


def test_checkouts_computing_at_once_leave_one_whole_entry_per_action(
    tmp_path: Path, luigid: object
) -> None:
    """Three checkouts build the same action at the same moment: each succeeds, each action
    has exactly one entry, and it parses and restores."""
    port = luigid.port  # type: ignore[attr-defined]
    cache = tmp_path / "team-cache"
    env = dict(os.environ, LUIGI_REPRO_RUN_CACHE=str(cache), PIPELINE_SLEEP="0.3")
    folders = [checkout(tmp_path, f"host{n}") for n in range(3)]
    processes = [build_in(folder, env, port, 3) for folder in folders]
    for process in processes:
        process.finish()
    stored = sorted((cache / "entries").rglob("*.json"))
    families = sorted(json.loads(p.read_bytes())["task"]["family"] for p in stored)
    assert families == ["RcCount", "RcScale"]
    for path in stored:
        assert parse_entry(path.read_bytes(), None).outputs
    assert not any((cache / "tmp").iterdir())
    late = checkout(tmp_path, "late")
    process = build_in(late, dict(env, PIPELINE_SLEEP="0"), port, 3)
    process.finish()
    assert ran(late) == []
    shutil.rmtree(late)
