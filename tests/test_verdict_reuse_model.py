"""Remembered verdicts against the reference, over random sequences of what users do.

After every step (an edit, a rebuild, a hand-made change, a wait past the racy window), each
task's ``complete()`` — which reuses remembered verdicts — must equal the verdict of a judge
that remembers nothing and reads everything again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipelines import (
    Clean,
    CountParts,
    Merge,
    Partitioned,
    Report,
    build,
    from_scratch,
    make_raw,
    write_raw,
)


def _edit_raw_same_size() -> None:
    write_raw("a", "HELLO\n" if Path("raw/a.txt").read_text() == "Hello\n" else "Hello\n")


def _edit_raw_other_size() -> None:
    write_raw("b", "World!\n" if Path("raw/b.txt").read_text() == "World\n" else "World\n")


def _touch_raw() -> None:
    os.utime("raw/b.txt")  # new times, same content


def _edit_output_keeping_times() -> None:
    path = Path("out/merged.txt")
    if path.exists():
        before = os.stat(path)
        path.write_text(path.read_text().swapcase())
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _remove_a_record() -> None:
    Path("out/clean_b.txt.repro.json").unlink(missing_ok=True)


def _corrupt_a_record() -> None:
    path = Path("out/report.txt.repro.json")
    if path.exists():
        path.write_text("{")


def _remove_an_output() -> None:
    Path("out/clean_a.txt").unlink(missing_ok=True)


def _edit_a_file_inside_a_folder_output() -> None:
    parts = sorted(Path("out/parts").glob("part-*.txt"))
    if parts:
        parts[0].write_text(parts[0].read_text().swapcase())


def _add_a_file_to_a_folder_output() -> None:
    if Path("out/parts").is_dir():
        Path("out/parts/extra.txt").write_text("extra\n")


def _rebuild() -> None:
    assert build(Report(), CountParts())


def _wait_past_the_racy_window() -> None:
    time.sleep(0.06)


def _toggle_code_version() -> None:
    if "code_version" in Merge.__dict__:
        del Merge.code_version
    else:
        Merge.code_version = "2"


def _in_another_process(code: str) -> Callable[[], None]:
    """The same kind of change, made by another process (no call of this one sees it made)."""

    def step() -> None:
        subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=60)

    return step


_OTHER_PROCESS_STEPS = {
    "another process edits raw (same size)": """
        from pathlib import Path
        path = Path("raw/a.txt")
        path.write_text("HELLO\\n" if path.read_text() == "Hello\\n" else "Hello\\n")
    """,
    "another process edits an output, times kept": """
        import os
        from pathlib import Path
        path = Path("out/merged.txt")
        if path.exists():
            before = os.stat(path)
            path.write_text(path.read_text().swapcase())
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    """,
    "another process removes a record": """
        from pathlib import Path
        Path("out/clean_b.txt.repro.json").unlink(missing_ok=True)
    """,
    "another process replaces the raw folder": """
        import os, shutil
        shutil.copytree("raw", "raw-new")
        with open("raw-new/b.txt", "w") as sink:
            sink.write("Replaced\\n")
        os.rename("raw", "raw-old")
        os.rename("raw-new", "raw")
        shutil.rmtree("raw-old")
    """,
}

STEPS: Dict[str, Callable[[], None]] = {
    **{name: _in_another_process(code) for name, code in _OTHER_PROCESS_STEPS.items()},
    "edit raw (same size)": _edit_raw_same_size,
    "edit raw (other size)": _edit_raw_other_size,
    "touch raw": _touch_raw,
    "edit output, times kept": _edit_output_keeping_times,
    "remove a record": _remove_a_record,
    "corrupt a record": _corrupt_a_record,
    "remove an output": _remove_an_output,
    "edit a file inside a folder output": _edit_a_file_inside_a_folder_output,
    "add a file to a folder output": _add_a_file_to_a_folder_output,
    "rebuild": _rebuild,
    "wait past the racy window": _wait_past_the_racy_window,
    "toggle code_version": _toggle_code_version,
}


@pytest.fixture(params=["watched", "replayed by stat"])
def short_racy_window(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Remembered verdicts kept honest by file-change events, or by replaying them by stat."""
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", "0.05")
    if request.param != "watched":
        monkeypatch.setenv("LUIGI_REPRO_WATCH_CHANGES", "false")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=8))
def test_remembered_verdicts_always_agree_with_a_fresh_judge(
    short_racy_window: None, steps: List[str]
) -> None:
    folder = Path(f"example-{uuid.uuid4().hex[:8]}")
    folder.mkdir()
    home = os.getcwd()
    os.chdir(folder)
    try:
        make_raw()
        assert build(Report(), CountParts())
        for step in steps:
            STEPS[step]()
            for task in (Report(), Merge(), Clean("a"), Clean("b"), Partitioned(), CountParts()):
                assert task.complete() == from_scratch(task), (step, steps, task)
    finally:
        os.chdir(home)
        if "code_version" in Merge.__dict__:
            del Merge.code_version
