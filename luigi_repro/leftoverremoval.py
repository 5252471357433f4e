"""Removing leftovers (:mod:`luigi_repro.leftovers`), each checked again at the last moment.

Between the survey and the removal a process may start using what was found. So each removal
looks again: the same file (device and inode) must still be at the path and still be a leftover,
and neither be nor lie inside a recorded output (whose data it would be).

A lock file is removed while we hold its lock ourselves: a process opening it right then either
waits for us and then sees that the file it locked is no longer at its path (luigi_repro's file
locks check that and lock the new file), or opens the new one. A record is removed while we hold
its output's run lock, so a run that is about to write that output is never disturbed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat as stat_module
import time
from typing import Iterator, List, Optional, Set, Tuple

from luigi_repro.atomicfiles import O_CLOEXEC, O_NOFOLLOW
from luigi_repro.leftovers import (
    Leftover,
    file_identity,
    in_use,
    lock_kind,
    open_paths,
    record_output,
    recorded_output_holding,
    temporary_verdict,
    temporary_writer,
)
from luigi_repro.locking import lock_file_for

__all__ = ["remove_leftovers"]

_OPEN_FLAGS = os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK
_CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK


class _Kept(Exception):
    """The leftover is no longer one (or is in use now): it stays, for this reason."""


class _Gone(Exception):
    """Someone else removed it first: nothing is left to remove."""


def _identity(path: str) -> Tuple[int, int, int]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise _Gone() from None
    return file_identity(st)


def _same(leftover: Leftover) -> None:
    if _identity(leftover.path) != leftover.identity:
        raise _Kept("it was replaced since it was found")


@contextlib.contextmanager
def _locked(path: str, create: bool) -> Iterator[bool]:
    """Hold an exclusive lock on the lock file ``path`` without waiting; yields whether we
    created the file. Raises :class:`_Kept` when a process holds it."""
    created = False
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        if not create:
            raise _Gone() from None
        fd = os.open(path, _CREATE_FLAGS, 0o666)
        created = True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _Kept(f"a process holds {path} now") from None
            raise
        held, there = os.fstat(fd), os.lstat(path)
        if (held.st_dev, held.st_ino) != (there.st_dev, there.st_ino):
            raise _Kept(f"{path} was replaced meanwhile")
        yield created
        if created:
            os.unlink(path)  # ours, still held: nobody can have locked it in between
    finally:
        os.close(fd)


def _remove_lock(leftover: Leftover) -> None:
    with _locked(leftover.path, create=False):
        _same(leftover)
        if not lock_kind(leftover.path):
            raise _Kept("it no longer holds only the run-lock mark")
        os.unlink(leftover.path)


def _remove_record(leftover: Leftover, record_suffix: str, max_record_bytes: int) -> None:
    _same(leftover)
    output = record_output(leftover.path, record_suffix, max_record_bytes)
    if output is None:
        raise _Kept("it is no longer a record")
    with _locked(lock_file_for(output), create=True):
        _same(leftover)
        if os.path.lexists(output):
            raise _Kept(f"its output {output} is there again")
        os.unlink(leftover.path)


def _remove_temporary(leftover: Leftover, older_than: float, opened: Set[str]) -> None:
    _same(leftover)
    st = os.lstat(leftover.path)
    _, pid = temporary_writer(os.path.basename(leftover.path))
    ok, why = temporary_verdict(leftover.path, st, pid, older_than, time.time())
    if not ok:
        raise _Kept(why)
    if in_use(leftover.path, opened):
        raise _Kept("a process has it open")
    if stat_module.S_ISDIR(st.st_mode):
        shutil.rmtree(leftover.path)
    else:
        os.unlink(leftover.path)


def remove_leftovers(
    leftovers: List[Leftover], older_than: float, record_suffix: str, max_record_bytes: int
) -> List[Tuple[Leftover, Optional[str]]]:
    """Remove each leftover that still is one: ``[(leftover, None when removed, else why
    not)]``. Only what the survey found is touched."""
    opened = open_paths() if any(item.kind == "temporary" for item in leftovers) else set()
    outcome: List[Tuple[Leftover, Optional[str]]] = []
    for leftover in leftovers:
        try:
            holder = recorded_output_holding(leftover.path, record_suffix, max_record_bytes)
            if holder is not None:
                raise _Kept(f"it is data of the recorded output {holder}")
            if leftover.kind == "lock":
                _remove_lock(leftover)
            elif leftover.kind == "record":
                _remove_record(leftover, record_suffix, max_record_bytes)
            else:
                _remove_temporary(leftover, older_than, opened)
        except _Gone:
            outcome.append((leftover, None))
        except _Kept as kept:
            outcome.append((leftover, str(kept)))
        except OSError as exc:
            outcome.append((leftover, f"it cannot be removed ({exc.strerror or exc})"))
        else:
            outcome.append((leftover, None))
    return outcome
