"""The file a local target's ``open('w')`` returns: written aside, renamed into place on close.

Kept apart from the target so that its naming (Luigi's ``-luigi-tmp-`` convention, made
unguessable) and its cleanup are one small thing to read and to test.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from typing import Any

from luigi_repro.atomicfiles import create_new_file, discard, fsync_folder_soon

__all__ = ["AtomicFile", "luigi_temporary_name", "unused_temporary_name"]


def luigi_temporary_name(path: str) -> str:
    """Luigi's temporary name for ``path`` (``<path>-luigi-tmp-<10 digits>``), but unguessable."""
    return f"{path}-luigi-tmp-{secrets.randbelow(10_000_000_000):010}"


def unused_temporary_name(path: str) -> str:
    """A name from :func:`luigi_temporary_name` that nothing (a planted symlink) holds now.

    The caller's code creates it; luigi_repro's own writers create it exclusively anyway.
    """
    while True:
        name = luigi_temporary_name(path)
        if not os.path.lexists(name):
            return name


class AtomicFile(io.BufferedWriter):
    """The file ``open('w')`` returns: written under a fresh temporary name, renamed on close.

    Unlike Luigi's ``atomic_file``, the temporary is created exclusively and without following
    a symlink, an exception inside ``with`` (or a file dropped unclosed, as by an abandoned
    generator ``run()``) removes it, and with ``fsync`` the data is on disk before the rename.
    """

    def __init__(self, path: str, fsync: bool) -> None:
        self.path = path
        self._fsync = fsync
        self.tmp_path, fd = create_new_file(lambda: luigi_temporary_name(path))
        super().__init__(io.FileIO(fd, "w"))

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
            if self._fsync:
                os.fsync(self.fileno())
        except BaseException:
            self._abandon()
            raise
        super().close()
        try:
            os.replace(self.tmp_path, self.path)
        except BaseException:
            discard(self.tmp_path)
            raise
        if self._fsync:
            fsync_folder_soon(os.path.dirname(self.path))

    def _abandon(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.raw.close()
        with contextlib.suppress(OSError, ValueError):
            super().close()
        discard(self.tmp_path)

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is not None:
            self._abandon()
            return
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # also when __init__ failed half-way
            if not self.closed:
                self._abandon()
