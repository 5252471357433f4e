"""Atomic creation and replacement of files and folders, safe in folders others can write.

Writes are atomic: a temporary file in the same folder, then ``os.replace``, so a reader sees the
old content or the new, never a mix. Results folders are shared (teammates, CI jobs, other
users), so nothing here trusts a name another process could have planted: a temporary gets a
fresh random name and is created exclusively without following symlinks, and a folder is only
ever created as written, never through a symlink that points nowhere. With ``fsync`` the file is
flushed to disk before the rename and its folder after it, so after a power loss a record never
vouches for bytes that never reached the disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat as stat_module
import threading
from typing import Callable, Iterator, Optional, Set, Tuple

#: Part of the name of every temporary file luigi_repro creates, so leftovers can be recognised.
TMP_MARK = ".repro-tmp-"
#: Flags that keep ``os.open`` from following a planted symlink or leaking into children.
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: A file that did not exist, created by us: never an existing file, never through a symlink.
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC
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
    fd = os.open(folder or ".", os.O_RDONLY | _O_DIRECTORY | O_CLOEXEC)
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
    fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK)
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
    discard(aside)


def discard(path: str) -> None:
    """Remove a file or folder left behind, quietly (it may be gone already)."""
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
