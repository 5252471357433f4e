"""Does hashing a big file stay in constant memory?

``luigi_repro.fingerprint.hash_file`` streams a file through one reused buffer, so fingerprinting
a 2 GiB output should cost the process about one buffer, not the file. A file of real
(non-sparse) bytes is hashed with xxh3_128 in a fresh child process, which reports its peak
resident set (``VmHWM`` in ``/proc/self/status``, else ``ru_maxrss``) after importing the library
and again after hashing; the growth is what hashing cost. A fresh process keeps the parent's
heap (the benchmarks' own data) out of the number. The page cache holding the file is not part
of any process's resident set, so it does not count here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict

import numpy as np

from benchmarks.common import PEAK_KIB_SOURCE, Results

#: The file is written as this one random block repeated (incompressible enough, never sparse).
BLOCK = 64 << 20
#: Children run; the largest growth is reported.
RUNS = 3

CHILD = (
    PEAK_KIB_SOURCE
    + """
import json

from luigi_repro.fingerprint import hash_file

before, source = peak_kib()
fingerprint, size = hash_file(sys.argv[1], "xxh3_128")
after, _ = peak_kib()
print(json.dumps({"before_kib": before, "after_kib": after, "source": source, "size": size}))
"""
)


def _child(path: str) -> Dict[str, Any]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, path],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"the measuring child failed:\n{done.stderr}")
    report: Dict[str, Any] = json.loads(done.stdout)
    return report


def run(results: Results, quick: bool) -> None:
    size = (512 << 20) if quick else (2 << 30)
    block = np.random.PCG64(9).random_raw(BLOCK // 8).tobytes()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        path = os.path.join(folder, "big.bin")
        with open(path, "wb") as stream:
            for _ in range(size // BLOCK):
                stream.write(block)
        del block
        reports = [_child(path) for _ in range(RUNS)]
    for report in reports:
        if report["size"] != size:
            raise RuntimeError(f"the child hashed {report['size']} bytes, not {size}")
    worst = max(reports, key=lambda r: int(r["after_kib"]) - int(r["before_kib"]))
    growth = (worst["after_kib"] - worst["before_kib"]) / 1024
    gib = size / 2**30
    print(
        f"memory: peak RSS ({worst['source']}) of a fresh process hashing a {gib:g} GiB file, "
        f"largest of {RUNS} runs"
    )
    results.add(
        "memory",
        "baseline peak RSS (after importing luigi_repro)",
        worst["before_kib"] / 1024,
        "MiB",
    )
    results.add(
        "memory",
        f"peak RSS growth while hashing {gib:g} GiB (xxh3_128)",
        growth,
        "MiB",
        "< 64",
        growth < 64,
    )
