"""Any Luigi ``FileSystemTarget`` (HDFS, GCS, FTP, SFTP…) made hashable, without knowing it.

:class:`HashableFileSystemTarget` wraps a target and talks to its file system through Luigi's
common client methods: ``fs.get(path, local_path)`` copies the content down to be hashed byte
for byte, and ``fs.put(local_path, path)`` / ``fs.get`` store and read the record at
``<path>.repro.json``. A file system without ``get`` has its content hashed as its target's
``open('r')`` reads it (text as UTF-8); one without ``put`` and ``get`` cannot keep records, so
its targets can be inputs (checked by content) but not outputs of a checked task (a clear error
rather than a record written somewhere wrong). A generic file system offers no cheap proof that
content is unchanged, so every check reads the content again; a backend-specific target (like
:class:`~luigi_repro.targets.s3.HashableS3Target`) avoids that.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO, Any, Hashable, Optional

from luigi.target import FileSystemTarget

from luigi_repro.config import Settings
from luigi_repro.errors import RecordError, UnsupportedTarget
from luigi_repro.fingerprint import hash_file, hash_stream
from luigi_repro.folderprint import fingerprint_directory
from luigi_repro.record import oversize
from luigi_repro.targets.base import (
    FingerprintContext,
    HashableTarget,
    Observation,
    register_adapter,
)

__all__ = ["HashableFileSystemTarget"]


class _AsBytes:
    """A read-only stream over a target's stream that yields bytes even if it gives text."""

    def __init__(self, stream: IO[Any]) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        return chunk.encode("utf-8", "surrogateescape") if isinstance(chunk, str) else bytes(chunk)


class HashableFileSystemTarget(HashableTarget):
    """A hashable view of any ``luigi.target.FileSystemTarget``."""

    def __init__(self, target: FileSystemTarget) -> None:
        self.target = target

    @property
    def path(self) -> str:
        return str(self.target.path)

    @property
    def fs(self) -> Any:
        return self.target.fs

    @property
    def uri(self) -> str:
        path = self.path
        return path if "://" in path else f"{type(self.target).__name__.lower()}:{path}"

    @property
    def supports_records(self) -> bool:
        return callable(getattr(self.fs, "put", None)) and callable(getattr(self.fs, "get", None))

    def exists(self) -> bool:
        return bool(self.target.exists())

    def observe(
        self, context: FingerprintContext, previous: Optional[Observation] = None
    ) -> Observation:
        if not self.target.exists():
            raise FileNotFoundError(self.uri)
        if not callable(getattr(self.fs, "get", None)):
            with self.target.open("r") as stream:
                fingerprint, size = hash_stream(
                    _AsBytes(stream),  # type: ignore[arg-type]  # duck-typed binary stream
                    context.algorithm,
                    context.counters,
                )
            return Observation(fingerprint, size, {})
        with tempfile.TemporaryDirectory(prefix="luigi_repro-") as folder:
            local = os.path.join(folder, "content")
            self.fs.get(self.path, local)
            if os.path.isdir(local):
                tree = fingerprint_directory(local, context.algorithm, counters=context.counters)
                return Observation(tree.fingerprint, tree.size, {}, tree.manifest())
            fingerprint, size = hash_file(local, context.algorithm, context.counters)
        return Observation(fingerprint, size, {})

    def record_location(self, settings: Settings) -> str:
        return self.path + settings.record_suffix

    def read_record_bytes(self, settings: Settings) -> Optional[bytes]:
        location = self.record_location(settings)
        if not self.supports_records or not self.fs.exists(location):
            return None
        with tempfile.TemporaryDirectory(prefix="luigi_repro-") as folder:
            local = os.path.join(folder, "record.json")
            self.fs.get(location, local)
            cap = settings.max_record_bytes
            with open(local, "rb") as stream:
                data = stream.read(cap + 1)
            if len(data) > cap:
                raise RecordError(location, oversize(os.path.getsize(local), cap))
            return data

    def write_record_bytes(self, settings: Settings, data: bytes) -> None:
        if not self.supports_records:
            raise UnsupportedTarget(
                f"{self.uri}: its file system ({type(self.fs).__name__}) has no put/get, so "
                "luigi_repro cannot keep a record beside it; use a Hashable target instead."
            )
        location = self.record_location(settings)
        with tempfile.TemporaryDirectory(prefix="luigi_repro-") as folder:
            local = os.path.join(folder, "record.json")
            with open(local, "wb") as stream:
                stream.write(data)
            if self.fs.exists(location):
                self.fs.remove(location)  # some clients refuse to put over a file
            self.fs.put(local, location)

    def remove_record(self, settings: Settings) -> None:
        location = self.record_location(settings)
        if self.supports_records and self.fs.exists(location):
            self.fs.remove(location)

    def change_token(self) -> Optional[Hashable]:
        return None  # nothing cheap to compare: the protocol cannot see a skipped rewrite


def _adapt_filesystem(target: Any) -> Optional[HashableTarget]:
    if isinstance(target, FileSystemTarget):
        return HashableFileSystemTarget(target)
    return None


register_adapter("filesystem", _adapt_filesystem, priority=1000)
