"""Run locks and atomic replacement of files and folders.

A run lock per output guarantees that two processes never run the same task on the same outputs
at once; locks are taken in sorted order so that tasks sharing outputs cannot deadlock. File locks
(``portalocker``, ``flock`` on POSIX) are released by the kernel when a process dies, so a killed
worker never leaves a lock held. The lock file of ``out/x.csv`` is ``out/.x.csv.repro.lock``; it
stays behind after use, because deleting a lock file races with processes waiting on it.

Writes are atomic: a temporary file in the same folder, then ``os.replace``, so a reader sees the
old content or the new, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import time
from typing import IO, Any, Dict, Iterator, List, Optional, Protocol, Sequence

import attrs
import portalocker

from luigi_repro.errors import LockLost, LockServerUnavailable, LockTimeout, MissingDependency
from luigi_repro.localpath import physical_path

__all__ = [
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
    "fixed_temporary",
    "lock_backend",
    "lock_file_for",
    "lock_file_for_uri",
]

#: Part of the name of every temporary file luigi_repro creates, so leftovers can be recognised.
TMP_MARK = ".repro-tmp-"
#: The end of every run-lock file's name, and the one line such a file holds: inside a folder
#: that is some task's input, only a file with both is taken for a lock rather than for data.
LOCK_SUFFIX = ".repro.lock"
LOCK_FILE_MARK = b"luigi_repro run lock\n"


def _temporary_name(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def fixed_temporary(path: str) -> str:
    """The one temporary name used by a writer that holds ``path``'s run lock."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{TMP_MARK.rstrip('-')}")


def atomic_write(path: str, data: bytes, *, locked: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file in the same folder + replace).

    ``locked`` says the caller holds the run lock, so it is the only writer: the temporary file
    then has a fixed name, and a leftover from a crash is simply overwritten by the next write
    (no folder scan is ever needed to clean up).
    """
    if locked:
        tmp = fixed_temporary(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    else:
        tmp = _temporary_name(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_replace(src: str, dst: str) -> None:
    """Move ``src`` to ``dst``, replacing whatever is there (file or folder).

    A file replaces a file atomically. A folder cannot be swapped with one system call, so the old
    one is first renamed aside, the new one renamed into place, and only then the old one deleted:
    a reader meanwhile sees the old output, no output, or the new one — never a mix.
    """
    try:
        os.replace(src, dst)
        return
    except OSError as exc:
        if exc.errno not in (errno.EISDIR, errno.ENOTDIR, errno.ENOTEMPTY, errno.EEXIST):
            raise
    aside = fixed_temporary(dst.rstrip("/")) + "-old"
    _discard(aside)  # left by a crash between the two renames of an earlier replacement
    os.rename(dst, aside)
    try:
        os.rename(src, dst)
    except BaseException:
        os.rename(aside, dst)
        raise
    _discard(aside)


def _discard(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def lock_file_for(path: str) -> str:
    """The lock file guarding the output at ``path``: hidden, in the same folder.

    The folder is resolved (symlinks included, and ``..`` after them as the OS does), so two
    spellings of one output share one lock and two different files never do.
    """
    folder, name = os.path.split(physical_path(path.rstrip("/")))
    return os.path.join(os.path.realpath(folder), f".{name}{LOCK_SUFFIX}")


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


def _mark(lock: portalocker.Lock[IO[str]]) -> None:
    """Write the run-lock mark into a new (empty) lock file, so it is never taken for data."""
    stream = lock.fh
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):
        if os.fstat(stream.fileno()).st_size == 0:
            stream.write(LOCK_FILE_MARK.decode())
            stream.flush()


class FileLocks:
    """Run locks as ``portalocker`` file locks (``flock``): one host, any number of processes."""

    @contextlib.contextmanager
    def hold(
        self, requests: Sequence[LockRequest], timeout: float, task_id: Optional[str] = None
    ) -> Iterator[HeldLocks]:
        deadline = time.monotonic() + timeout
        held: List[portalocker.Lock[IO[str]]] = []
        try:
            for name in sorted({os.path.realpath(r.file) for r in requests}):
                folder = os.path.dirname(name)
                if folder:
                    os.makedirs(folder, exist_ok=True)
                remaining = max(0.0, deadline - time.monotonic())
                lock = portalocker.Lock(
                    name,
                    mode="a",
                    timeout=remaining,
                    check_interval=min(0.1, max(remaining / 10, 0.005)),
                    fail_when_locked=False,
                )
                try:
                    lock.acquire()
                except portalocker.exceptions.LockException:
                    raise LockTimeout(name, timeout, task_id) from None
                held.append(lock)
                _mark(lock)
            yield _NothingToCheck()
        finally:
            for lock in reversed(held):
                lock.release()


class _RedisHeld:
    def __init__(self, locks: List[Any], task_id: Optional[str]) -> None:
        self.locks = locks
        self.task_id = task_id

    def check(self) -> None:
        for lock in self.locks:
            try:
                lock.ensure_held()
            except portalocker.exceptions.LockException:
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
