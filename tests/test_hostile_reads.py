"""Whatever sits where a record belongs, or at a location a record names, a check never blocks,
never reads a pipe, device or kernel pseudo-file, never spends memory out of proportion to the
record, and never reads for a record's writer what that writer could not read: it answers
"not complete" with the reason."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Callable, Iterator

import attrs
import luigi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipelines import (
    Clean,
    CountParts,
    Merge,
    Report,
    build,
    edit_record_inputs,
    failure_of,
    make_raw,
    runs,
    status_of,
)

from luigi_repro import audit_paths
from luigi_repro.cli import main
from luigi_repro.errors import RecordError, RecordRefused
from luigi_repro.fsclock import filesystem_type
from luigi_repro.plainfiles import refusal_at
from luigi_repro.record import (
    DEFAULT_MAX_RECORD_BYTES,
    PARSE_MEMORY_MULTIPLE,
    InputEntry,
    estimated_parse_bytes,
    parse_record,
)

RECORD = Path("out/merged.txt.repro.json")
#: Longest a check may take on any hostile shape (a blocked read would take for ever).
PROMPT = 2.0


@pytest.fixture
def built() -> None:
    """The example pipeline built once."""
    make_raw()
    assert build(Report())
    runs()


@pytest.fixture
def pipe_writer() -> Iterator[Callable[[str], None]]:
    """Makes FIFOs and, after the test, releases any reader a bug left blocked on them."""
    made = []

    def make(path: str) -> None:
        os.mkfifo(path)
        made.append(path)

    yield make
    for path in made:
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def peak_memory_of(check: Callable[[], object]) -> int:
    """Peak bytes allocated by ``check`` after one warm-up run on the genuine record (the first
    check of a process also fingerprints the code)."""
    tracemalloc.start()
    try:
        check()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def refused_promptly(expected: str) -> str:
    """Merge's verdict, decided within PROMPT seconds: not complete, with ``expected`` in a
    reason; returns the reasons' text."""
    started = time.monotonic()
    assert Merge().complete() is False
    reasons = " | ".join(reason.message for reason in status_of(Merge()).reasons)
    assert time.monotonic() - started < PROMPT
    assert expected in reasons
    return reasons


def verify_says(expected: str, path: str = "out/merged.txt") -> str:
    """``verify PATH`` exits 1 within PROMPT seconds and names ``expected``; returns its text."""
    started = time.monotonic()
    assert main(["verify", path]) == 1
    report = audit_paths([path])
    assert time.monotonic() - started < PROMPT
    text = " | ".join(r.message for node in report.tasks.values() for r in node.reasons)
    assert expected in text
    return text


def name_as_inputs(uri: str, dynamic: bool = False) -> None:
    """Rewrite Merge's record so that each input names ``uri`` (as a hostile record would)."""

    def edit(entry: InputEntry) -> InputEntry:
        if not dynamic:
            return attrs.evolve(entry, uri=uri)
        return attrs.evolve(
            entry,
            uri=uri,
            dynamic=True,
            task_id=None,
            task_family=None,
            task_module=None,
            task_params=None,
        )

    edit_record_inputs("out/merged.txt", edit)


# --- the record itself --------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_a_fifo_record_is_refused(built: None, pipe_writer: Callable[[str], None]) -> None:
    """A named pipe where the record belongs is refused unread, by complete() and verify."""
    RECORD.unlink()
    pipe_writer(str(RECORD))
    refused_promptly("named pipe (FIFO)")
    verify_says("named pipe (FIFO)")


@pytest.mark.timeout(10)
def test_a_record_linked_to_dev_zero_is_refused(built: None) -> None:
    """A record symlinked to /dev/zero is refused as a device, without reading a byte."""
    assert status_of(Merge()).ok
    RECORD.unlink()
    RECORD.symlink_to("/dev/zero")
    assert peak_memory_of(lambda: refused_promptly("character device")) < 4 * 1024 * 1024


@pytest.mark.timeout(10)
def test_an_oversized_record_is_refused_unread(built: None) -> None:
    """An 83 MiB (sparse) record is refused by its size, costing no memory for its content."""
    assert status_of(Merge()).ok
    with RECORD.open("r+b") as stream:
        stream.truncate(83 * 1024 * 1024)
    expected = "is 83 MiB, above max_record_bytes (16 MiB)"
    assert peak_memory_of(lambda: refused_promptly(expected)) < 4 * 1024 * 1024
    verify_says("above max_record_bytes")


def test_max_record_bytes_comes_from_the_environment(
    built: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LUIGI_REPRO_MAX_RECORD_BYTES lowers the cap: the genuine record is then too big."""
    size = RECORD.stat().st_size
    assert size > 1024
    monkeypatch.setenv("LUIGI_REPRO_MAX_RECORD_BYTES", "1KiB")
    refused_promptly("above max_record_bytes (1 KiB)")
    monkeypatch.setenv("LUIGI_REPRO_MAX_RECORD_BYTES", "1 MiB")
    assert Merge().complete() is True


def test_a_run_whose_record_would_be_refused_fails_saying_what_to_raise(
    built: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record above the cap is never written (every reader would refuse it and downstream
    would fail obscurely): the run fails naming the size that would do."""
    before = Path("out/clean_a.txt.repro.json").read_bytes()
    monkeypatch.setenv("LUIGI_REPRO_MAX_RECORD_BYTES", "1KiB")
    Path("raw/a.txt").write_text("changed\n")
    error = failure_of(Clean(name="a"))
    assert isinstance(error, RecordRefused)
    assert "raise max_record_bytes to at least" in str(error)
    assert not Path("out/clean_a.txt.repro.json").exists()
    monkeypatch.delenv("LUIGI_REPRO_MAX_RECORD_BYTES")
    assert build(Report())
    assert Path("out/clean_a.txt.repro.json").read_bytes() != before


def test_a_deeply_nested_record_is_refused(built: None) -> None:
    """A record whose parameters nest 100 deep is refused as too deeply nested."""
    doc = json.loads(RECORD.read_bytes())
    nested: object = 0
    for _ in range(100):
        nested = [nested]
    doc["task"]["params"]["deep"] = nested
    RECORD.write_text(json.dumps(doc))
    refused_promptly("nested more than 64 deep")
    RECORD.write_bytes(b"[" * 1_000_000 + b"]" * 1_000_000)
    refused_promptly("nested too deeply")


@pytest.mark.parametrize(
    ("unit", "count"),
    [(b"[]", 2_000_000), (b"{}", 2_000_000), (b"1", 6_000_000), (b'"ab"', 3_000_000)],
)
def test_records_of_many_small_values_are_refused_before_parsing(unit: bytes, count: int) -> None:
    """Lists, objects or values packed far denser than any record, within the size cap, are
    refused from a count of their bytes, before parsing turns them into over 20 times the cap."""
    data = b"[" + b",".join([unit] * count) + b"]"
    assert len(data) < DEFAULT_MAX_RECORD_BYTES
    tracemalloc.start()
    try:
        with pytest.raises(RecordError, match=r"would take about .* of memory"):
            parse_record(data, "r")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(data)


def _densest_lists_allowed(cap: int) -> bytes:
    """``[[],[],…]``, as many as the parse-memory budget of ``cap`` lets through."""
    per_list = estimated_parse_bytes(b"[[],[]]") - estimated_parse_bytes(b"[[]]")
    count = PARSE_MEMORY_MULTIPLE * cap // per_list - 16
    data = b"[" + b",".join([b"[]"] * count) + b"]"
    assert estimated_parse_bytes(data) <= PARSE_MEMORY_MULTIPLE * cap
    return data


def test_parsing_costs_a_bounded_multiple_of_the_cap() -> None:
    """The densest list shape the budget lets through costs at most 20 times the cap to parse,
    and twice the cap lets through about twice as much (linear, not worse)."""
    peaks = []
    for cap in (1 << 20, 2 << 20):
        data = _densest_lists_allowed(cap)
        tracemalloc.start()
        try:
            with pytest.raises(RecordError, match="must be an object"):
                parse_record(data, "r", None, cap)
            peaks.append(tracemalloc.get_traced_memory()[1] / cap)
        finally:
            tracemalloc.stop()
    assert max(peaks) <= PARSE_MEMORY_MULTIPLE
    assert peaks[1] < peaks[0] * 1.2


# --- what a record names ------------------------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic", "plain"])
def test_a_record_naming_proc_pagemap_is_refused(built: None, dynamic: bool) -> None:
    """/proc/self/pagemap (256 TiB that never end) named as an input is reported, not read."""
    name_as_inputs("/proc/self/pagemap", dynamic)
    if dynamic:
        refused_promptly("(/proc/self/pagemap) is a pseudo-file of the system (on a proc")
    verify_says("input /proc/self/pagemap is a pseudo-file of the system (on a proc")


@pytest.mark.timeout(10)
def test_a_record_naming_proc_kmsg_is_refused(built: None) -> None:
    """/proc/kmsg (a read waits for the kernel to log) is reported, not read."""
    name_as_inputs("/proc/kmsg")
    verify_says("/proc/kmsg is a pseudo-file of the system (on a proc file system)")


@pytest.mark.timeout(10)
def test_a_fifo_and_a_device_named_as_inputs_are_refused(
    built: None, pipe_writer: Callable[[str], None]
) -> None:
    """A FIFO and a device named as inputs are reported with their kind, never opened to read."""
    pipe_writer("raw/pipe")
    name_as_inputs(os.path.abspath("raw/pipe"), dynamic=True)
    refused_promptly("is a named pipe (FIFO), not a regular file; not read")
    verify_says("is a named pipe (FIFO)")
    name_as_inputs("/dev/zero", dynamic=True)
    refused_promptly("(/dev/zero) is a character device, not a regular file; not read")


def test_kernel_file_systems_are_told_by_device_not_by_path() -> None:
    """/proc is refused for its file system type; a data file system under /dev is not."""
    assert filesystem_type(os.stat("/proc/self").st_dev) == "proc"
    assert refusal_at("/proc/self/status") is not None
    shm = Path("/dev/shm")
    if not shm.is_dir() or filesystem_type(shm.stat().st_dev) != "tmpfs":
        pytest.skip("needs /dev/shm on tmpfs")
    probe = shm / f"luigi_repro-{os.getpid()}"
    probe.write_text("data")
    try:
        assert refusal_at(str(probe)) is None
    finally:
        probe.unlink()


@pytest.mark.timeout(10)
def test_links_inside_a_named_folder_are_described_never_followed(
    built: None, pipe_writer: Callable[[str], None]
) -> None:
    """A symlink loop, a link to /proc and a FIFO inside a folder input end the walk promptly:
    the folder has changed, and nothing of /proc was read."""
    make_raw()
    assert build(CountParts())
    runs()
    os.symlink("loop", "out/parts/loop")
    os.symlink("/proc", "out/parts/proc")
    pipe_writer("out/parts/pipe")
    started = time.monotonic()
    report = audit_paths(["out/count.txt"])
    assert time.monotonic() - started < PROMPT
    assert not report.ok
    assert CountParts().complete() is False


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A folder every user can reach (pytest's own are root-only); root only, since only root
    can plant a record owned by another user."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only root can plant a record owned by another user")
    folder = Path(tempfile.mkdtemp(prefix="luigi-repro-reachable-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as stream:
        stream.truncate(size)
    path.chmod(0o644)
    return path


@pytest.mark.timeout(10)
@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic", "plain"])
def test_another_users_record_naming_a_huge_sparse_file_is_answered_at_once(
    built: None, dynamic: bool, reachable: Path
) -> None:
    """A 15 TiB file of holes (free to make, hours to hash) named by another user's record is
    reported as hollow, not read."""
    hollow = _sparse(reachable / "hollow.bin", 15 << 40)
    name_as_inputs(str(hollow), dynamic)
    os.chown(RECORD, 65534, 65534)
    expected = "is a sparse file of 15.0 TiB holding 0 bytes of data"
    if dynamic:
        refused_promptly(expected)
    verify_says(expected)


@pytest.mark.timeout(20)
def test_a_folder_of_many_sparse_files_counts_as_one_hollow_location(
    built: None, reachable: Path
) -> None:
    """Eight files of 1 GiB less one byte, all holes, in a folder another user's record names:
    each is under the size of a hollow file, together they are refused."""
    folder = reachable / "parts"
    folder.mkdir()
    folder.chmod(0o755)
    for index in range(8):
        _sparse(folder / f"part-{index}", (1 << 30) - 1)
    name_as_inputs(str(folder))
    os.chown(RECORD, 65534, 65534)
    verify_says("and the files read with it are sparse")


def test_our_own_record_naming_a_sparse_file_reads_it(
    built: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Our own records are trusted as far as sparse files go: a dynamic dependency that makes a
    sparse disk image is read as data (the hollow rule would rerun it on every build)."""
    from luigi_repro import writerrights

    monkeypatch.setattr(writerrights, "HOLLOW_MIN_BYTES", 1 << 20)
    image = _sparse(tmp_path / "image.bin", 8 << 20)
    name_as_inputs(str(image))
    text = verify_says(f"input {image} changed")
    assert "sparse" not in text


def test_a_sparse_file_declared_by_code_is_read(
    built: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hollow-file rule only guards locations records name: a raw input declared in
    requires() is fingerprinted whatever its shape."""
    from luigi_repro import writerrights

    monkeypatch.setattr(writerrights, "HOLLOW_MIN_BYTES", 1 << 20)
    with open("raw/a.txt", "r+b") as stream:
        stream.truncate(8 << 20)
    assert not Merge().complete()
    assert build(Report())
    assert Merge().complete()


@pytest.mark.timeout(10)
def test_a_record_by_another_user_cannot_make_root_read_what_they_cannot(
    built: None, tmp_path: Path
) -> None:
    """A record owned by nobody naming a root-only file: reported as unreadable by its writer,
    its fingerprint never taken; the same record owned by root reads and compares it."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only root can plant a record owned by another user")
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$hash\n")
    secret.chmod(0o600)
    name_as_inputs(str(secret))
    os.chown(RECORD, 65534, 65534)
    text = verify_says("is not readable by the record's writer (uid 65534); not read")
    assert "->" not in text  # no fingerprint of the secret was shown
    name_as_inputs(str(secret), dynamic=True)
    os.chown(RECORD, 65534, 65534)
    refused_promptly("not readable by the record's writer (uid 65534)")
    os.chown(RECORD, 0, 0)
    name_as_inputs(str(secret))
    verify_says(f"input {secret} changed")


# --- the record's shape on disk, fuzzed ---------------------------------------------------------

SHAPES = ["fifo", "loop", "device", "huge", "folder", "empty", "dangling"]


def _clear(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.is_symlink() or path.exists():
        path.unlink()


def _plant(shape: str, path: Path, size: int) -> None:
    """Put a hostile ``shape`` where the record belongs."""
    _clear(path)
    if shape == "fifo":
        os.mkfifo(path)
    elif shape == "loop":
        path.symlink_to(path.name)
    elif shape == "device":
        path.symlink_to("/dev/zero")
    elif shape == "huge":
        with path.open("wb") as stream:
            stream.truncate(size)
    elif shape == "folder":
        path.mkdir()
    elif shape == "empty":
        path.write_bytes(b"")
    else:
        path.symlink_to("no-such-record")


@pytest.mark.timeout(60)
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shape=st.sampled_from(SHAPES),
    size=st.integers(min_value=16 * 1024 * 1024 + 1, max_value=1 << 40),
)
def test_any_shape_at_the_record_place_is_refused_promptly(
    built: None, shape: str, size: int
) -> None:
    """Whatever kind of file sits at the record's place, complete() answers False promptly with
    a reason (a missing record counts as a record never written)."""
    _plant(shape, RECORD, size)
    try:
        started = time.monotonic()
        assert Merge().complete() is False
        verdict = status_of(Merge())
        assert time.monotonic() - started < PROMPT
        assert verdict.reasons
        assert all(reason.message for reason in verdict.reasons)
    finally:
        if stat.S_ISFIFO(os.lstat(RECORD).st_mode):
            os.unlink(RECORD)


class ManyFlags(Clean):
    """Clean with a long list of tiny values as a parameter: a dense but genuine record."""

    flags = luigi.ListParameter()


def test_a_long_list_parameter_of_tiny_values_is_a_genuine_record() -> None:
    """60,000 zeros in a parameter make a record far denser than an ordinary one; it is still
    small, so its parse fits the budget: the task is recorded and complete."""
    make_raw()
    task = ManyFlags(name="a", flags=[0] * 60_000)
    assert build(task)
    assert task.complete()


def test_the_writers_other_groups_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file readable by a group the writer belongs to (not the record's group) is theirs to
    read; a group they are not in is not."""
    from luigi_repro import writerrights

    if os.geteuid() != 0:
        pytest.skip("needs root to give the file another group")
    folder = Path(tempfile.mkdtemp(prefix="luigi-repro-groups-"))  # /tmp: searchable by all
    try:
        folder.chmod(0o755)
        shared = folder / "team.csv"
        shared.write_text("a,b\n")
        shared.chmod(0o640)
        os.chown(shared, 0, 4242)
        writer = (54321, 54321)  # a user who is neither us nor root
        entry = type("Entry", (), {"pw_name": "writer", "pw_gid": 54321})
        monkeypatch.setattr("pwd.getpwuid", lambda uid: entry)
        monkeypatch.setattr(os, "getgrouplist", lambda name, gid: [gid, 4242])
        writerrights._groups.cache_clear()
        assert writerrights.writer_refusal(str(shared), writer) is None
        monkeypatch.setattr(os, "getgrouplist", lambda name, gid: [gid])
        writerrights._groups.cache_clear()
        refused = writerrights.writer_refusal(str(shared), writer)
        assert "not readable by the record's writer" in str(refused)
    finally:
        writerrights._groups.cache_clear()
        shutil.rmtree(folder)
