"""Which file a local path names: the identity of local targets, locks and cache entries.

Python's ``os.path.abspath`` and ``normpath`` drop ``x/..`` by text alone, but the operating
system resolves a symlink *before* the ``..`` that follows it: with ``link -> a/b``, the path
``link/../data.txt`` opens ``a/data.txt``, not ``data.txt``. Treating both spellings as one
file would share one fingerprint, record and run lock between two different files.
"""

from __future__ import annotations

import os

__all__ = ["physical_path", "relocate", "same_place"]


def physical_path(path: str) -> str:
    """The absolute path of the file the OS opens for ``path`` (relative to the current folder).

    Paths without ``..`` keep their symlinks as written (normalizing them cannot change which
    file they name, and it costs no system call); a ``..`` is resolved after the symlinks
    before it, as the OS does. The last component is never resolved: a record and a lock sit
    beside the name the user wrote.
    """
    joined = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    if ".." not in joined or ".." not in joined.split(os.sep):
        return os.path.normpath(joined)
    head, tail = os.path.split(joined.rstrip(os.sep))
    if tail in ("..", "."):
        return os.path.realpath(joined)
    return os.path.join(os.path.realpath(head), tail)


def same_place(one: str, other: str) -> bool:
    """Do two absolute paths name the same place (one may lead there through a symlink)?"""
    return one == other or os.path.realpath(one) == os.path.realpath(other)


def relocate(uri: str, recorded_at: str, now_at: str) -> str:
    """Where a local location a record names is, now that the record sits elsewhere.

    The record was written beside ``recorded_at`` and is read beside ``now_at``. When both are
    the same place (also through a symlinked folder), ``uri`` is where it was. When the record
    was moved or copied with its folder, ``uri`` is looked for at the same place relative to
    it: a copy's files are the copy's, found there or missing — never the original's.
    """
    if not (os.path.isabs(uri) and os.path.isabs(recorded_at) and os.path.isabs(now_at)):
        return uri
    if same_place(recorded_at, now_at):
        return uri
    offset = os.path.relpath(uri, os.path.dirname(recorded_at))
    return physical_path(os.path.join(os.path.dirname(now_at), offset))
