"""How fast is a DataFrame fingerprinted by its data?

A numeric frame (float64 and int64 columns) is fingerprinted in memory with
``luigi_repro.tablehash.fingerprint_table``; the reference is xxh3 over the same column buffers
(the cost of hashing the bytes alone), and decoding the Parquet file it is stored in (what a
check pays anyway when the file changed).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from benchmarks.common import Results, median_times
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
