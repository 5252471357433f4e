"""How fast are files fingerprinted?

A large file of random (incompressible) bytes, held in the page cache, is fingerprinted with
``luigi_repro.fingerprint.hash_file`` under each algorithm the library offers. The floor is a
plain ``readinto`` loop over the same file with a reused buffer of the library's ``CHUNK_SIZE``
and no hashing at all: what getting the bytes out of the page cache costs, so that
"hash / floor" says how much of the reading speed the digest keeps. The 2017 prototype's recipe
(``hashlib.md5`` fed ``read(65536)`` chunks) is the baseline the library set out to beat.

The floor's buffer is page-aligned (an anonymous ``mmap``). On some machines the kernel's copy
into a buffer that starts a few bytes past a page boundary is several times slower, and where a
``bytearray`` starts depends on malloc; so the same loop into a buffer 16 bytes past a page
boundary (where glibc puts a large ``bytearray``) is reported beside it, for information.

Many small files measure the other end: per-file costs (open, close, a fresh digest, the
fingerprint string) against opening, reading and closing the same files without hashing.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import tempfile
from typing import Callable, List, Tuple

import numpy as np

from benchmarks.common import Results, median_times
from luigi_repro.errors import MissingDependency
from luigi_repro.fingerprint import CHUNK_SIZE, hash_file, new_hasher

#: Bytes per ``read`` in the 2017 prototype.
PROTOTYPE_CHUNK = 65536
#: Random bytes are generated and written this many at a time.
BLOCK = 64 << 20


def md5_prototype(path: str) -> str:
    """The 2017 prototype's recipe, kept only as a baseline: md5 over 64 KiB ``read`` chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(PROTOTYPE_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def aligned_buffer(offset: int = 0) -> memoryview:
    """A writable buffer of ``CHUNK_SIZE`` bytes starting ``offset`` bytes past a page boundary."""
    return memoryview(mmap.mmap(-1, CHUNK_SIZE + mmap.PAGESIZE))[offset : offset + CHUNK_SIZE]


def read_floor(path: str, buf: memoryview) -> int:
    """Read a file as ``hash_file`` does (unbuffered ``readinto``, one reused buffer), no hash."""
    total = 0
    with open(path, "rb", buffering=0) as stream:
        while True:
            n = stream.readinto(buf)
            if not n:
                return total
            total += n


def _algorithms() -> List[str]:
    """The library's algorithms measured here; blake3 only where its package is installed."""
    names = ["xxh3_128", "sha256", "blake2b"]
    try:
        new_hasher("blake3")
    except MissingDependency:
        pass
    else:
        names.append("blake3")
    return names


def _large_file(results: Results, folder: str, quick: bool) -> None:
    size = (256 << 20) if quick else (1 << 30)
    path = os.path.join(folder, "large.bin")
    generator = np.random.PCG64(7)
    with open(path, "wb") as stream:
        for _ in range(size // BLOCK):
            stream.write(generator.random_raw(BLOCK // 8).tobytes())
        stream.flush()
        os.fsync(stream.fileno())  # so that writing it back to disk does not overlap the timing
    buf, off16 = aligned_buffer(), aligned_buffer(16)
    if read_floor(path, buf) != size:  # also brings the file into the page cache
        raise RuntimeError(f"{path} is not {size} bytes long")
    algorithms = _algorithms()
    contenders: List[Tuple[str, Callable[[], object]]] = [
        ("floor", lambda: read_floor(path, buf)),
        ("floor+16", lambda: read_floor(path, off16)),
    ]
    for algorithm in algorithms:
        if hash_file(path, algorithm)[1] != size:
            raise RuntimeError(f"hash_file read a wrong number of bytes with {algorithm}")
        contenders.append((algorithm, functools.partial(hash_file, path, algorithm)))
    contenders.append(("md5", lambda: md5_prototype(path)))
    times = median_times(contenders, repeats=5)

    gib = size / 2**30
    print(f"hashing: one {size >> 20} MiB file of random bytes, in the page cache")
    results.add(
        "hashing",
        f"large file: readinto floor ({CHUNK_SIZE >> 10} KiB buffer, no hash)",
        gib / times["floor"],
        "GiB/s",
    )
    results.add(
        "hashing",
        "large file: same floor, buffer 16 B past a page boundary",
        gib / times["floor+16"],
        "GiB/s",
    )
    for algorithm in algorithms:
        results.add(
            "hashing", f"large file: hash_file {algorithm}", gib / times[algorithm], "GiB/s"
        )
    results.add("hashing", "large file: md5 prototype (2017 recipe)", gib / times["md5"], "GiB/s")
    to_floor = times["floor"] / times["xxh3_128"]
    results.add(
        "hashing",
        "xxh3_128 / readinto floor (speed ratio)",
        to_floor,
        "x",
        ">= 0.8",
        to_floor >= 0.8,
    )
    to_md5 = times["md5"] / times["xxh3_128"]
    results.add(
        "hashing", "xxh3_128 / md5 prototype (speed ratio)", to_md5, "x", ">= 10", to_md5 >= 10
    )


def _small_files(results: Results, folder: str, quick: bool) -> None:
    count, size = (2_000 if quick else 10_000), 4096
    data = np.random.PCG64(8).random_raw(count * size // 8).tobytes()
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"small-{i:05d}.bin")
        with open(path, "wb") as stream:
            stream.write(data[i * size : (i + 1) * size])
        paths.append(path)
    os.sync()  # as above: no write-back during the timing
    buf = aligned_buffer()

    def floor() -> None:
        for path in paths:
            read_floor(path, buf)

    def xxh3() -> None:
        for path in paths:
            hash_file(path, "xxh3_128")

    def md5() -> None:
        for path in paths:
            md5_prototype(path)

    floor()  # warm the page cache and the directory entries
    times = median_times([("floor", floor), ("xxh3_128", xxh3), ("md5", md5)], repeats=9)

    print(f"hashing: {count:,} files of {size >> 10} KiB")
    results.add(
        "hashing", "small files: open+readinto+close floor", count / times["floor"], "files/s"
    )
    results.add("hashing", "small files: hash_file xxh3_128", count / times["xxh3_128"], "files/s")
    results.add(
        "hashing", "small files: md5 prototype (2017 recipe)", count / times["md5"], "files/s"
    )
    results.add(
        "hashing",
        "small files: xxh3_128 / floor (speed ratio)",
        times["floor"] / times["xxh3_128"],
        "x",
    )


def run(results: Results, quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-hashing-") as folder:
        _large_file(results, folder, quick)  # the file is deleted at the end, not between timings
        _small_files(results, folder, quick)
