"""Hostile neighbours in a shared results folder: planted symlinks at temporary and lock names,
another user's lock file, and power loss (fsync) — nothing is written through, nothing blocks."""

from __future__ import annotations

import errno
import fcntl
import os
import pwd
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Set, Tuple

import luigi
import pytest
from pipelines import Clean, build, failure_of, make_raw

from luigi_repro import HashableLocalTarget, TaskWithCheckingInputHash
from luigi_repro.config import Settings, load_settings
from luigi_repro.errors import ConfigError, LockError, LockTimeout, TemporaryReplaced
from luigi_repro.locking import (
    LOCK_FILE_MARK,
    FileLocks,
    LockRequest,
    lock_file_for,
)
from luigi_repro.protocol import RunProtocol
from luigi_repro.targets import atomicfile as atomic_file
from luigi_repro.targets import local as local_targets
from luigi_repro.targets.dataframe import CsvTarget
from luigi_repro.targets.directory import HashableDirectoryTarget

pytestmark = pytest.mark.timeout(5)

#: The fixed temporary name earlier versions gave the record of ``out/clean_a.txt``.
OLD_FIXED_TEMPORARY = "out/.clean_a.txt.repro.json.repro-tmp"


@pytest.fixture(autouse=True)
def _short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock that is never released fails within a second, not a minute."""
    monkeypatch.setenv("LUIGI_REPRO_LOCK_TIMEOUT", "1")


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[Path]:
    """A file outside the results folder that an attacker wants overwritten; it must stay as is."""
    path = tmp_path / "victim.txt"
    path.write_bytes(b"precious\n")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    yield path
    assert path.read_bytes() == b"precious\n"
    assert path.stat().st_mtime_ns == 1_000_000_000


def temporaries(folder: str = "out") -> List[str]:
    """Temporary files or folders (luigi_repro's or Luigi's) left in ``folder``."""
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if "repro-tmp" in n or "luigi-tmp" in n)


def planting(victim: Path, make_name: Callable[[str], str]) -> Callable[[str], str]:
    """A name maker that, like an attacker who guessed it, plants a symlink to ``victim`` at the
    first name it hands out for each path; it keeps a list of the names it planted."""
    planted: List[str] = []
    paths: Set[str] = set()

    def name_for(path: str) -> str:
        name = make_name(path)
        if path not in paths:
            paths.add(path)
            os.symlink(victim, name)
            planted.append(name)
        return name

    name_for.planted = planted  # type: ignore[attr-defined]
    return name_for


def remove_planted(name_for: Callable[[str], str]) -> None:
    """Remove the attacker's symlinks, so only our own leftovers would remain."""
    for name in name_for.planted:  # type: ignore[attr-defined]
        os.unlink(name)


# --- temporary files ----------------------------------------------------------------------------


def test_symlink_at_the_old_fixed_record_temporary_is_not_written_through(victim: Path) -> None:
    """A symlink planted before the run at the record's old fixed temporary name is ignored."""
    make_raw()
    Path("out").mkdir()
    os.symlink(victim, OLD_FIXED_TEMPORARY)
    assert build(Clean("a"))
    assert Clean("a").complete()
    assert temporaries() == [os.path.basename(OLD_FIXED_TEMPORARY)]  # the attacker's, untouched


class Replanting(TaskWithCheckingInputHash):
    """Plants symlinks at the old fixed temporary names from inside run(), as a neighbour
    racing the run would, then writes its output."""

    victim = luigi.Parameter()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/clean_a.txt")

    def run(self) -> None:
        for name in (OLD_FIXED_TEMPORARY, "out/.clean_a.txt.repro-tmp-old"):
            if os.path.lexists(name):
                os.unlink(name)
            os.symlink(self.victim, name)
        with self.output().open("w") as sink:
            sink.write("data\n")


def test_symlinks_replanted_while_run_works_are_not_written_through(victim: Path) -> None:
    """Symlinks planted at the old fixed names while run() works never receive the record."""
    Path("out").mkdir()
    assert build(Replanting(str(victim)))
    assert Path("out/clean_a.txt.repro.json").is_file()
    assert len(temporaries()) == 2  # the attacker's two symlinks, nothing of ours


def test_record_and_output_temporaries_skip_a_guessed_name(
    victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a neighbour who guessed the random names of the record's and open('w')'s
    temporaries before they were made does not get them written through."""
    from luigi_repro import atomicfiles

    record_names = planting(victim, atomicfiles.temporary_name)
    output_names = planting(victim, atomic_file.luigi_temporary_name)
    monkeypatch.setattr(atomicfiles, "temporary_name", record_names)
    monkeypatch.setattr(atomic_file, "luigi_temporary_name", output_names)
    make_raw()
    assert build(Clean("a"))
    assert Path("out/clean_a.txt").read_text() == "hello\n"
    assert len(record_names.planted) == 1  # type: ignore[attr-defined]
    assert len(output_names.planted) == 1  # type: ignore[attr-defined]
    remove_planted(record_names)
    remove_planted(output_names)
    assert temporaries() == []


def test_temporary_path_skips_a_guessed_name(victim: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """temporary_path() never hands out a name a neighbour guessed and planted a symlink at."""
    pytest.importorskip("pyarrow")
    import pyarrow as pa

    Path("out").mkdir()
    names = planting(victim, atomic_file.luigi_temporary_name)
    monkeypatch.setattr(atomic_file, "luigi_temporary_name", names)
    CsvTarget("out/table.csv").dump(pa.table({"a": [1, 2]}))
    with HashableDirectoryTarget("out/parts").temporary_path() as tmp:
        Path(tmp, "a.txt").write_text("a")
    with HashableLocalTarget("out/plain.txt").temporary_path() as tmp:
        Path(tmp).write_text("plain")
    assert len(names.planted) == 3  # type: ignore[attr-defined]
    remove_planted(names)
    assert temporaries() == []
    assert sorted(os.listdir("out")) == ["parts", "plain.txt", "table.csv"]


def test_table_and_folder_temporaries_planted_after_the_name_was_chosen(
    victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symlink planted at a temporary name between its choice and its creation: a table
    target's file and a folder target's folder are not made through it, the write fails."""
    pytest.importorskip("pyarrow")
    import pyarrow as pa

    Path("out").mkdir()
    names = planting(victim, atomic_file.luigi_temporary_name)
    monkeypatch.setattr(local_targets, "unused_temporary_name", names)
    with pytest.raises(FileExistsError):
        CsvTarget("out/table.csv").dump(pa.table({"a": [1, 2]}))
    folder = HashableDirectoryTarget("out/parts")
    with pytest.raises(FileExistsError), folder.temporary_path():
        pass
    assert len(names.planted) == 2  # type: ignore[attr-defined]
    assert os.listdir("out") == []  # the links at the failed temporaries' names are removed


def write_then_swap_for_symlink(target: HashableLocalTarget, victim: Path) -> None:
    """Write through temporary_path(), then (as a neighbour) swap the temporary for a symlink."""
    with target.temporary_path() as tmp:
        Path(tmp).write_text("new\n")
        os.unlink(tmp)
        os.symlink(victim, tmp)


def test_temporary_path_replaced_by_a_symlink_is_not_moved_into_place(victim: Path) -> None:
    """A temporary swapped for a symlink after it was written: the output is not replaced by
    the link, the link is removed, and the error says what happened."""
    target = HashableLocalTarget("out/data.txt")
    Path("out").mkdir()
    Path("out/data.txt").write_text("previous\n")
    with pytest.raises(TemporaryReplaced, match="replaced by a symlink"):
        write_then_swap_for_symlink(target, victim)
    assert Path("out/data.txt").read_text() == "previous\n"
    assert temporaries() == []


def test_adopt_writes_no_record_through_planted_symlinks(victim: Path) -> None:
    """adopt records existing outputs without writing through a symlink at the old fixed name."""
    make_raw()
    Path("out").mkdir()
    Path("out/clean_a.txt").write_text("hello\n")
    os.symlink(victim, OLD_FIXED_TEMPORARY)
    RunProtocol(Clean("a")).adopt()
    assert Clean("a").complete()
    assert temporaries() == [os.path.basename(OLD_FIXED_TEMPORARY)]


def test_failed_adopt_leaves_no_temporary(monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk error while adopt writes the record removes the temporary and writes no record."""
    make_raw()
    Path("out").mkdir()
    Path("out/clean_a.txt").write_text("hello\n")

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "disk error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk error"):
        RunProtocol(Clean("a")).adopt()
    assert temporaries() == []
    assert not os.path.exists("out/clean_a.txt.repro.json")


class Waits(TaskWithCheckingInputHash):
    """A generator run() that starts writing its outputs, then yields a dynamic dependency."""

    def output(self) -> Tuple[HashableLocalTarget, HashableLocalTarget]:
        return HashableLocalTarget("out/opened.txt"), HashableLocalTarget("out/folder")

    def run(self) -> Iterator[Any]:
        opened, folder = self.output()
        with opened.open("w") as sink, folder.temporary_path() as tmp:
            sink.write("partial\n")
            os.mkdir(tmp)
            Path(tmp, "part.txt").write_text("partial\n")
            yield Clean("a")


def test_abandoned_generator_run_leaves_no_temporary() -> None:
    """A generator run() dropped while its temporaries are open leaves none behind."""
    make_raw()
    task = Waits()
    started = task.run()
    next(started)
    assert len(temporaries()) == 2
    started.close()
    assert temporaries() == []
    assert not os.path.exists("out/opened.txt")
    assert not os.path.exists("out/folder")


# --- run locks ----------------------------------------------------------------------------------


def test_dangling_symlink_at_the_lock_file_fails_clearly(tmp_path: Path) -> None:
    """A lock file that is a symlink pointing nowhere: a LockError naming it; nothing is
    created where it points."""
    make_raw()
    Path("out").mkdir()
    lock = lock_file_for("out/clean_a.txt")
    os.symlink(tmp_path / "nowhere" / "deep" / "lock", lock)
    error = failure_of(Clean("a"))
    assert isinstance(error, LockError)
    assert lock in str(error)
    assert "it is a symlink" in str(error)
    assert not (tmp_path / "nowhere").exists()
    assert not os.path.exists("out/clean_a.txt")


def test_symlink_from_the_lock_file_to_a_victim_fails_clearly(victim: Path) -> None:
    """A lock file that is a symlink to someone's file: a LockError; the file is not touched."""
    make_raw()
    Path("out").mkdir()
    os.symlink(victim, lock_file_for("out/clean_a.txt"))
    assert isinstance(failure_of(Clean("a")), LockError)
    assert not build(Clean("a"))


def test_dangling_symlink_as_the_output_folder_creates_nothing(tmp_path: Path) -> None:
    """An output folder that is a symlink pointing nowhere: no folder is made where it points."""
    make_raw()
    os.symlink(tmp_path / "nowhere" / "out", "out")
    error = failure_of(Clean("a"))
    assert isinstance(error, LockError)
    assert "a file or a symlink pointing nowhere is in the way" in str(error)
    assert not (tmp_path / "nowhere").exists()


def test_lock_file_replaced_while_waiting_is_locked_anew() -> None:
    """A lock file renamed away while we wait for it: once its holder lets go, we lock the
    file now at the path, not the one moved away."""
    lock = os.path.abspath(".x.repro.lock")
    holder = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(holder, fcntl.LOCK_EX)
    outcome: List[str] = []

    def wait_and_check() -> None:
        with FileLocks().hold([LockRequest(lock, lock)], timeout=2):
            probe = os.open(lock, os.O_RDONLY)
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                outcome.append("the file at the path was not locked")
            except BlockingIOError:
                outcome.append("locked")
            finally:
                os.close(probe)

    waiter = threading.Thread(target=wait_and_check)
    waiter.start()
    time.sleep(0.2)
    os.rename(lock, "moved.lock")
    os.close(holder)
    waiter.join()
    assert outcome == ["locked"]
    assert Path(lock).read_bytes() == LOCK_FILE_MARK


def test_a_lock_file_named_twice_is_locked_once(tmp_path: Path) -> None:
    """Two spellings of one lock file (through a symlinked folder) do not wait for each other."""
    Path("real").mkdir()
    os.symlink("real", "link")
    first, second = os.path.abspath("real/.x.repro.lock"), os.path.abspath("link/.x.repro.lock")
    Path(first).write_bytes(LOCK_FILE_MARK)
    with FileLocks().hold([LockRequest("a", first), LockRequest("b", second)], timeout=1):
        pass


def _as_nobody(action: Callable[[], str]) -> str:
    """The result of ``action`` run in a forked child as the user ``nobody`` (or its error)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as a second user (nobody)")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this machine")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            try:
                result = action()
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                result = f"{type(exc).__name__}: {exc}"
            os.write(write_end, result.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stream:
        result = stream.read().decode()
    os.waitpid(pid, 0)
    return result


@pytest.fixture
def shared_folder() -> Iterator[str]:
    """A folder every user may write (sticky, like /tmp), reachable by ``nobody``."""
    folder = tempfile.mkdtemp(prefix="luigi_repro-shared-", dir="/tmp")
    os.chmod(folder, 0o1777)
    yield folder
    shutil.rmtree(folder)


def run_and_check(task: luigi.Task) -> Callable[[], str]:
    """An action that runs ``task`` (through the run protocol) and says whether it is complete."""

    def action() -> str:
        task.run()
        return "complete" if task.complete() else "incomplete"

    return action


def take_and_release(lock: str, timeout: float) -> None:
    """Take the run lock ``lock`` (waiting up to ``timeout``) and release it at once."""
    with FileLocks().hold([LockRequest(lock, lock)], timeout=timeout):
        pass


def _hold_briefly(lock: str) -> Callable[[], str]:
    def action() -> str:
        with FileLocks().hold([LockRequest(lock, lock)], timeout=1):
            return "held"

    return action


def test_lock_file_of_another_user_is_locked_read_only(shared_folder: str) -> None:
    """Another user's lock file (mode 0644) that we cannot write: locked through a read-only
    descriptor, so the shared folder keeps working."""
    lock = os.path.join(shared_folder, ".x.repro.lock")
    with FileLocks().hold([LockRequest(lock, lock)], timeout=1):
        os.chmod(lock, 0o644)
        assert "LockTimeout" in _as_nobody(_hold_briefly(lock))  # excluded while we hold it
    assert _as_nobody(_hold_briefly(lock)) == "held"
    assert Path(lock).read_bytes() == LOCK_FILE_MARK


def test_run_as_another_user_beside_a_root_lock_file(
    shared_folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole run by a second user, in a shared folder whose lock file root left (0644)."""
    os.chdir(shared_folder)
    make_raw()
    Path("out").mkdir()
    os.chmod("out", 0o1777)
    lock = lock_file_for("out/clean_a.txt")
    take_and_release(lock, timeout=1)
    os.chmod(lock, 0o644)
    monkeypatch.setenv("LUIGI_REPRO_STAT_CACHE", "off")
    assert _as_nobody(run_and_check(Clean("a"))) == "complete"
    assert Path("out/clean_a.txt").read_text() == "hello\n"
    assert Path(lock).read_bytes() == LOCK_FILE_MARK


def test_unreadable_lock_file_of_another_user_fails_clearly(shared_folder: str) -> None:
    """Another user's lock file we cannot open at all: a LockError naming it and the remedy."""
    lock = os.path.join(shared_folder, ".x.repro.lock")
    Path(lock).write_bytes(LOCK_FILE_MARK)
    os.chmod(lock, 0o600)
    result = _as_nobody(_hold_briefly(lock))
    assert result.startswith(f"LockError: cannot use the run lock {lock}")
    assert "chmod a+r" in result


def test_timeout_waiting_for_a_lock_keeps_its_message() -> None:
    """A lock held elsewhere still ends in LockTimeout naming the lock and the option."""
    lock = os.path.abspath(".x.repro.lock")
    with FileLocks().hold([LockRequest(lock, lock)], timeout=1):
        os.chmod(lock, 0o644)
        with pytest.raises(LockTimeout, match="lock_timeout"):
            take_and_release(lock, timeout=0.2)


# --- fsync --------------------------------------------------------------------------------------


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """The paths of every file or folder flushed with os.fsync, in order."""
    paths: List[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        paths.append(os.path.relpath(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name a descriptor's file")
    monkeypatch.setattr(os, "fsync", fsync)
    return paths


def test_record_write_fsyncs_the_file_then_the_folder(synced: List[str]) -> None:
    """A record is flushed before its rename, and its folder after it."""
    Path("out").mkdir()
    HashableLocalTarget("out/x.txt").write_record_bytes(Settings(), b"{}")
    assert len(synced) == 2
    assert ".x.txt.repro.json.repro-tmp-" in synced[0]
    assert synced[1] == "out"


def test_outputs_are_fsynced_through_open_and_temporary_path(synced: List[str]) -> None:
    """open('w') flushes its file and folder; temporary_path() every file and folder inside."""
    with HashableLocalTarget("out/x.txt").open("w") as sink:
        sink.write("x")
    assert synced[0].startswith("out/x.txt-luigi-tmp-")
    assert synced[1] == "out"
    synced.clear()
    with HashableLocalTarget("out/parts").temporary_path() as tmp:
        os.makedirs(os.path.join(tmp, "inner"))
        Path(tmp, "inner", "a.txt").write_text("a")
        Path(tmp, "b.txt").write_text("b")
    flushed = [p.split("-luigi-tmp-")[-1].partition("/")[2] for p in synced[:-1]]
    assert sorted(flushed) == ["", "b.txt", "inner", "inner/a.txt"]
    assert synced[-1] == "out"


def test_fsync_false_skips_every_fsync(synced: List[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """With [luigi_repro] fsync = false nothing is flushed (scratch disks)."""
    monkeypatch.setenv("LUIGI_REPRO_FSYNC", "false")
    make_raw()
    assert not load_settings().fsync
    assert build(Clean("a"))
    with HashableLocalTarget("out/parts").temporary_path() as tmp:
        os.mkdir(tmp)
    assert synced == []


def test_fsync_option_rejects_what_is_not_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """An fsync value that is not true or false is a ConfigError naming the option."""
    monkeypatch.setenv("LUIGI_REPRO_FSYNC", "sometimes")
    with pytest.raises(ConfigError, match="fsync"):
        load_settings()


def test_missing_lock_file_in_a_folder_we_may_not_write_fails_clearly(shared_folder: str) -> None:
    """No lock file yet, in a folder this user may not write: a LockError saying so."""
    os.chmod(shared_folder, 0o755)
    lock = os.path.join(shared_folder, ".x.repro.lock")
    result = _as_nobody(_hold_briefly(lock))
    assert result.startswith(f"LockError: cannot use the run lock {lock}")
    assert "may not create it" in result


def test_fifo_planted_at_the_lock_file_fails_without_blocking() -> None:
    """A named pipe at the lock file's name is refused at once (opening it does not block)."""
    lock = os.path.abspath(".x.repro.lock")
    os.mkfifo(lock)
    with pytest.raises(LockError, match="not a regular file"):
        take_and_release(lock, timeout=1)


def test_failed_replacement_by_temporary_path_leaves_no_temporary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A temporary that cannot be moved into place is removed; the previous output stays."""

    def cannot_move(src: str, dst: str, *, fsync: bool = False) -> None:
        raise OSError(errno.EXDEV, "cannot move across devices")

    monkeypatch.setattr(local_targets, "atomic_replace", cannot_move)
    Path("out").mkdir()
    Path("out/data.txt").write_text("kept")
    with (
        pytest.raises(OSError, match="across devices"),
        HashableLocalTarget("out/data.txt").temporary_path() as tmp,
    ):
        Path(tmp).write_text("new")
    assert temporaries() == []
    assert Path("out/data.txt").read_text() == "kept"


def test_failed_flush_of_open_w_leaves_no_temporary(monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk error while open('w') flushes its file removes the temporary, writes nothing."""

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "disk error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    sink = HashableLocalTarget("out/x.txt").open("w")
    sink.write("data")
    with pytest.raises(OSError, match="disk error"):
        sink.close()
    assert temporaries() == []
    assert not os.path.exists("out/x.txt")


def test_folder_replacement_never_uses_the_old_fixed_aside_name(tmp_path: Path) -> None:
    """Replacing a folder output sets the old one aside under a fresh name: a symlink planted
    at the old fixed aside name (to someone's folder) is neither followed nor emptied."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "theirs.txt").write_text("theirs")
    target = HashableDirectoryTarget("out/parts")
    for content in ("first", "second"):
        with target.temporary_path() as tmp:
            Path(tmp, "part.txt").write_text(content)
        if content == "first":
            os.symlink(elsewhere, "out/.parts.repro-tmp-old")
    assert Path("out/parts/part.txt").read_text() == "second"
    assert os.listdir(elsewhere) == ["theirs.txt"]
    assert temporaries() == [".parts.repro-tmp-old"]  # the attacker's link, nothing of ours


def test_a_run_flushes_its_output_then_its_record_then_their_folder_once(
    synced: List[str],
) -> None:
    """Inside a run, the folder flush waits until the record is renamed too: one flush makes
    both renames durable."""
    make_raw()
    assert build(Clean("a"))
    ours = [path for path in synced if path == "out" or path.startswith("out/")]
    assert ours[0].startswith("out/clean_a.txt-luigi-tmp-")
    assert ".clean_a.txt.repro.json.repro-tmp-" in ours[1]
    assert ours[2:] == ["out"]
