"""A restore from the run cache flushes each restored file once, not twice.

The target's own ``temporary_path()`` already flushes what it moves into place (``fsync`` on),
so the copy out of the cache must not flush it again: on a busy disk each flush costs
milliseconds, and a restore flushed more often than the run it stands in for.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from pipelines import build

from luigi_repro import (
    HashableDirectoryTarget,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
    load_settings,
)


class RcpFsyncFile(TaskWithCheckingInputHash):
    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/file.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write("one file\n")


class RcpFsyncFolder(TaskWithCheckingInputHash):
    def output(self) -> HashableDirectoryTarget:
        return HashableDirectoryTarget("out/folder")

    def run(self) -> None:
        with self.output().temporary_path() as folder:
            for name in ("a.csv", "b.csv"):
                Path(folder, name).write_text(f"{name}\n")


def test_each_restored_file_is_flushed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE", str(tmp_path / "cache"))
    assert build(RcpFsyncFile(), RcpFsyncFolder())
    shutil.rmtree("out")

    flushed: Counter[str] = Counter()
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        flushed[os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))] += 1
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    assert build(RcpFsyncFile(), RcpFsyncFolder())

    settings = load_settings()
    for target in (RcpFsyncFile().output(), RcpFsyncFolder().output()):
        record = target.read_record(settings)
        assert record is not None
        assert record.run.restored_from is not None, target.path
    assert Path("out/folder/b.csv").read_text() == "b.csv\n"
    copies = {
        name: count
        for name, count in flushed.items()
        if name.startswith(("file.txt", "a.csv", "b.csv")) and "repro" not in name
    }
    assert sorted(copies.values()) == [1, 1, 1], flushed
