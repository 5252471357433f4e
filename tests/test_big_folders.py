"""Big folders: one file changed in place among thousands is found and named.

The warm check compares each file's stat with the stamp kept from the last check, so these
tests make sure nothing escapes that shortcut: an edit that keeps the size and puts the mtime
back still changes the ctime, and the verdict names the very file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from pipelines import build, status_of

from luigi_repro import (
    HashableDirectoryTarget,
    HashableExternalFile,
    HashableLocalTarget,
    ReasonKind,
    Status,
    TaskWithCheckingInputHash,
)

FILES = 3000
SUBFOLDERS = 30
WINDOW_S = 0.2


def _make(folder: str) -> None:
    for index in range(FILES):
        sub = os.path.join(folder, f"part-{index % SUBFOLDERS:02d}")
        os.makedirs(sub, exist_ok=True)
        Path(sub, f"file-{index:05d}.txt").write_text(f"row {index}\n")


def _edit_in_place(path: str) -> None:
    """Same size, same mtime: only the content (and the ctime) differ."""
    before = os.stat(path)
    data = Path(path).read_bytes()
    with open(path, "r+b") as stream:
        stream.write(data.upper())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size


class CountRows(TaskWithCheckingInputHash):
    """Reads a raw folder of thousands of files."""

    def requires(self) -> HashableExternalFile:
        return HashableExternalFile(os.path.abspath("raw"))

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("count.txt")

    def run(self) -> None:
        with self.output().open("w") as stream:
            stream.write(str(FILES))


class WriteParts(TaskWithCheckingInputHash):
    """Writes a folder output of thousands of files."""

    def output(self) -> HashableDirectoryTarget:
        return HashableDirectoryTarget("parts")

    def run(self) -> None:
        with self.output().temporary_path() as folder:
            _make(folder)


@pytest.fixture(autouse=True)
def _short_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", str(WINDOW_S))


def _settle() -> None:
    time.sleep(WINDOW_S * 2)


def test_an_input_file_changed_in_place_is_named() -> None:
    """Among 3000 raw files, the one rewritten in place is the one change reported."""
    _make("raw")
    _settle()
    assert build(CountRows())
    assert CountRows().complete()  # warm: the stat cache now vouches for every file
    changed = "part-07/file-01237.txt"
    _edit_in_place(os.path.join("raw", changed))
    verdict = status_of(CountRows())
    assert verdict.status is Status.STALE
    (reason,) = verdict.reasons
    assert reason.kind is ReasonKind.INPUT_CHANGED
    assert reason.evidence["changed"] == [changed]
    assert reason.evidence["added"] == reason.evidence["removed"] == []


def test_an_output_file_changed_in_place_is_caught_and_unchanged_output_stays_complete() -> None:
    """The record's stamps vouch for an untouched folder; a file edited in place is caught."""
    assert build(WriteParts())
    _settle()
    assert WriteParts().complete()
    assert WriteParts().complete()
    record = json.loads(Path("parts.repro.json").read_text())
    (output,) = record["outputs"]
    assert len(output["manifest"]) == FILES
    assert len(output["state"]["stamps"]) == FILES  # compact: one list of integers per file
    _edit_in_place(os.path.join("parts", "part-11/file-00011.txt"))
    verdict = status_of(WriteParts())
    assert verdict.status is Status.OUTPUT_MODIFIED
    assert [reason.kind for reason in verdict.reasons] == [ReasonKind.OUTPUT_MODIFIED]
    assert "part-11/file-00011.txt" in json.dumps(verdict.reasons[0].evidence)
