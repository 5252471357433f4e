"""Any Luigi ``FileSystemTarget`` (HDFS, GCS, FTP, SFTP…) made hashable, without knowing it.

:class:`HashableFileSystemTarget` wraps a target: its content is streamed through the target's
own ``open('r')`` and hashed (text is hashed as UTF-8), and its record is written and read
through the same file system, at ``<path>.repro.json``. A generic file system offers no cheap
proof that content is unchanged, so every check streams the content again; a backend-specific
target (like :class:`~luigi_repro.targets.s3.HashableS3Target`) avoids that.

Tasks keep returning their usual targets from ``output()``: luigi_repro wraps them when it needs
to, and inputs that are plain file-system targets are fingerprinted the same way.
"""

from __future__ import annotations

import copy
from typing import IO, Any, Hashable, Optional

import luigi
from luigi.target import FileSystemTarget

from luigi_repro.config import Settings
from luigi_repro.fingerprint import hash_stream
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
    def uri(self) -> str:
        path = self.path
        return path if "://" in path else f"{type(self.target).__name__.lower()}:{path}"

    def exists(self) -> bool:
        return bool(self.target.exists())

    def observe(
        self, context: FingerprintContext, previous: Optional[Observation] = None
    ) -> Observation:
        if not self.target.exists():
            raise FileNotFoundError(self.uri)
        with self.target.open("r") as stream:
            fingerprint, size = hash_stream(
                _AsBytes(stream),  # type: ignore[arg-type]  # duck-typed binary stream
                context.algorithm,
                context.counters,
            )
        return Observation(fingerprint, size, {})

    def _record_target(self, settings: Settings) -> FileSystemTarget:
        record = copy.copy(self.target)
        record.path = self.record_location(settings)
        if hasattr(record, "format"):
            record.format = luigi.format.Nop
        return record

    def record_location(self, settings: Settings) -> str:
        return self.path + settings.record_suffix

    def read_record_bytes(self, settings: Settings) -> Optional[bytes]:
        record = self._record_target(settings)
        if not record.exists():
            return None
        with record.open("r") as stream:
            data = stream.read()
        return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)

    def write_record_bytes(self, settings: Settings, data: bytes) -> None:
        # The target's own atomic write (temporary file, then move) replaces the record.
        with self._record_target(settings).open("w") as stream:
            try:
                stream.write(data)
            except TypeError:  # a text-only stream: records are UTF-8 JSON
                stream.write(data.decode("utf-8"))

    def remove_record(self, settings: Settings) -> None:
        location = self.record_location(settings)
        if self.target.fs.exists(location):
            self.target.fs.remove(location)

    def change_token(self) -> Optional[Hashable]:
        return None  # nothing cheap to compare: the protocol cannot see a skipped rewrite


def _adapt_filesystem(target: Any) -> Optional[HashableTarget]:
    if isinstance(target, FileSystemTarget):
        return HashableFileSystemTarget(target)
    return None


register_adapter("filesystem", _adapt_filesystem, priority=1000)
