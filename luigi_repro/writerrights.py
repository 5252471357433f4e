"""What a record may make a check read: what its writer could read, and data that exists.

Records sit in shared folders, and a check reads every location they name with the checker's
rights. When root (or a service account) checks a folder where other users write, a record
planted by one of them could name ``/etc/shadow`` and the audit would print its fingerprint: a
way to test guesses of a file its writer may not read. So, for a record owned by a user who is
neither the checker nor root, a local location it names is read only if that owner could read
it: the file readable by its owner uid, or by one of the owner's groups (the record's group and
the groups the system lists for that user), or by everyone, and every folder above it searchable
likewise. Otherwise the location is reported, not read.

The rule holds at the moment of reading, not only when the location is looked up: while a
named location is fingerprinted (inside :func:`reading_for`), every file is checked again on the
descriptor actually opened (:func:`check_may_read`), every cached fingerprint before it is used,
and every folder before it is walked, so neither a symlink inside a named folder nor a path
swapped between the check and the read reaches a file the writer could not read.

This is an approximation from mode bits: access control lists are not looked at, so a location
the writer could in fact read may be refused (reported, never read in secret).

The same holds for a symlink another user planted where a check reads (a team drop folder
that is an input): the link is described, never followed to a file its owner could not read,
so its fingerprint cannot end up in a record they can read (:func:`foreign_link_refusal`).

Nor does another user's record make a check hash holes: what it names is not read when it is
sparse far beyond the data it holds — a file, or the files read for one location together
(a folder of many sparse files), at least ``HOLLOW_MIN_BYTES`` long with under 1/``HOLLOW_RATIO``
of it on disk (a 15 TiB file of holes costs nothing to make and hours to hash). Our own records,
and inputs declared by code, are read whatever they are.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import stat as stat_module
from typing import FrozenSet, Iterator, List, Optional, Tuple

__all__ = [
    "HOLLOW_MIN_BYTES",
    "HOLLOW_RATIO",
    "HollowFile",
    "NotReadableByWriter",
    "check_may_read",
    "current_reader",
    "foreign_link_refusal",
    "reading_for",
    "writer_refusal",
]

#: While a location a record names is read: ``(writer,)``, the writer ``(uid, gid)`` whose
#: rights bound what is read, or ``(None,)`` when they do not (ours, root's). None otherwise.
_reader: contextvars.ContextVar[Optional[Tuple[Optional[Tuple[int, int]]]]] = (
    contextvars.ContextVar("luigi_repro_reader", default=None)
)

#: Bytes long and bytes on disk of the files read so far within :func:`reading_for`.
_tally: contextvars.ContextVar[Optional[List[int]]] = contextvars.ContextVar(
    "luigi_repro_hollow_tally", default=None
)

#: What another user's record names is "hollow" (not read) when at least this long...
HOLLOW_MIN_BYTES = 1 << 30
#: ...with less than 1/HOLLOW_RATIO of its length on disk. (Compression rarely reaches 64 times
#: except on runs of zeros; the sparse files this stops hold almost nothing.)
HOLLOW_RATIO = 64


class NotReadableByWriter(PermissionError):
    """A location named by another user's record is one that user could not read; not read."""


class HollowFile(OSError):
    """A location a record names is a sparse file far bigger than its data; not read."""


@functools.lru_cache(maxsize=256)
def _groups(uid: int, gid: int) -> FrozenSet[int]:
    """The groups of user ``uid``: ``gid`` (the record's group) and those the system lists."""
    groups = {gid}
    try:
        import pwd

        entry = pwd.getpwuid(uid)
        groups.update(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except (ImportError, KeyError, OSError):
        pass  # a uid without a name (a container's): its record's group only
    return frozenset(groups)


def _allowed(st: os.stat_result, uid: int, gid: int, owner: int, group: int, other: int) -> bool:
    if st.st_uid == uid:
        return bool(st.st_mode & owner)
    if st.st_gid in _groups(uid, gid):
        return bool(st.st_mode & group)
    return bool(st.st_mode & other)


def _readable(st: os.stat_result, uid: int, gid: int) -> bool:
    readable = _allowed(st, uid, gid, stat_module.S_IRUSR, stat_module.S_IRGRP, stat_module.S_IROTH)
    if stat_module.S_ISDIR(st.st_mode):
        return readable and _searchable(st, uid, gid)
    return readable


def _searchable(st: os.stat_result, uid: int, gid: int) -> bool:
    return _allowed(st, uid, gid, stat_module.S_IXUSR, stat_module.S_IXGRP, stat_module.S_IXOTH)


def _bounding(writer: Optional[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
    """``writer`` when their rights bound what we read: neither us nor root."""
    if writer is None or writer[0] in (0, os.geteuid()):
        return None
    return writer


@contextlib.contextmanager
def reading_for(writer: Optional[Tuple[int, int]]) -> Iterator[None]:
    """Within the block, locations a record names are read: only if ``writer`` (the record's
    owner) could read them, and never hollow files."""
    token = _reader.set((_bounding(writer),))
    counted = _tally.set([0, 0])
    try:
        yield
    finally:
        _tally.reset(counted)
        _reader.reset(token)


def current_reader() -> Optional[Tuple[Optional[Tuple[int, int]]]]:
    """What bounds reading now (None outside :func:`reading_for`); part of the key of anything
    remembered about what was read."""
    return _reader.get()


def _refusal_for(uid: int, gid: int, real: str, st: os.stat_result) -> Optional[str]:
    allowed = _readable(st, uid, gid)
    folder = os.path.dirname(real)
    while allowed:
        try:
            allowed = _searchable(os.stat(folder), uid, gid)
        except OSError:
            return None
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return None if allowed else f"is not readable by the record's writer (uid {uid}); not read"


def _size_text(size: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _refuse_hollow(path: str, st: os.stat_result, count: bool) -> None:
    """Raise :class:`HollowFile` if this file, or the files read for the location so far with
    it, are far longer than the data they hold (``count``: add it to those files)."""
    on_disk = getattr(st, "st_blocks", None)
    if on_disk is None or not stat_module.S_ISREG(st.st_mode):
        return
    on_disk *= 512
    if st.st_size >= HOLLOW_MIN_BYTES and on_disk * HOLLOW_RATIO < st.st_size:
        raise HollowFile(
            f"{path} is a sparse file of {_size_text(st.st_size)} holding "
            f"{_size_text(on_disk)} of data; another user's record names it, so it is not read"
        )
    tally = _tally.get()
    if tally is None or not count:
        return
    tally[0] += st.st_size
    tally[1] += on_disk
    if tally[0] >= HOLLOW_MIN_BYTES and tally[1] * HOLLOW_RATIO < tally[0]:
        raise HollowFile(
            f"{path} and the files read with it are sparse: {_size_text(tally[0])} holding "
            f"{_size_text(tally[1])} of data; another user's record names them, so they are "
            "not read"
        )


def check_may_read(path: str, st: os.stat_result, fd: Optional[int] = None) -> None:
    """Within :func:`reading_for`, raise if the file ``st`` (at ``path``, or opened as ``fd``:
    its real place is then asked of the kernel) must not be read: :class:`HollowFile`, or
    :class:`NotReadableByWriter` when the writer could not read it."""
    reading = _reader.get()
    if reading is None or reading[0] is None:
        return
    _refuse_hollow(path, st, count=fd is None)  # a file is checked by stat, then opened
    writer = reading[0]
    real = None
    if fd is not None:
        with contextlib.suppress(OSError):
            real = os.readlink(f"/proc/self/fd/{fd}")
    if real is None or not os.path.isabs(real):
        real = os.path.realpath(path)
    why = _refusal_for(writer[0], writer[1], real, st)
    if why is not None:
        raise NotReadableByWriter(f"{path} {why}")


def foreign_link_refusal(path: str) -> Optional[str]:
    """Why ``path``, a symlink owned by another user who is not root, must not be followed:
    its owner could not read what it points to. None for anything else."""
    try:
        link = os.lstat(path)
    except OSError:
        return None
    if not stat_module.S_ISLNK(link.st_mode) or link.st_uid in (0, os.geteuid()):
        return None
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return None
    why = _refusal_for(link.st_uid, link.st_gid, real, st)
    if why is None:
        return None
    return f"is a symlink planted by uid {link.st_uid} to a file they cannot read; not followed"


def writer_refusal(uri: str, writer: Optional[Tuple[int, int]]) -> Optional[str]:
    """Why the local location ``uri``, named by a record owned by ``writer`` (``(uid, gid)``),
    is not read; None when it may be (ours, root's, not local, missing, or readable by them)."""
    writer = _bounding(writer)
    if writer is None:
        return None
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    if not os.path.isabs(path) or "\0" in path:
        return None
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return None  # reading it fails the usual way
    return _refusal_for(writer[0], writer[1], real, st)
