"""How fast is a DataFrame fingerprinted by its data?

A numeric frame (float64 and int64 columns) is fingerprinted in memory with
``luigi_repro.tablehash.fingerprint_table``; the reference is xxh3 over the same column buffers
(the cost of hashing the bytes alone), and decoding the Parquet file it is stored in (what a
check pays anyway when the file changed).

Then memory: a Parquet file of that frame, built on disk one row group at a time, is
fingerprinted in a fresh child process, once as ``ParquetTarget`` does it (streaming record
batches) and once the old way (``pyarrow.parquet.read_table`` then ``fingerprint_table``). The
child reports its peak resident set (``VmHWM``, else ``ru_maxrss``) after its imports and again
after fingerprinting; the growth is what fingerprinting cost. Two sizes give the log-log slope
of that growth with the table's size: about 0 when memory does not grow with the table.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from benchmarks.common import PEAK_KIB_SOURCE, Results, median_times
from luigi_repro.tablehash import fingerprint_table


def run(results: Results, quick: bool) -> None:
    rows = 500_000 if quick else 4_000_000
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({f"f{i}": rng.random(rows) for i in range(6)})
    frame["i0"] = rng.integers(0, 1 << 40, rows)
    frame["i1"] = np.arange(rows)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    size = table.nbytes

    def raw_bytes() -> None:
        hasher = xxhash.xxh3_128()
        for column in table.columns:
            for chunk in column.chunks:
                for buffer in chunk.buffers():
                    if buffer is not None:
                        hasher.update(memoryview(buffer))
        hasher.hexdigest()

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "frame.parquet")
        pq.write_table(table, path)
        times = median_times(
            [
                ("raw", raw_bytes),
                ("table", lambda: fingerprint_table(table, "xxh3_128")),
                ("decode", lambda: pq.read_table(path)),
            ],
            repeats=3 if quick else 5,
        )
    gib = size / 2**30
    print(f"dataframe: {rows:,} rows x 8 numeric columns ({size / 2**20:.0f} MiB in memory)")
    results.add("dataframe", "data fingerprint throughput", gib / times["table"], "GiB/s")
    results.add("dataframe", "raw xxh3 of the same buffers", gib / times["raw"], "GiB/s")
    results.add(
        "dataframe",
        "data fingerprint / raw buffer hashing (speed ratio)",
        times["raw"] / times["table"],
        "x",
    )
    results.add(
        "dataframe",
        "data fingerprint time / Parquet decode time",
        times["table"] / times["decode"],
        "x",
    )
    if quick:
        _memory(results, [64 << 20, 256 << 20], "256 MiB (quick)")
    else:
        _memory(results, [256 << 20, 2 << 30], "2 GiB")


#: Rows per row group of the files built on disk (8 numeric columns: 64 MiB a group).
GROUP_ROWS = 1 << 20
#: The memory goal for the largest table: peak RSS growth while fingerprinting it.
RSS_GOAL_MIB = 256

CHILD = (
    PEAK_KIB_SOURCE
    + """
import json, time

import pyarrow.parquet as pq
from luigi_repro.tablehash import fingerprint_table
from luigi_repro.targets import ParquetTarget
from luigi_repro.targets.base import FingerprintContext

mode, path = sys.argv[1], sys.argv[2]
before = peak_kib()[0]
started = time.perf_counter()
if mode == "stream":
    context = FingerprintContext("xxh3_128", 0, ".repro.json", full=True)
    fingerprint = ParquetTarget(path).observe(context).fingerprint
else:
    fingerprint = fingerprint_table(pq.read_table(path), "xxh3_128")
seconds = time.perf_counter() - started
print(json.dumps({"growth_kib": peak_kib()[0] - before, "seconds": seconds, "fp": fingerprint}))
"""
)


def _write_parquet(path: str, size: int) -> int:
    """A Parquet file of ``size`` bytes of decoded data, written a row group at a time."""
    rng = np.random.default_rng(11)
    written = 0
    schema = None
    writer = None
    try:
        while written < size:
            rows = min(GROUP_ROWS, max(1, (size - written) // 64))
            group = pa.table(
                {
                    **{f"f{i}": rng.random(rows) for i in range(6)},
                    "i0": rng.integers(0, 1 << 40, rows),
                    "i1": np.arange(written // 64, written // 64 + rows),
                }
            )
            if writer is None:
                schema = group.schema
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(group)
            written += group.nbytes
    finally:
        if writer is not None:
            writer.close()
    return written


def _child(mode: str, path: str) -> Dict[str, Any]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, path],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"the measuring child failed:\n{done.stderr}")
    report: Dict[str, Any] = json.loads(done.stdout)
    return report


def _memory(results: Results, sizes: List[int], label: str) -> None:
    """Streamed and whole-table fingerprints of Parquet files of two ``sizes`` (bytes)."""
    growth: List[float] = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-dataframe-") as folder:
            path = os.path.join(folder, "big.parquet")
            decoded = _write_parquet(path, size)
            stream, whole = _child("stream", path), _child("whole", path)
        if stream["fp"] != whole["fp"]:
            raise RuntimeError("streaming and whole-table fingerprints differ")
        table = f"{decoded / 2**20:.0f} MiB table"
        mib = decoded / 2**20
        growth.append(max(stream["growth_kib"], 1) / 1024)
        results.add("dataframe", f"peak RSS growth, streamed, {table}", growth[-1], "MiB")
        results.add(
            "dataframe", f"peak RSS growth, whole table, {table}", whole["growth_kib"] / 1024, "MiB"
        )
        results.add("dataframe", f"streamed throughput, {table}", mib / stream["seconds"], "MiB/s")
        results.add(
            "dataframe", f"whole-table throughput, {table}", mib / whole["seconds"], "MiB/s"
        )
        results.add(
            "dataframe",
            f"streamed / whole-table throughput, {table}",
            whole["seconds"] / stream["seconds"],
            "x",
            target=">= 1",
            ok=whole["seconds"] >= stream["seconds"],
        )
    slope = math.log(growth[1] / growth[0]) / math.log(sizes[1] / sizes[0])
    results.add("dataframe", "peak RSS growth vs table size (log-log slope)", slope, "", "~0")
    results.add(
        "dataframe",
        f"peak RSS growth, {label} table <= {RSS_GOAL_MIB} MiB",
        growth[-1],
        "MiB",
        target=f"<= {RSS_GOAL_MIB}",
        ok=growth[-1] <= RSS_GOAL_MIB,
    )
