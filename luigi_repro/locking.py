"""Run locks and atomic replacement of files and folders, safe in folders others can write.

A run lock per output guarantees that two processes never run the same task on the same outputs
at once; locks are taken in sorted order so that tasks sharing outputs cannot deadlock. File locks
(``flock``) are released by the kernel when a process dies, so a killed worker never leaves a
lock held. The lock file of ``out/x.csv`` is ``out/.x.csv.repro.lock``; it stays behind after
use, because deleting a lock file races with processes waiting on it.

Writes are atomic: a temporary file in the same folder, then ``os.replace``, so a reader sees the
old content or the new, never a mix. Results folders are shared (teammates, CI jobs, other
users), so nothing here trusts a name another process could have planted: a temporary gets a
fresh random name and is created exclusively without following symlinks, a lock file is opened
without following one, and a folder is only ever created as written, never through a symlink
that points nowhere. With ``fsync`` the file is flushed to disk before the rename and its folder
after it, so after a power loss a record never vouches for bytes that never reached the disk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import shutil
import stat as stat_module
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Sequence, Set, Tuple

import attrs

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

#: Part of the name of every temporary file luigi_repro creates, so leftovers can be recognised.
TMP_MARK = ".repro-tmp-"
#: The end of every run-lock file's name, and the one line such a file holds: inside a folder
#: that is some task's input, only a file with both is taken for a lock rather than for data.
LOCK_SUFFIX = ".repro.lock"
LOCK_FILE_MARK = b"luigi_repro run lock\n"

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: A file that did not exist, created by us: never an existing file, never through a symlink.
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
#: How many fresh names to try before giving up (each clash is a name someone else holds).
_ATTEMPTS = 100


def temporary_name(path: str) -> str:
    """A fresh, unguessable temporary name beside ``path``: ``.<name>.repro-tmp-<pid>-<hex>``."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def create_new_file(name_for: Callable[[], str]) -> Tuple[str, int]:
    """Create a file under a fresh name from ``name_for``; its path and a descriptor to write.

    The file is created exclusively and without following symlinks, so a name planted by another
    process (a symlink to a victim file) is never written through: another name is tried.
    """
    for _ in range(_ATTEMPTS):
        path = name_for()
        try:
            return path, os.open(path, NEW_FILE_FLAGS, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno != errno.ELOOP:  # a symlink in the way on systems that say ELOOP
                raise
    raise FileExistsError(errno.EEXIST, "no free temporary name after many attempts", name_for())


def fsync_folder(folder: str) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk."""
    fd = os.open(folder or ".", os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # cannot sync folders
            raise
    finally:
        os.close(fd)


_deferred = threading.local()


@contextlib.contextmanager
def folder_syncs_deferred() -> Iterator[None]:
    """Within the block, :func:`fsync_folder_soon` collects folders; each is flushed once at
    the end. A run renames its outputs and then its records into the same folders: one flush
    of each folder at the end makes every rename durable, and a record made durable before its
    output's rename only ever describes content that is not there (its fingerprint says so)."""
    outer = getattr(_deferred, "folders", None)
    if outer is not None:
        yield  # the outer block flushes
        return
    folders: Set[str] = set()
    _deferred.folders = folders
    try:
        yield
    finally:
        _deferred.folders = None
        for folder in sorted(folders):
            with contextlib.suppress(OSError):  # gone with a failed run: nothing to keep
                fsync_folder(folder)


def fsync_folder_soon(folder: str) -> None:
    """:func:`fsync_folder` now, or at the end of the :func:`folder_syncs_deferred` block."""
    folders: Optional[Set[str]] = getattr(_deferred, "folders", None)
    if folders is None:
        fsync_folder(folder)
    else:
        folders.add(folder)


def fsync_tree(path: str) -> None:
    """Flush a file, or every file and folder inside a folder, to disk (symlinks are skipped)."""
    st = os.lstat(path)
    if stat_module.S_ISREG(st.st_mode):
        _fsync_file(path)
    elif stat_module.S_ISDIR(st.st_mode):
        for folder, _, files in os.walk(path, topdown=False):
            for name in files:
                child = os.path.join(folder, name)
                if stat_module.S_ISREG(os.lstat(child).st_mode):
                    _fsync_file(child)
            fsync_folder(folder)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | os.O_NONBLOCK)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file in the same folder + replace).

    The temporary has a fresh random name and is removed if anything fails, so no fixed name
    exists for another process to plant a symlink at. With ``fsync`` the file is on disk before
    the rename, and the rename is on disk when this returns.
    """
    tmp, fd = create_new_file(lambda: temporary_name(path))
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            if fsync:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_folder_soon(os.path.dirname(path))


def atomic_replace(src: str, dst: str, *, fsync: bool = False) -> None:
    """Move ``src`` to ``dst``, replacing whatever is there (file or folder).

    A file replaces a file atomically. A folder cannot be swapped with one system call, so the old
    one is first renamed aside (to a fresh random name), the new one renamed into place, and only
    then the old one deleted: a reader meanwhile sees the old output, no output, or the new one —
    never a mix. With ``fsync`` the renames are on disk when this returns (the caller flushes
    ``src`` itself first).
    """
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EISDIR, errno.ENOTDIR, errno.ENOTEMPTY, errno.EEXIST):
            raise
        _replace_folder(src, dst)
    if fsync:
        fsync_folder_soon(os.path.dirname(dst.rstrip("/")))


def _replace_folder(src: str, dst: str) -> None:
    aside = temporary_name(dst.rstrip("/"))
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


def make_folders(folder: str) -> None:
    """Create ``folder`` and its parents as written (``os.makedirs``), never through a symlink.

    ``os.makedirs`` refuses a component that is a symlink pointing nowhere (it exists, but is no
    folder), so a dangling link planted in a shared folder never makes us create the folders it
    names; a symlink to an existing folder is followed, as the user wrote it.
    """
    if folder:
        os.makedirs(folder, exist_ok=True)


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
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC | os.O_NONBLOCK
#: A lock file we may not write (another user's): ``flock`` locks a read-only descriptor too.
_LOCK_READ_FLAGS = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | os.O_NONBLOCK
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
