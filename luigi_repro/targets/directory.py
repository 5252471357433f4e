"""``HashableDirectoryTarget``: a folder output, such as a partitioned Parquet dataset.

Its fingerprint covers a manifest — every relative path with its file's fingerprint — so the
record says which file was added, removed or changed. It is written through
``temporary_path()``: a fresh temporary folder, moved into place only when the block succeeds,
replacing the previous folder as a whole. The record is ``<folder>.repro.json`` beside it.
"""

from __future__ import annotations

import contextlib
import os
from typing import FrozenSet, Iterator, List

from luigi_repro.fingerprint import iter_directory
from luigi_repro.runtime import runtime
from luigi_repro.targets.base import is_bookkeeping
from luigi_repro.targets.local import HashableLocalTarget

__all__ = ["HashableDirectoryTarget"]


class HashableDirectoryTarget(HashableLocalTarget):
    """A folder output. ``exists()`` only for a folder; ``temporary_path()`` creates one."""

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    @contextlib.contextmanager
    def temporary_path(self) -> Iterator[str]:
        """A new empty folder beside the output; on success it replaces the output atomically.

        If the block raises, the temporary folder is removed and the previous output is kept.
        """
        with super().temporary_path() as folder:
            os.mkdir(folder)  # fails on anything planted at the name, never writes through it
            yield folder

    def files(self) -> List[str]:
        """The folder's files as sorted relative paths with ``/`` separators."""
        suffix = runtime().records().suffix

        def skip(entry: os.DirEntry[str], siblings: FrozenSet[str]) -> bool:
            return is_bookkeeping(entry, suffix, siblings)

        return sorted(rel for rel, _, _ in iter_directory(self.path, skip))

    def path_of(self, relative: str) -> str:
        """The local path of a file inside the folder."""
        return os.path.join(self.path, *relative.split("/"))
