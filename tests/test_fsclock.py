"""The racy rule reads the file system's clock, not only this host's.

A file server stamps files with its own clock. When this host's clock runs ahead of it, a file
just written looks old, its fingerprint would be trusted at once, and an edit within the
server's timestamp granularity (same size, same second) would go unseen.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from pipelines import Clean, build, from_scratch, make_raw, runs, write_raw

from luigi_repro import fsclock

AHEAD_NS = 10 * 1_000_000_000


@pytest.fixture(autouse=True)
def _fresh_clocks() -> Iterator[None]:
    fsclock.forget_clocks()
    yield
    fsclock.forget_clocks()


def _coarse(st: os.stat_result) -> os.stat_result:
    """``st`` as a file system with one-second timestamps reports it."""
    whole = {n: getattr(st, n) // 10**9 * 10**9 for n in ("st_mtime_ns", "st_ctime_ns")}
    extra = {
        name: getattr(st, name)
        for name in ("st_atime", "st_atime_ns", "st_blksize", "st_blocks", "st_rdev")
    }
    extra.update(whole)
    extra["st_mtime"] = float(whole["st_mtime_ns"] // 10**9)
    extra["st_ctime"] = float(whole["st_ctime_ns"] // 10**9)
    fields = list(st)
    fields[8], fields[9] = whole["st_mtime_ns"] // 10**9, whole["st_ctime_ns"] // 10**9
    return os.stat_result(fields, extra)


def _play_a_file_server_behind_this_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """One-second timestamps from a server whose clock is 10 s behind this host's."""
    real_time_ns, real_stat, real_fstat = time.time_ns, os.stat, os.fstat

    def coarse_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        return _coarse(real_stat(path, *args, **kwargs))

    def coarse_fstat(fd: int) -> os.stat_result:
        return _coarse(real_fstat(fd))

    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + AHEAD_NS)
    monkeypatch.setattr(os, "stat", coarse_stat)
    monkeypatch.setattr(os, "fstat", coarse_fstat)
    monkeypatch.setattr(fsclock, "LOCAL_TYPES", frozenset())  # as for an NFS mount


def _start_of_a_second() -> None:
    fraction = time.time() % 1
    if fraction > 0.2:
        time.sleep(1.02 - fraction)


def test_a_same_second_edit_on_a_lagging_file_server_is_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Host clock 10 s ahead, 1 s timestamps: a same-size edit in the second of the build makes
    the task stale (the host clock alone would have trusted the fingerprint at once)."""
    _play_a_file_server_behind_this_host(monkeypatch)
    for _ in range(5):
        _start_of_a_second()
        make_raw()
        assert build(Clean("a"))
        before = os.stat("raw/a.txt")
        write_raw("a", "Jello\n")  # same size as "Hello\n"
        after = os.stat("raw/a.txt")
        if (before.st_mtime_ns, before.st_ctime_ns) == (after.st_mtime_ns, after.st_ctime_ns):
            break  # the edit left the stat as it was: the case under test
        Path("out/clean_a.txt.repro.json").unlink()  # a second boundary passed: try again
    else:
        pytest.skip("could not build and edit within one second on this machine")
    assert Clean("a").complete() is False
    assert from_scratch(Clean("a")) is False
    runs()
    assert build(Clean("a"))
    assert Path("out/clean_a.txt").read_text() == "jello\n"


def test_a_local_file_system_uses_the_host_clock_and_writes_nothing() -> None:
    """On ext4/tmpfs/overlay the kernel stamps files with the host clock: no probe file."""
    Path("data.txt").write_text("x")
    dev = os.stat("data.txt").st_dev
    assert fsclock.filesystem_type(dev) in fsclock.LOCAL_TYPES | {"unknown-host-clock"}
    before = time.time_ns()
    now = fsclock.fs_now_ns("data.txt", dev)
    assert before <= now <= time.time_ns()
    assert sorted(os.listdir(".")) == ["data.txt"]


def test_another_file_system_is_read_from_a_probe_file_that_is_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Elsewhere the clock is read from a file created on it; the estimate errs early, never
    late, and the probe is gone afterwards."""
    monkeypatch.setattr(fsclock, "LOCAL_TYPES", frozenset())
    real_time_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + AHEAD_NS)
    Path("folder").mkdir()
    Path("folder/data.txt").write_text("x")
    dev = os.stat("folder/data.txt").st_dev
    now = fsclock.fs_now_ns("folder/data.txt", dev)
    assert now <= real_time_ns()  # the server's "now", not the host's 10 s ahead
    assert now > real_time_ns() - 1_000_000_000
    assert os.listdir("folder") == ["data.txt"]


def test_a_read_only_folder_falls_back_to_the_host_clock_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where no folder on the file system is writable, the host clock is used, said once."""
    monkeypatch.setattr(fsclock, "LOCAL_TYPES", frozenset())
    monkeypatch.setattr(fsclock, "_probe", lambda folder, dev: None)
    Path("data.txt").write_text("x")
    dev = os.stat("data.txt").st_dev
    with caplog.at_level("WARNING"):
        before = time.time_ns()
        assert fsclock.fs_now_ns("data.txt", dev) >= before
        fsclock.fs_now_ns("data.txt", dev)
    warnings = [r for r in caplog.records if "clock of the file system" in r.getMessage()]
    assert len(warnings) == 1


def test_the_clock_is_read_beside_the_file_a_symlink_leads_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A symlink may sit on another file system than its file: the probe goes beside the file."""
    monkeypatch.setattr(fsclock, "LOCAL_TYPES", frozenset())
    tried = []
    real_probe = fsclock._probe

    def spy(folder: str, dev: int) -> Any:
        tried.append(folder)
        return real_probe(folder, dev)

    monkeypatch.setattr(fsclock, "_probe", spy)
    Path("real").mkdir()
    Path("links").mkdir()
    Path("real/data.txt").write_text("x")
    os.symlink(os.path.abspath("real/data.txt"), "links/data.txt")
    fsclock.fs_now_ns("links/data.txt", os.stat("links/data.txt").st_dev)
    assert tried[0] == os.path.abspath("real")
