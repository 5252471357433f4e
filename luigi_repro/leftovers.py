"""Leftovers: what luigi_repro (and Luigi's atomic writes) left behind under a folder.

Three kinds, each recognised strictly, so that nothing a user made is ever taken for one:

``record``
    ``<x>.repro.json`` (the configured suffix) whose ``<x>`` is gone, when the file parses as a
    luigi_repro record with an output named ``<x>``. A file merely named like a record is data.
``lock``
    a run-lock file (``.<x>.repro.lock``, or ``<40 hex>.lock`` in the user's lock folder) that
    holds exactly the run-lock mark and that no process holds: a non-blocking ``flock`` on it
    succeeds. A lock some process holds is never one, nor the lock beside an output that is in
    place: the next run of its task takes that lock again, so removing it would only churn (a
    healthy results folder has no leftovers).
``temporary``
    Luigi's ``<x>-luigi-tmp-<9 or 10 digits>`` and luigi_repro's ``.<x>.repro-tmp-<pid>-<hex>``
    (and the fixed ``.<x>.repro-tmp`` and ``.<x>.repro-tmp-old`` of earlier versions), files or
    folders (never symlinks) unchanged for longer than the age asked for, whose writer is gone:
    the process named in the name is not running, and no process of this host has the file (or
    a file in the folder) open, as far as ``/proc`` lets us see. "Unchanged" counts the inode
    change time too: a file staged with ``shutil.copy2`` (or ``tar``, ``rsync -a``) keeps an old
    modification time although it was made a moment ago.

Nothing inside a recorded folder output (a folder ``<x>`` whose record ``<x>.repro.json`` beside
it names it), nor a recorded output itself, is ever one of these, whatever its name: it is that
output's data, counted in its fingerprint (a bundle of copied records, say).

Removal is in :mod:`luigi_repro.leftoverremoval`; it checks each again first.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat as stat_module
from typing import Iterable, Iterator, List, Optional, Set, Tuple

import attrs

from luigi_repro.atomicfiles import O_CLOEXEC, O_NOFOLLOW, TMP_MARK
from luigi_repro.errors import RecordError
from luigi_repro.locking import LOCK_FILE_MARK, LOCK_SUFFIX
from luigi_repro.plainfiles import NotPlainFile, read_plain
from luigi_repro.record import parse_record
from luigi_repro.targets.bookkeeping import describes_output

__all__ = [
    "Leftover",
    "Survey",
    "file_identity",
    "is_lock_free",
    "lock_kind",
    "record_output",
    "recorded_output_holding",
    "survey",
    "temporary_verdict",
    "temporary_writer",
    "in_use",
    "open_paths",
]

_LUIGI_TEMPORARY = re.compile(r"(.+)-luigi-tmp-(\d{9,10})")
_OUR_TEMPORARY = re.compile(
    r"\.(.+)" + re.escape(TMP_MARK.rstrip("-")) + r"(?:-old|-(\d+)-[0-9a-f]{8})?"
)
_URI_LOCK = re.compile(r"[0-9a-f]{40}\.lock")
_LOCK_OPEN_FLAGS = os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK


@attrs.frozen
class Leftover:
    """One file or folder of ours found under a path: removable, or kept with the reason."""

    path: str
    kind: str
    why: str
    size: int
    #: (device, inode, ctime) when found: removal refuses anything else at that path later,
    #: a file made since under a reused inode number included.
    identity: Tuple[int, int, int]


@attrs.frozen
class Survey:
    """What :func:`survey` found: leftovers to remove, and ours that are still in use."""

    leftovers: List[Leftover]
    kept: List[Leftover]


def file_identity(st: os.stat_result) -> Tuple[int, int, int]:
    """What tells one file from another made later at the same path."""
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


def record_output(path: str, record_suffix: str, max_bytes: int) -> Optional[str]:
    """The output the record file at ``path`` describes (beside it), or None when the file is
    not a luigi_repro record of an output of that name (not parseable, or about another)."""
    folder, name = os.path.split(path)
    if not name.endswith(record_suffix) or len(name) == len(record_suffix):
        return None
    output = name[: -len(record_suffix)]
    try:
        data, st = read_plain(path, max_bytes)
    except (OSError, NotPlainFile):
        return None
    if st.st_size > max_bytes or len(data) > max_bytes:
        return None
    try:
        parse_record(data, path, None, max_bytes)
    except RecordError:
        return None
    return os.path.join(folder, output) if describes_output(data, output) else None


def is_recorded_output(path: str, record_suffix: str, max_bytes: int) -> bool:
    """Is ``path`` an output whose record beside it (``<path><suffix>``) names it?"""
    folder, name = os.path.split(os.path.normpath(path))
    if not name:
        return False  # the root folder has no record beside it
    record = os.path.join(folder, name + record_suffix)
    if not os.path.lexists(record):  # the common case costs one lstat
        return False
    return record_output(record, record_suffix, max_bytes) == os.path.normpath(path)


def recorded_output_holding(path: str, record_suffix: str, max_bytes: int) -> Optional[str]:
    """The recorded output that ``path`` is, or lies inside (any folder above it up to the
    root), or None: such a path is that output's data, never a leftover."""
    current = os.path.normpath(os.path.abspath(path))
    while True:
        if is_recorded_output(current, record_suffix, max_bytes):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def lock_beside_output(path: str) -> bool:
    """Is ``path`` the lock file ``.<x>.repro.lock`` of an output ``<x>`` that is in place?"""
    name = os.path.basename(path)
    if not (name.startswith(".") and name.endswith(LOCK_SUFFIX)):
        return False
    output = os.path.join(os.path.dirname(path), name[1 : -len(LOCK_SUFFIX)])
    return os.path.lexists(output)


def lock_kind(path: str) -> bool:
    """Is ``path`` named like a run-lock file and a regular file holding exactly the mark?"""
    name = os.path.basename(path)
    named = (name.startswith(".") and name.endswith(LOCK_SUFFIX)) or _URI_LOCK.fullmatch(name)
    if not named:
        return False
    try:
        data, st = read_plain(path, len(LOCK_FILE_MARK))
    except (OSError, NotPlainFile):
        return False
    return stat_module.S_ISREG(st.st_mode) and data == LOCK_FILE_MARK


def is_lock_free(path: str) -> bool:
    """Does a non-blocking exclusive ``flock`` on ``path`` succeed (no process holds it)?"""
    try:
        fd = os.open(path, _LOCK_OPEN_FLAGS)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    finally:
        os.close(fd)  # closing releases our lock
    return True


def temporary_writer(name: str) -> Tuple[bool, Optional[int]]:
    """Is ``name`` a temporary name of Luigi or luigi_repro, and the writer's pid if it says."""
    if _LUIGI_TEMPORARY.fullmatch(name):
        return True, None
    match = _OUR_TEMPORARY.fullmatch(name)
    if match is None:
        return False, None
    return True, int(match.group(2)) if match.group(2) else None


def _process_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def open_paths() -> Set[str]:
    """Every path some process of this host visibly has open (its descriptors and working
    folder, from ``/proc``); other users' processes are only seen with the right to."""
    found: Set[str] = set()
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return found
    for pid in pids:
        base = f"/proc/{pid}"
        try:
            found.add(os.readlink(f"{base}/cwd"))
            descriptors = os.listdir(f"{base}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                found.add(os.readlink(f"{base}/fd/{fd}"))
            except OSError:
                continue
    return found


def in_use(path: str, opened: Set[str]) -> bool:
    """Is ``path``, or anything inside it, among ``opened``?"""
    real = os.path.realpath(path)
    inside = real.rstrip("/") + "/"
    return any(name == real or name.startswith(inside) for name in opened)


def _changed(st: os.stat_result) -> float:
    """When the file last changed: its content (mtime) or its inode (ctime, which nobody can
    set back, so a copy made now with an old mtime counts as new)."""
    return max(st.st_mtime, st.st_ctime)


def newest_change(path: str, st: os.stat_result) -> float:
    """When ``path`` and, for a folder, everything inside it last changed."""
    newest = _changed(st)
    if stat_module.S_ISDIR(st.st_mode):
        for folder, folders, files in os.walk(path):
            for name in folders + files:
                try:
                    newest = max(newest, _changed(os.lstat(os.path.join(folder, name))))
                except OSError:
                    continue
    return newest


def temporary_verdict(
    path: str, st: os.stat_result, pid: Optional[int], older_than: float, now: float
) -> Tuple[bool, str]:
    """(is it a leftover, why) for a temporary whose name matched."""
    age = now - newest_change(path, st)
    if age < older_than:
        return False, f"changed {age:.0f}s ago, less than {older_than:.0f}s"
    if pid is not None and _process_runs(pid):
        return False, f"its writer, process {pid}, is running"
    return True, f"a temporary unchanged for {age:.0f}s whose writer is gone"


def _entries(top: str, record_suffix: str, max_record_bytes: int) -> Iterator[str]:
    """Each entry path under ``top``, never into a temporary folder nor a recorded output."""
    if recorded_output_holding(top, record_suffix, max_record_bytes) is not None:
        return
    for folder, folders, files in os.walk(top):
        names = folders + files
        present = set(names)
        folders[:] = [
            name
            for name in folders
            if not temporary_writer(name)[0]
            and not (
                name + record_suffix in present
                and is_recorded_output(os.path.join(folder, name), record_suffix, max_record_bytes)
            )
        ]
        for name in names:
            yield os.path.join(folder, name)


def survey(
    paths: Iterable[str], older_than: float, record_suffix: str, max_record_bytes: int, now: float
) -> Survey:
    """The leftovers under ``paths`` (folders, searched whole), and ours still in use."""
    leftovers: List[Leftover] = []
    kept: List[Leftover] = []
    pending: List[Tuple[str, os.stat_result, Optional[int]]] = []
    seen: Set[Tuple[int, int]] = set()
    for top in paths:
        for path in _entries(top, record_suffix, max_record_bytes):
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            identity = file_identity(st)
            name = os.path.basename(path)
            is_temporary, pid = temporary_writer(name)
            regular = stat_module.S_ISREG(st.st_mode)
            if is_temporary and (regular or stat_module.S_ISDIR(st.st_mode)):
                pending.append((path, st, pid))
            elif regular and lock_kind(path) and not lock_beside_output(path):
                found = Leftover(path, "lock", "no process holds it", st.st_size, identity)
                if is_lock_free(path):
                    leftovers.append(found)
                else:
                    kept.append(attrs.evolve(found, why="a process holds it"))
            elif regular and name.endswith(record_suffix):
                # Parsed only when the output is gone: records of outputs in place are many.
                gone = not os.path.lexists(path[: -len(record_suffix)])
                output = record_output(path, record_suffix, max_record_bytes) if gone else None
                if output is not None:
                    why = f"its output {output} is gone"
                    leftovers.append(Leftover(path, "record", why, st.st_size, identity))
    opened = open_paths() if pending else set()
    for path, st, pid in pending:
        leftover, why = temporary_verdict(path, st, pid, older_than, now)
        if leftover and in_use(path, opened):
            leftover, why = False, "a process has it open"
        size = st.st_size if stat_module.S_ISREG(st.st_mode) else _tree_size(path)
        found = Leftover(path, "temporary", why, size, file_identity(st))
        (leftovers if leftover else kept).append(found)

    def ours(item: Leftover) -> bool:  # a recorded output named like one of ours is data
        return not is_recorded_output(item.path, record_suffix, max_record_bytes)

    return Survey(
        sorted(filter(ours, leftovers), key=_by_path), sorted(filter(ours, kept), key=_by_path)
    )


def _by_path(leftover: Leftover) -> str:
    return leftover.path


def _tree_size(path: str) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total
