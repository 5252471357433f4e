"""Which file a local path names: the identity of local targets, locks and cache entries.

Python's ``os.path.abspath`` and ``normpath`` drop ``x/..`` by text alone, but the operating
system resolves a symlink *before* the ``..`` that follows it: with ``link -> a/b``, the path
``link/../data.txt`` opens ``a/data.txt``, not ``data.txt``. Treating both spellings as one
file would share one fingerprint, record and run lock between two different files.
"""

from __future__ import annotations

import os

__all__ = ["physical_path"]


def physical_path(path: str) -> str:
    """The absolute path of the file the OS opens for ``path`` (relative to the current folder).

    Paths without ``..`` keep their symlinks as written (normalizing them cannot change which
    file they name, and it costs no system call); a ``..`` is resolved after the symlinks
    before it, as the OS does. The last component is never resolved: a record and a lock sit
    beside the name the user wrote.
    """
    joined = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    if ".." not in joined.split(os.sep):
        return os.path.normpath(joined)
    head, tail = os.path.split(joined.rstrip(os.sep))
    if tail in ("..", "."):
        return os.path.realpath(joined)
    return os.path.join(os.path.realpath(head), tail)
