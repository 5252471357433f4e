"""Copying local files into and out of the run cache, verified, at the speed of ``cp``.

A cached file is copied by the kernel (a reflink where the file system shares blocks, else
``copy_file_range``), never through Python buffers; it is fingerprinted *while* it is copied,
by a second thread reading the same open file (the hash releases the GIL), so verifying costs
no extra time on two cores. The source is held open and checked unchanged (inode, size, times)
before and after, so the bytes copied are the bytes verified.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat as stat_module
import threading
from typing import List, Optional, Tuple

from luigi_repro.atomicfiles import NEW_FILE_FLAGS, O_CLOEXEC, O_NOFOLLOW
from luigi_repro.fingerprint import hash_stream
from luigi_repro.fsclock import fs_now_ns
from luigi_repro.statcache import CachedFingerprint
from luigi_repro.statstore import StatKey

__all__ = ["SizeMismatch", "SourceChanged", "copy_file", "copy_verified", "open_source"]

#: ``ioctl(dest, FICLONE, src)``: share the source's blocks (btrfs, XFS, bcachefs…).
_FICLONE = 0x40049409


class SourceChanged(OSError):
    """The file being copied changed (or was replaced) while it was copied."""


class SizeMismatch(OSError):
    """The file to copy does not have the size it should have: nothing was copied."""


def open_source(path: str) -> int:
    """A read descriptor of a regular file, never through a symlink planted at ``path``.

    Opened without blocking: a FIFO planted where a cached file belongs must cost a refusal,
    not a process waiting forever for a writer.
    """
    fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _copy_range(source: int, dest: int, size: int) -> None:
    try:
        fcntl.ioctl(dest, _FICLONE, source)
        return
    except OSError:
        pass  # not a file system that shares blocks: copy them
    offset = 0
    use_range = hasattr(os, "copy_file_range")
    while offset < size:
        count = min(size - offset, 1 << 30)
        if use_range:
            try:
                done = os.copy_file_range(source, dest, count, offset, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                use_range = False
                continue
        else:
            os.lseek(dest, offset, os.SEEK_SET)
            done = os.sendfile(dest, source, offset, count)
        if done == 0:
            raise SourceChanged(errno.EIO, "the file became shorter while it was copied")
        offset += done


def copy_file(source: int, dest_path: str, *, mode: int = 0o666, fsync: bool = False) -> None:
    """Copy the open ``source`` to ``dest_path``, which must not exist (created exclusively)."""
    size = os.fstat(source).st_size
    dest = os.open(dest_path, NEW_FILE_FLAGS, mode)
    try:
        _copy_range(source, dest, size)
        if fsync:
            os.fsync(dest)
    finally:
        os.close(dest)


def copy_verified(
    source_path: str,
    dest_path: str,
    algorithm: str,
    *,
    mode: int = 0o666,
    fsync: bool = False,
    expected_size: Optional[int] = None,
) -> CachedFingerprint:
    """Copy ``source_path`` to the new file ``dest_path``; return the source's fingerprint,
    taken while copying from the very descriptor the copy reads.

    Raises :class:`SizeMismatch` before copying anything when the source does not have
    ``expected_size`` bytes, and :class:`SourceChanged` when it changed during the copy (the
    fingerprint may then not describe the bytes copied).
    """
    source = open_source(source_path)
    try:
        before = os.fstat(source)
        if expected_size is not None and before.st_size != expected_size:
            raise SizeMismatch(
                errno.EIO, f"it has {before.st_size} bytes, not {expected_size}", source_path
            )
        taken_at = fs_now_ns(source_path, before.st_dev)
        # A second descriptor of the same open file: the copy reads at explicit offsets and
        # never moves the position this one reads from.
        reader = os.fdopen(os.dup(source), "rb", buffering=0)
        result: List[Tuple[str, int]] = []
        failure: List[BaseException] = []

        def fingerprint() -> None:
            try:
                result.append(hash_stream(reader, algorithm))
            except BaseException as exc:  # noqa: BLE001 - handed to the copying thread
                failure.append(exc)

        hasher = threading.Thread(target=fingerprint, name="luigi_repro-verify", daemon=True)
        hasher.start()
        try:
            copy_file(source, dest_path, mode=mode, fsync=fsync)
        finally:
            hasher.join()
            reader.close()
        if failure:
            raise failure[0]
        after = os.fstat(source)
    finally:
        os.close(source)
    if StatKey.of(after) != StatKey.of(before):
        raise SourceChanged(errno.EAGAIN, "the file changed while it was copied", source_path)
    fingerprint_seen, size = result[0]
    return CachedFingerprint(fingerprint_seen, size, StatKey.of(before), taken_at)
