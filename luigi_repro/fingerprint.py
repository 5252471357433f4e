"""Content fingerprints of bytes, streams, files and directory manifests.

A fingerprint is the string ``"<algorithm>:<hex digest>"``. The algorithm travels with the digest so
that a record made with one algorithm is never compared with a digest made by another.

Files are read with ``readinto`` into one reused buffer, so hashing runs near memory speed and in
constant memory whatever the file size. This module knows nothing about Luigi. The walk that
lists a folder's entries lives in :mod:`luigi_repro.folderwalk`; its names are importable here.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import threading
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    cast,
)

import attrs
import xxhash

from luigi_repro.errors import MissingDependency
from luigi_repro.folderwalk import (
    Exclude,
    describe_special,
    iter_directory,
    walk_directory,
)
from luigi_repro.plainfiles import open_plain

__all__ = [
    "ALGORITHMS",
    "CHUNK_SIZE",
    "CRYPTOGRAPHIC_ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "Counters",
    "Exclude",
    "Hasher",
    "algorithm_of",
    "check_algorithm",
    "describe_special",
    "diff_manifests",
    "hash_bytes",
    "hash_file",
    "hash_stream",
    "iter_directory",
    "walk_directory",
    "manifest_fingerprint",
    "new_hasher",
    "short",
    "usable_algorithm",
]

DEFAULT_ALGORITHM = "xxh3_128"

#: Bytes read per ``readinto`` call: large enough to amortise the system call and the kernel's copy
#: setup (1, 2 and 4 MiB measured by ``benchmarks/hashing.py``: 4 MiB was fastest).
CHUNK_SIZE = 1 << 22


class Hasher(Protocol):
    """The part of the ``hashlib`` interface that fingerprints need."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


def _blake3() -> Hasher:
    try:
        import blake3
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependency("blake3", "blake3") from exc
    return cast(Hasher, blake3.blake3())


ALGORITHMS: Dict[str, Callable[[], Hasher]] = {
    "xxh3_128": xxhash.xxh3_128,
    "xxh3_64": xxhash.xxh3_64,
    "sha256": hashlib.sha256,
    "blake2b": hashlib.blake2b,
    "blake3": _blake3,
}


#: Algorithms chosen for audits where a forged match must be infeasible: a cheaper proof of
#: unchanged content (an S3 ETag, an MD5) must not stand in for them.
CRYPTOGRAPHIC_ALGORITHMS = frozenset({"sha256", "blake2b", "blake3"})


def check_algorithm(algorithm: str) -> str:
    """Return ``algorithm`` if fingerprints can be made with it here, else raise ValueError."""
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"unknown hash algorithm {algorithm!r}; choose one of {', '.join(sorted(ALGORITHMS))}"
        )
    return algorithm


def new_hasher(algorithm: str) -> Hasher:
    """A fresh digest object for ``algorithm``."""
    return ALGORITHMS[check_algorithm(algorithm)]()


def algorithm_of(fingerprint: str) -> str:
    """The algorithm named by a fingerprint string; ValueError if it is not of the form ``a:h``."""
    algorithm, sep, digest = fingerprint.partition(":")
    if not sep or not algorithm or not digest:
        raise ValueError(f"{fingerprint!r} is not a fingerprint of the form 'algorithm:hex'")
    return algorithm


def usable_algorithm(fingerprint: str) -> Optional[str]:
    """The algorithm of ``fingerprint`` if digests can be made with it here, else None.

    None for a malformed fingerprint, an unknown algorithm, or one whose package (blake3) is
    not installed on this machine.
    """
    try:
        algorithm = algorithm_of(fingerprint)
        new_hasher(algorithm)
    except (ValueError, MissingDependency):
        return None
    return algorithm


def short(fingerprint: Optional[str], length: int = 12) -> str:
    """A fingerprint abbreviated for people: the algorithm and the first ``length`` hex digits."""
    if fingerprint is None:
        return "none"
    algorithm, _, digest = fingerprint.partition(":")
    return f"{algorithm}:{digest[:length]}"


@attrs.define
class Counters:
    """What one check cost: files statted, files hashed, bytes hashed (shown by the CLI summary)."""

    files_statted: int = 0
    files_hashed: int = 0
    bytes_hashed: int = 0


_buffers = threading.local()


def _buffer() -> mmap.mmap:
    """This thread's read buffer: page-aligned anonymous memory, made once and reused.

    Alignment matters: the kernel copies page cache into a buffer that starts a few bytes past a
    page boundary (where ``bytearray`` lands) about twice as slowly (measured by ``benchmarks``).
    The mapping is private: Python's default for anonymous memory is *shared*, which a forked
    process (Luigi's ``--workers N``) keeps sharing with its parent and its siblings, so two
    workers hashing at once would read each other's bytes into one buffer, and record the
    fingerprint of another file's content.
    """
    buf: Optional[mmap.mmap] = getattr(_buffers, "buf", None)
    if buf is None:
        buf = mmap.mmap(-1, CHUNK_SIZE, flags=mmap.MAP_PRIVATE)
        _buffers.buf = buf
    return buf


def hash_bytes(data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The fingerprint of a bytes object."""
    hasher = new_hasher(algorithm)
    hasher.update(data)
    return f"{algorithm}:{hasher.hexdigest()}"


def hash_stream(
    stream: IO[Any], algorithm: str = DEFAULT_ALGORITHM, counters: Optional[Counters] = None
) -> Tuple[str, int]:
    """Fingerprint everything left in a binary stream; returns ``(fingerprint, bytes read)``.

    Streams that offer ``readinto`` fill the one reused buffer; others are read chunk by chunk.
    """
    if isinstance(stream, io.TextIOBase):  # type: ignore[unreachable]  # IO[Any] admits text
        raise TypeError("hash_stream needs a binary stream, got a text stream")
    hasher = new_hasher(algorithm)
    total = 0
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        buf = _buffer()
        view = memoryview(buf)
        while True:
            n = readinto(buf)
            if not n:
                break
            hasher.update(view[:n] if n < CHUNK_SIZE else view)
            total += n
            if counters is not None:
                counters.bytes_hashed += n  # per chunk, so a progress bar can follow a big file
    else:
        while True:
            chunk = stream.read(CHUNK_SIZE)
            if isinstance(chunk, str):
                raise TypeError("hash_stream needs a binary stream, got text")
            if not chunk:
                break
            hasher.update(chunk)
            total += len(chunk)
            if counters is not None:
                counters.bytes_hashed += len(chunk)
    if counters is not None:
        counters.files_hashed += 1
    return f"{algorithm}:{hasher.hexdigest()}", total


def hash_file(
    path: str, algorithm: str = DEFAULT_ALGORITHM, counters: Optional[Counters] = None
) -> Tuple[str, int]:
    """Fingerprint a local file's bytes; returns ``(fingerprint, size)``.

    Only a regular file holding data is read (see :mod:`luigi_repro.plainfiles`): a pipe,
    device or kernel pseudo-file raises :class:`~luigi_repro.plainfiles.NotPlainFile`.
    """
    fd, _ = open_plain(path)
    with os.fdopen(fd, "rb", buffering=0) as stream:
        return hash_stream(stream, algorithm, counters)


def manifest_fingerprint(entries: Mapping[str, str], algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The fingerprint of a directory from its manifest ``{relative path: file fingerprint}``.

    Paths are sorted and each is hashed with its file's fingerprint, so renames, additions and
    deletions change the result as surely as edits do.
    """
    hasher = new_hasher(algorithm)
    hasher.update(b"luigi_repro-manifest-1\n")
    ordered = sorted(entries)
    for start in range(0, len(ordered), _MANIFEST_BATCH):  # one update per batch, not per file
        batch = ordered[start : start + _MANIFEST_BATCH]
        if not "".join(map(entries.__getitem__, batch)).isascii():
            raise ValueError("a manifest entry's fingerprint is not of the form 'algorithm:hex'")
        text = "".join([f"{relpath}\0{entries[relpath]}\n" for relpath in batch])
        hasher.update(text.encode("utf-8", "surrogateescape"))
    return f"{algorithm}:{hasher.hexdigest()}"


#: Manifest entries hashed per update: few calls, and little text held at once.
_MANIFEST_BATCH = 1024


@attrs.frozen
class ManifestDiff:
    """How two directory manifests differ, by relative path."""

    added: Tuple[str, ...]
    removed: Tuple[str, ...]
    changed: Tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def diff_manifests(old: Mapping[str, str], new: Mapping[str, str]) -> ManifestDiff:
    """Which files were added, removed or changed between two manifests."""
    return ManifestDiff(
        added=tuple(sorted(set(new) - set(old))),
        removed=tuple(sorted(set(old) - set(new))),
        changed=tuple(sorted(p for p in set(old) & set(new) if old[p] != new[p])),
    )
