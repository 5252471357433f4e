"""Atomic writes and replacements, leftover clean-up, and run locks across processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from luigi_repro.errors import LockTimeout, ReproError
from luigi_repro.locking import (
    TMP_MARK,
    FileLocks,
    LockRequest,
    RedisLocks,
    atomic_replace,
    atomic_write,
    lock_backend,
    lock_file_for,
)


def requests(paths: Any) -> List[LockRequest]:
    """Lock requests for lock-file paths (the file backend looks only at the file)."""
    return [LockRequest(uri=str(p), file=str(p)) for p in paths]


HOLDER = """
import sys, time
from luigi_repro.locking import FileLocks, LockRequest

with FileLocks().hold([LockRequest(p, p) for p in sys.argv[1:]], timeout=10):
    print("held", flush=True)
    time.sleep(120)
"""


@contextlib.contextmanager
def held_elsewhere(*names: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the run locks ``names`` until the block ends (or it is killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, *names], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def take(names: Sequence[str], timeout: float, task_id: Optional[str] = None) -> float:
    """Acquire and release ``names``; the seconds it took to acquire them."""
    start = time.monotonic()
    with FileLocks().hold(requests(names), timeout, task_id):
        return time.monotonic() - start


def is_held(name: str) -> bool:
    """Whether some holder (this process included) has the lock ``name`` right now."""
    try:
        take([name], 0)
    except LockTimeout:
        return True
    return False


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty folder of the test's own (tmp_path also holds the working folder)."""
    path = tmp_path / "area"
    path.mkdir()
    return path


def leftovers(folder: Path) -> List[str]:
    """Names in ``folder`` that look like luigi_repro temporaries."""
    return sorted(name for name in os.listdir(folder) if TMP_MARK in name)


# --- atomic_write --------------------------------------------------------------------------------


def test_atomic_write_creates_and_replaces(folder: Path) -> None:
    """atomic_write creates a file, then replaces its content, leaving nothing else behind."""
    path = folder / "rec.json"
    atomic_write(str(path), b"first")
    assert path.read_bytes() == b"first"
    atomic_write(str(path), b"second, longer")
    assert path.read_bytes() == b"second, longer"
    assert os.listdir(folder) == ["rec.json"]


@given(st.lists(st.binary(max_size=2000), min_size=1, max_size=5))
def test_atomic_write_any_bytes(contents: List[bytes]) -> None:
    """Whatever bytes are written, the file holds exactly the last ones and no temporary is left."""
    for data in contents:
        atomic_write("data.bin", data)
    assert Path("data.bin").read_bytes() == contents[-1]
    assert leftovers(Path(".")) == []


def test_reader_never_sees_a_partial_file(folder: Path) -> None:
    """A reader looping while the file is rewritten 200 times only sees complete contents."""
    path = folder / "rec.json"
    contents = [bytes([65 + i % 26]) * (32 * 1024 + 97 * i) for i in range(200)]
    valid = set(contents)
    atomic_write(str(path), contents[0])
    stop = threading.Event()
    seen: List[int] = []
    bad: List[int] = []

    def read() -> None:
        while True:
            data = path.read_bytes()
            (seen if data in valid else bad).append(len(data))
            if stop.is_set():
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for data in contents[1:]:
            atomic_write(str(path), data)
    finally:
        stop.set()
        reader.join(timeout=30)
    assert bad == []
    assert seen
    assert path.read_bytes() == contents[-1]
    assert leftovers(folder) == []


def test_failed_write_keeps_old_content(folder: Path) -> None:
    """A write that fails midway leaves the old content and no temporary file."""
    path = folder / "rec.json"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(str(path), "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert os.listdir(folder) == ["rec.json"]


def test_write_into_missing_folder_fails_cleanly(folder: Path) -> None:
    """Writing into a folder that does not exist raises and creates nothing."""
    with pytest.raises(FileNotFoundError):
        atomic_write(str(folder / "missing" / "rec.json"), b"x")
    assert not (folder / "missing").exists()


# --- atomic_replace ------------------------------------------------------------------------------


def make_dir(path: Path, files: dict) -> Path:
    """A folder holding ``files`` (relative name -> text)."""
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def tree(path: Path) -> dict:
    """Relative name -> text of every file under ``path``."""
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def test_replace_file_over_file(folder: Path) -> None:
    """A file replaces a file: new content, source gone, nothing left beside."""
    (folder / "out.csv").write_text("old")
    (folder / "out.csv-tmp").write_text("new")
    atomic_replace(str(folder / "out.csv-tmp"), str(folder / "out.csv"))
    assert (folder / "out.csv").read_text() == "new"
    assert os.listdir(folder) == ["out.csv"]


def test_replace_file_over_missing(folder: Path) -> None:
    """A file moves into place when there is nothing at the destination."""
    (folder / "out.csv-tmp").write_text("new")
    atomic_replace(str(folder / "out.csv-tmp"), str(folder / "out.csv"))
    assert (folder / "out.csv").read_text() == "new"
    assert os.listdir(folder) == ["out.csv"]


@pytest.mark.parametrize(
    "old", [{"a.txt": "old a", "gone.txt": "old", "sub/deep.txt": "old deep"}, {}]
)
def test_replace_dir_over_dir(folder: Path, old: dict) -> None:
    """A folder replaces an existing folder: old files gone, new present, nothing left beside."""
    new = {"a.txt": "new a", "sub/new.txt": "new deep"}
    dst = folder / "out"
    dst.mkdir()
    make_dir(dst, old)
    src = make_dir(folder / "out-tmp", new)
    atomic_replace(str(src), str(dst))
    assert tree(dst) == new
    assert os.listdir(folder) == ["out"]


def test_replace_dir_over_missing(folder: Path) -> None:
    """A folder moves into place when there is nothing at the destination."""
    src = make_dir(folder / "out-tmp", {"a.txt": "new"})
    atomic_replace(str(src), str(folder / "out"))
    assert tree(folder / "out") == {"a.txt": "new"}
    assert os.listdir(folder) == ["out"]


def test_replace_changes_kind(folder: Path) -> None:
    """A file can replace a folder and a folder can replace a file, leaving nothing beside."""
    make_dir(folder / "out", {"a.txt": "old"})
    (folder / "file-tmp").write_text("file now")
    atomic_replace(str(folder / "file-tmp"), str(folder / "out"))
    assert (folder / "out").read_text() == "file now"
    src = make_dir(folder / "dir-tmp", {"b.txt": "dir again"})
    atomic_replace(str(src), str(folder / "out"))
    assert tree(folder / "out") == {"b.txt": "dir again"}
    assert os.listdir(folder) == ["out"]


def test_replace_symlink_keeps_its_target(folder: Path) -> None:
    """Replacing a symlink to a folder removes the link, never the user's folder it points to."""
    user = make_dir(folder / "user", {"keep.txt": "precious"})
    (folder / "out").symlink_to(user)
    src = make_dir(folder / "out-tmp", {"a.txt": "new"})
    atomic_replace(str(src), str(folder / "out"))
    assert not (folder / "out").is_symlink()
    assert tree(folder / "out") == {"a.txt": "new"}
    assert tree(user) == {"keep.txt": "precious"}
    assert sorted(os.listdir(folder)) == ["out", "user"]


def test_replace_missing_source_keeps_destination(folder: Path) -> None:
    """Replacing from a source that does not exist raises and leaves the destination as it was."""
    make_dir(folder / "out", {"a.txt": "old"})
    with pytest.raises(FileNotFoundError):
        atomic_replace(str(folder / "nothing"), str(folder / "out"))
    assert tree(folder / "out") == {"a.txt": "old"}
    assert os.listdir(folder) == ["out"]


# --- lock files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("out/x.csv", "out/.x.csv.repro.lock"),
        ("x.csv", ".x.csv.repro.lock"),
        ("out/folder/", "out/.folder.repro.lock"),
        ("out/./sub/../ünï.csv", "out/.ünï.csv.repro.lock"),
    ],
)
def test_lock_file_for(path: str, expected: str) -> None:
    """The lock file is a hidden absolute path beside the output, named after it."""
    assert lock_file_for(path) == os.path.join(os.getcwd(), expected)
    assert lock_file_for(os.path.abspath(path)) == lock_file_for(path)


def test_lock_backend() -> None:
    """'file' and redis:// URLs name backends (one object each); anything else is refused."""
    assert isinstance(lock_backend("file"), FileLocks)
    assert lock_backend("file") is lock_backend("file")
    assert isinstance(lock_backend("redis://127.0.0.1:1/0"), RedisLocks)
    with pytest.raises(ValueError, match="zookeeper"):
        lock_backend("zookeeper://localhost:2181")


# --- FileLocks -----------------------------------------------------------------------------------


def test_second_process_times_out(folder: Path) -> None:
    """While another process holds a lock, taking it fails with LockTimeout after the timeout."""
    name = str(folder / ".out.csv.repro.lock")
    with held_elsewhere(name):
        start = time.monotonic()
        with pytest.raises(LockTimeout) as info:
            take([name], 0.5, task_id="Clean_x_123")
        elapsed = time.monotonic() - start
    error = info.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, ReproError)
    assert 0.45 <= elapsed < 3.0
    assert error.lock_name == name
    assert name in str(error)
    assert "Clean_x_123" in str(error)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_lock_released_when_holder_is_killed(folder: Path) -> None:
    """A holder killed with SIGKILL leaves no lock behind: the next holder gets it at once."""
    name = str(folder / ".out.csv.repro.lock")
    with held_elsewhere(name) as proc:
        assert is_held(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert take([name], 5.0) < 1.0


def test_lock_released_after_block(folder: Path) -> None:
    """Locks are held inside the block, by this process too, and free once it ends or raises."""
    names = [str(folder / ".a.repro.lock"), str(folder / ".b.repro.lock")]
    with FileLocks().hold(requests(names), 1.0):
        assert all(is_held(name) for name in names)
    assert not any(is_held(name) for name in names)
    with pytest.raises(RuntimeError), FileLocks().hold(requests(names), 1.0):
        raise RuntimeError("task failed")
    assert not any(is_held(name) for name in names)


@pytest.mark.parametrize(
    "order", [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "b", "a", "c", "a"]]
)
def test_several_names_any_order(folder: Path, order: List[str]) -> None:
    """Several locks, in any order and with repeats, are all taken at once and all released."""
    names = [str(folder / f".{n}.repro.lock") for n in order]
    start = time.monotonic()
    with FileLocks().hold(requests(names), 1.0):
        assert time.monotonic() - start < 0.5
        assert all(is_held(name) for name in names)
    assert not any(is_held(name) for name in names)


def test_repeated_name_does_not_wait_on_itself(folder: Path) -> None:
    """The same name twice is taken once, not waited for until the timeout."""
    name = str(folder / ".x.repro.lock")
    assert take([name, name], 2.0) < 0.5


def test_lock_folder_is_created(folder: Path) -> None:
    """Taking a lock in a folder that does not exist yet creates the folder."""
    name = str(folder / "new" / "deeper" / ".x.repro.lock")
    take([name], 1.0)
    assert os.path.exists(name)


@pytest.mark.parametrize("blocked", ["first", "second"])
def test_failed_second_lock_releases_first(folder: Path, blocked: str) -> None:
    """When one of several locks cannot be taken, the ones already taken are released."""
    free = str(folder / ".a.repro.lock")
    busy = str(folder / ".b.repro.lock")
    names = [free, busy] if blocked == "second" else [busy, free]
    with FileLocks().hold(requests([busy]), 1.0):
        with pytest.raises(LockTimeout) as info:
            take(names, 0.3)
        assert info.value.lock_name == busy
        assert not is_held(free)


def test_timeout_is_shared_across_locks(folder: Path) -> None:
    """The timeout bounds the whole acquisition, not each lock separately."""
    first = str(folder / ".a.repro.lock")
    second = str(folder / ".b.repro.lock")
    ready = threading.Event()

    def hold_first_briefly() -> None:
        with FileLocks().hold(requests([first]), 1.0):
            ready.set()
            time.sleep(0.5)

    with FileLocks().hold(requests([second]), 1.0):
        holder = threading.Thread(target=hold_first_briefly)
        holder.start()
        try:
            assert ready.wait(5)
            start = time.monotonic()
            with pytest.raises(LockTimeout) as info:
                take([second, first], 0.8)
            elapsed = time.monotonic() - start
        finally:
            holder.join(5)
    assert info.value.lock_name == second
    # About 0.5 s waiting for the first lock, then only what is left of 0.8 s for the second.
    assert 0.75 <= elapsed < 1.15


def test_zero_timeout_fails_at_once(folder: Path) -> None:
    """A timeout of 0 takes a free lock and fails immediately on a held one."""
    name = str(folder / ".x.repro.lock")
    assert take([name], 0) < 0.5
    with FileLocks().hold(requests([name]), 1.0):
        start = time.monotonic()
        with pytest.raises(LockTimeout):
            take([name], 0)
        assert time.monotonic() - start < 0.5


@pytest.mark.timeout(20)
def test_a_process_forked_while_holding_does_not_keep_the_lock(folder: Path) -> None:
    """A child forked inside the block (run() starting a pool) shares the lock's descriptor;
    leaving the block still frees the lock while the child lives on."""
    name = str(folder / ".out.repro.lock")
    with FileLocks().hold(requests([name]), timeout=1):
        child = os.fork()
        if child == 0:  # pragma: no cover - the child only sleeps
            time.sleep(10)
            os._exit(0)
    try:
        assert not is_held(name)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
