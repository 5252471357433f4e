"""The walk over a folder whose files make up a folder fingerprint's manifest.

Kept apart from hashing because it decides what a folder holds, not what the bytes are: which
entries are read by content, which are only described (links, pipes, kernel files), which are
refused, and in which order, so that every copy of a tree walks alike.
"""

from __future__ import annotations

import contextlib
import operator
import os
import stat as stat_module
from typing import (
    Callable,
    Dict,
    FrozenSet,
    Iterator,
    List,
    Optional,
    Set,
    Tuple,
)

from luigi_repro.fsclock import filesystem_type
from luigi_repro.plainfiles import refusal
from luigi_repro.writerrights import check_may_read, current_reader, foreign_link_refusal

#: Decides, from a folder entry and the names beside it, whether it is bookkeeping to skip.
Exclude = Callable[["os.DirEntry[str]", FrozenSet[str]], bool]


def iter_directory(root: str, exclude: Optional[Exclude] = None) -> Iterator[Tuple[str, str, bool]]:
    """Walk ``root``; yield ``(relative posix path, absolute path, described)`` per entry.

    The same walk as :func:`walk_directory`, with ``described`` standing for "no stat".
    """
    for rel, path, st in walk_directory(root, exclude):
        yield rel, path, st is None


def walk_directory(
    root: str, exclude: Optional[Exclude] = None
) -> Iterator[Tuple[str, str, Optional[os.stat_result]]]:
    """Walk ``root``; yield ``(relative posix path, absolute path, stat or None)`` per entry.

    Regular files and symlinks to files are yielded with their stat (symlinks followed), to be
    hashed by content; a plain file costs one ``stat`` and nothing else.
    Symlinks to folders are followed, except into a folder already being walked (a loop) or
    already walked by another path (each folder's content is counted once; the walk goes in
    name order, so every copy of a tree makes the same choice).
    Anything else (a link loop, a dangling symlink, a FIFO or device, a file or folder on a
    kernel file system such as ``/proc`` linked into the tree, an empty folder) is
    yielded with None: it belongs to the manifest but is described rather than read, so
    that pipes cannot hang a check. ``exclude`` receives each entry and its siblings' names and
    drops bookkeeping files.
    """
    walked = {_real(root)}
    # Folders queued but not listed yet: whether they hold anything is learnt when they are
    # listed (once), unless another path reaches them first and must know it now.
    pending: Set[str] = set()
    stack: List[Tuple[str, str, FrozenSet[str], Optional[str]]] = [
        (root, "", frozenset(walked), None)
    ]
    plain_devices: Dict[int, bool] = {}  # a file system's refusal depends only on its type
    reader = current_reader()
    bounded = reader is not None and reader[0] is not None
    while stack:
        folder, prefix, ancestors, queued = stack.pop()
        listing = _listing(folder, prefix, exclude)
        if queued is not None:
            pending.discard(queued)
            if not listing:
                walked.discard(queued)  # an empty folder is never "walked": see below
                yield prefix, folder, None  # an empty folder is content too
                continue
        for entry, rel in listing:
            if entry.is_file(follow_symlinks=False):
                # The common case, kept short: a regular file on a known data file system.
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    yield rel, entry.path, None  # gone since the listing: described
                    continue
                if plain_devices.get(st.st_dev) and stat_module.S_ISREG(st.st_mode):
                    if bounded:
                        check_may_read(entry.path, st)
                    yield rel, entry.path, st
                else:
                    yield rel, entry.path, _plain_stat(entry, plain_devices)
                continue
            if not entry.is_symlink() and not entry.is_dir(follow_symlinks=False):
                yield rel, entry.path, _plain_stat(entry, plain_devices)
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                real = _real(entry.path)
                _check_writer(entry)
                if _refused(entry):
                    yield rel, entry.path, None  # /proc linked into a folder: never walked
                elif real in ancestors:
                    yield rel, entry.path, None  # a loop: described, never followed
                elif real in pending and not _holds_anything(entry.path, exclude):
                    yield rel + "/", entry.path, None  # queued by another path, but empty
                elif real in walked:
                    # Another way into a folder already walked (symlinks can form a DAG whose
                    # paths double with every level): described, its content counted once.
                    yield rel, entry.path, None
                else:
                    walked.add(real)
                    pending.add(real)
                    stack.append((entry.path, rel + "/", ancestors | {real}, real))
                continue
            _check_writer(entry)
            yield rel, entry.path, None if _refused(entry) else entry.stat(follow_symlinks=True)


def _plain_stat(
    entry: os.DirEntry[str], plain_devices: Dict[int, bool]
) -> Optional[os.stat_result]:
    """The stat of an entry that is not a symlink or folder (one system call), or None when
    it is not a regular file holding data (a FIFO, a device, a file of a kernel file system)."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None  # gone since the listing: described like a dangling link
    check_may_read(entry.path, st)
    if not stat_module.S_ISREG(st.st_mode):
        return None
    plain = plain_devices.get(st.st_dev)
    if plain is None:
        plain = refusal(st, entry.path) is None
        if filesystem_type(st.st_dev) != "unknown-host-clock":  # else the path decides
            plain_devices[st.st_dev] = plain
    return st if plain else None


def _check_writer(entry: os.DirEntry[str]) -> None:
    """Raise if the writer of the record naming this folder could not read the entry (symlinks
    followed): the folder is then not fingerprinted at all (see ``writerrights``)."""
    try:
        st = entry.stat(follow_symlinks=True)
    except OSError:
        return  # described by _refused
    check_may_read(entry.path, st)


def _refused(entry: os.DirEntry[str]) -> bool:
    """Is this entry (symlinks followed) anything but a regular file or folder holding data,
    or a link another user planted to what they cannot read?"""
    with contextlib.suppress(OSError):
        if entry.is_symlink() and foreign_link_refusal(entry.path) is not None:
            return True
    try:
        st = entry.stat(follow_symlinks=True)
    except OSError:
        return True  # a link loop or a dangling link
    if stat_module.S_ISDIR(st.st_mode) and refusal(st) is None:
        return False
    return not stat_module.S_ISREG(st.st_mode) or refusal(st) is not None


_name = operator.attrgetter("name")


def _real(path: str) -> str:
    return os.path.realpath(path)


def _holds_anything(folder: str, exclude: Optional[Exclude]) -> bool:
    """Does ``folder`` hold an entry ``exclude`` keeps? (Stops at the first one.)"""
    with os.scandir(folder) as listed:
        entries = list(listed)
    if exclude is None:
        return bool(entries)
    names = frozenset(entry.name for entry in entries)
    return any(not exclude(entry, names) for entry in entries)


def _listing(
    folder: str, prefix: str, exclude: Optional[Exclude]
) -> List[Tuple[os.DirEntry[str], str]]:
    with os.scandir(folder) as entries:
        found = sorted(entries, key=_name)  # the same walk on every copy
    names = frozenset(entry.name for entry in found)
    return [
        (entry, prefix + entry.name)
        for entry in found
        if exclude is None or not exclude(entry, names)
    ]


#: Starts every description of a non-regular entry; a NUL-led prefix keeps descriptions apart
#: from ordinary file content in practice.
SPECIAL_PREFIX = b"\0luigi_repro-special\0"


def describe_special(path: str) -> bytes:
    """The bytes that stand for a manifest entry that is not a regular file."""
    try:
        return SPECIAL_PREFIX + b"symlink:" + os.fsencode(os.readlink(path))
    except OSError:
        st = os.lstat(path)
        if stat_module.S_ISDIR(st.st_mode):
            return SPECIAL_PREFIX + b"directory"
        return SPECIAL_PREFIX + b"type:" + str(stat_module.S_IFMT(st.st_mode)).encode()
