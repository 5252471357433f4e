"""Run locks, safe in folders others can write: per output, in sorted order, released on death.

A run lock per output guarantees that two processes never run the same task on the same outputs
at once; locks are taken in sorted order so that tasks sharing outputs cannot deadlock. File locks
(``flock``) are released by the kernel when a process dies, so a killed worker never leaves a
lock held. The lock file of ``out/x.csv`` is ``out/.x.csv.repro.lock``; it stays behind after
use, because deleting a lock file races with processes waiting on it.

Atomic writes (a temporary, then ``os.replace``) live in :mod:`luigi_repro.atomicfiles`; their
names are importable from here too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat as stat_module
import time
from typing import Any, Dict, Iterator, List, Optional, Protocol, Sequence, Set, Tuple

import attrs

from luigi_repro.atomicfiles import (
    NEW_FILE_FLAGS,
    O_CLOEXEC,
    O_NOFOLLOW,
    TMP_MARK,
    atomic_replace,
    atomic_write,
    create_new_file,
    folder_syncs_deferred,
    fsync_folder,
    fsync_folder_soon,
    fsync_tree,
    make_folders,
    temporary_name,
)
from luigi_repro.errors import (
    LockError,
    LockLost,
    LockServerUnavailable,
    LockTimeout,
    MissingDependency,
)
from luigi_repro.localpath import physical_path

__all__ = [
    "NEW_FILE_FLAGS",
    "REDIS_SCHEMES",
    "FileLocks",
    "HeldLocks",
    "LockBackend",
    "LOCK_FILE_MARK",
    "LOCK_SUFFIX",
    "LockRequest",
    "RedisLocks",
    "TMP_MARK",
    "atomic_replace",
    "atomic_write",
    "create_new_file",
    "folder_syncs_deferred",
    "fsync_folder",
    "fsync_folder_soon",
    "fsync_tree",
    "lock_backend",
    "lock_file_for",
    "lock_file_for_uri",
    "make_folders",
    "temporary_name",
]

#: The end of every run-lock file's name, and the one line such a file holds: inside a folder
#: that is some task's input, only a file with both is taken for a lock rather than for data.
LOCK_SUFFIX = ".repro.lock"
LOCK_FILE_MARK = b"luigi_repro run lock\n"


def lock_file_for(path: str) -> str:
    """The lock file guarding the output at ``path``: hidden, in the same folder.

    The folder is resolved (symlinks included, and ``..`` after them as the OS does), so two
    spellings of one output share one lock and two different files never do.

    A folder that does not exist yet is kept as written: resolving it would follow a symlink
    that points nowhere to a place it was never meant to create. (Its lock file is still one
    file: the lock is taken on the file the name opens, whichever spelling named it.)
    """
    folder, name = os.path.split(physical_path(path.rstrip("/")))
    resolved = os.path.realpath(folder)
    if resolved != folder and not os.path.isdir(resolved):
        resolved = folder
    return os.path.join(resolved, f".{name}{LOCK_SUFFIX}")


def lock_file_for_uri(uri: str) -> str:
    """The lock file for content that has no local folder (S3, another file system, memory).

    In the user's cache folder, named after a digest of the URI; it excludes processes of this
    user on this host (use the Redis backend across hosts).
    """
    from luigi_repro.config import default_stat_cache_path

    folder = os.path.join(os.path.dirname(default_stat_cache_path()), "locks")
    digest = hashlib.sha256(uri.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return os.path.join(folder, f"{digest}.lock")


@attrs.frozen
class LockRequest:
    """One run lock to take: ``uri`` names it across hosts, ``file`` on this host."""

    uri: str
    file: str


class HeldLocks(Protocol):
    """Locks being held; :meth:`check` raises :class:`LockLost` if one was taken from us."""

    def check(self) -> None: ...


class LockBackend(Protocol):
    """Something that can hold a set of run locks for the length of a ``with`` block."""

    def hold(
        self, requests: Sequence[LockRequest], timeout: float, task_id: Optional[str] = None
    ) -> contextlib.AbstractContextManager[HeldLocks]: ...


class _NothingToCheck:
    """File locks cannot be lost while their process lives: the kernel holds them."""

    def check(self) -> None:
        return None


#: A lock file: opened to write the mark, created if missing, never through a symlink; a FIFO
#: planted there must not block the open.
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK
#: A lock file we may not write (another user's): ``flock`` locks a read-only descriptor too.
_LOCK_READ_FLAGS = os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK
_REMOVE_IT = "remove it (it holds nothing) or ask who planted it"


def _open_lock_file(name: str) -> Tuple[int, bool]:
    """A descriptor on the lock file ``name``, and whether we may write to it."""
    try:
        return os.open(name, _LOCK_FLAGS, 0o666), True
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockError(name, "it is a symlink", _REMOVE_IT) from None
        if exc.errno not in (errno.EACCES, errno.EPERM):
            raise LockError(name, exc.strerror or str(exc), "check the folder") from None
    try:
        return os.open(name, _LOCK_READ_FLAGS), False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockError(name, "it is a symlink", _REMOVE_IT) from None
        if exc.errno == errno.ENOENT:
            raise LockError(
                name,
                "it does not exist and this user may not create it",
                "run as a user who may write its folder",
            ) from None
        raise LockError(
            name,
            f"it cannot be opened ({exc.strerror or exc})",
            "let its owner make it readable (chmod a+r) or remove it",
        ) from None


def _flock_until(fd: int, deadline: float, interval: float) -> bool:
    """Poll for an exclusive ``flock`` on ``fd`` until ``deadline``; did we get it?"""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(interval, deadline - now))


def _still_at(fd: int, name: str) -> bool:
    """Is the file locked through ``fd`` still the one at ``name`` (not removed or replaced)?"""
    try:
        at_path = os.lstat(name)
    except OSError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


def _mark(fd: int) -> None:
    """Write the run-lock mark into a new (empty) lock file, so it is never taken for data."""
    with contextlib.suppress(OSError):
        if os.fstat(fd).st_size == 0:
            os.pwrite(fd, LOCK_FILE_MARK, 0)


def _lock_one(
    name: str,
    held: Set[Tuple[int, int]],
    deadline: float,
    interval: float,
    timeout: float,
    task_id: Optional[str],
) -> Optional[int]:
    """Open and lock one lock file; the locked descriptor, or None if ``held`` has it already.

    ``held`` has the (device, inode) of the files this process locked: another spelling of one
    of them would wait for ourselves. Raises :class:`LockTimeout` at the deadline.
    """
    folder = os.path.dirname(name)
    try:
        make_folders(folder)
    except FileExistsError:
        raise LockError(
            name,
            f"its folder {folder} cannot be created",
            "a file or a symlink pointing nowhere is in the way: remove it, or create the "
            "folder it names",
        ) from None
    except OSError as exc:
        raise LockError(
            name, f"its folder {folder} cannot be created ({exc.strerror or exc})", "check it"
        ) from None
    while True:
        fd, writable = _open_lock_file(name)
        try:
            st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                raise LockError(name, "it is not a regular file", _REMOVE_IT)
            if (st.st_dev, st.st_ino) in held:
                os.close(fd)
                return None
            if not _flock_until(fd, deadline, interval):
                raise LockTimeout(name, timeout, task_id)
            if _still_at(fd, name):
                if writable:
                    _mark(fd)
                held.add((st.st_dev, st.st_ino))
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed or replaced while we waited: lock the file now there
        if time.monotonic() >= deadline:  # replaced again and again: give up like any wait
            raise LockTimeout(name, timeout, task_id)


class FileLocks:
    """Run locks as ``flock`` file locks: one host, any number of processes.

    The lock file is opened by us, never through a symlink (one planted there is a
    :class:`LockError`), and read-only when another user's file may not be written: ``flock``
    locks a read-only descriptor too, so a folder shared by several users keeps working. A lock
    file removed or replaced while we waited for it is locked again as the file now there.
    """

    @contextlib.contextmanager
    def hold(
        self, requests: Sequence[LockRequest], timeout: float, task_id: Optional[str] = None
    ) -> Iterator[HeldLocks]:
        deadline = time.monotonic() + timeout
        interval = min(0.1, max(timeout / 10, 0.005))
        held: List[int] = []
        files: Set[Tuple[int, int]] = set()
        try:
            for name in sorted({r.file for r in requests}):
                fd = _lock_one(name, files, deadline, interval, timeout, task_id)
                if fd is not None:
                    held.append(fd)
            yield _NothingToCheck()
        finally:
            for fd in reversed(held):
                # Unlock explicitly: a process forked by run() shares the descriptor, and its
                # copy would otherwise keep the lock until it exits.
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


def _portalocker() -> Any:
    """``portalocker``, imported only for Redis locks: it imports the whole redis client."""
    import portalocker

    return portalocker


class _RedisHeld:
    def __init__(self, locks: List[Any], task_id: Optional[str]) -> None:
        self.locks = locks
        self.task_id = task_id

    def check(self) -> None:
        for lock in self.locks:
            try:
                lock.ensure_held()
            except _portalocker().exceptions.LockException:
                raise LockLost(str(lock.channel), self.task_id) from None


class RedisLocks:
    """Run locks in Redis (``portalocker.RedisLock``): every host that reaches the server.

    A lock is a subscription on the channel ``luigi_repro:<output uri>``; Redis drops it when the
    holder's connection dies, so a killed worker never leaves a lock behind. If a lock is lost
    while the task runs, the record is not written (:class:`LockLost`).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._connections: Dict[int, Any] = {}

    def _connection(self) -> Any:
        connection = self._connections.get(os.getpid())
        if connection is None:
            try:
                import redis
            except ImportError as exc:
                raise MissingDependency("redis", "redis") from exc
            connection = self._connections[os.getpid()] = redis.Redis.from_url(self.url)
        return connection

    def _ping(self, connection: Any) -> None:
        from redis import exceptions as redis_errors

        try:
            connection.ping()
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise LockServerUnavailable(self.url, str(exc)) from None

    @contextlib.contextmanager
    def hold(
        self, requests: Sequence[LockRequest], timeout: float, task_id: Optional[str] = None
    ) -> Iterator[HeldLocks]:
        from redis import exceptions as redis_errors

        portalocker = _portalocker()
        deadline = time.monotonic() + timeout
        held: List[Any] = []
        connection = self._connection()
        try:
            self._ping(connection)  # an unreachable server is not "another holder"
            for uri in sorted({r.uri for r in requests}):
                remaining = max(0.0, deadline - time.monotonic())
                lock = portalocker.RedisLock(
                    f"luigi_repro:{uri}",
                    connection=connection,
                    timeout=remaining,
                    check_interval=min(0.1, max(remaining / 10, 0.01)),
                    fail_when_locked=False,
                    interrupt_on_lost=False,
                )
                try:
                    lock.acquire()
                except portalocker.exceptions.LockException:
                    self._ping(connection)
                    raise LockTimeout(uri, timeout, task_id) from None
                except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                    raise LockServerUnavailable(self.url, str(exc)) from None
                held.append(lock)
            yield _RedisHeld(held, task_id)
        finally:
            for lock in reversed(held):
                with contextlib.suppress(Exception):  # a lost connection has no lock to release
                    lock.release()


_backends: Dict[str, LockBackend] = {}


def lock_backend(spec: str) -> LockBackend:
    """The backend named by the ``lock`` option (one object per spec in a process)."""
    backend = _backends.get(spec)
    if backend is None:
        if spec == "file":
            backend = FileLocks()
        elif spec.startswith(REDIS_SCHEMES):
            backend = RedisLocks(spec)
        else:
            raise ValueError(f"unknown lock backend {spec!r}")
        _backends[spec] = backend
    return backend


#: URL schemes of the Redis lock backend.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
