"""What reading a hostile record can cost: peak memory and time of parsing, at two sizes.

A record is read only up to ``max_record_bytes`` and its shape is bounded before parsing (see
``luigi_repro.record``). Here the densest shapes those bounds still let through, and a genuine
record of a large folder output, are parsed at half the cap and at the cap. The figures are
peak Python memory (tracemalloc) as a multiple of the record's size, and seconds per MiB; the
log-log slope between the two sizes says whether the cost grows linearly with the size.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import tracemalloc
from typing import Callable, Dict, Tuple

from benchmarks.common import Results
from luigi_repro.errors import RecordError
from luigi_repro.record import DEFAULT_MAX_RECORD_BYTES, SHAPE_ALLOWANCE, parse_record


def _padded(head: bytes, size: int) -> bytes:
    """``head`` (an open JSON list) closed with a string that brings it to ``size`` bytes."""
    return head + b',"' + b"x" * max(0, size - len(head) - 4) + b'"]'


def _empty_lists(size: int) -> bytes:
    count = SHAPE_ALLOWANCE + size // 12 - 2
    return _padded(b"[" + b",".join([b"[]"] * count), size)


def _short_strings(size: int) -> bytes:
    count = min(SHAPE_ALLOWANCE + size // 6 - 2, (size - 16) // 7)  # as many as fit
    return _padded(b"[" + b",".join([b'"abcd"'] * count), size)


def _folder_record(size: int) -> bytes:
    """A record shaped like a folder output's: one manifest entry and stat per file."""
    files = size // 230
    manifest = {f"part/{i:07d}.csv": f"xxh3_128:{i:032x}" for i in range(files)}
    stats = {
        name: {"stat": [2049, 10_000_000 + i, 4096, 1_700_000_000_000_000_000, 1], "taken_at_ns": 1}
        for i, name in enumerate(manifest)
    }
    return json.dumps({"manifest": manifest, "files": stats}).encode()


SHAPES: Dict[str, Callable[[int], bytes]] = {
    "[[],[],…] (densest lists allowed)": _empty_lists,
    '["abcd",…] (densest strings allowed)': _short_strings,
    "folder output's manifest and stats": _folder_record,
}


def _parse(data: bytes) -> None:
    # A shape that is not a record document fails after parsing: that cost is the figure.
    with contextlib.suppress(RecordError):
        parse_record(data, "bench", None, DEFAULT_MAX_RECORD_BYTES)


def _parse_cost(data: bytes) -> Tuple[float, float]:
    """Peak traced bytes per byte of ``data`` (one traced parse), and seconds (best of three
    untraced parses: tracing slows allocation several times)."""
    tracemalloc.start()
    try:
        _parse(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        _parse(data)
        seconds.append(time.perf_counter() - started)
    return peak / len(data), min(seconds)


def run(results: Results, quick: bool) -> None:
    cap = DEFAULT_MAX_RECORD_BYTES
    small, large = (cap // 8, cap // 4) if quick else (cap // 2, cap)
    for name, make in SHAPES.items():
        costs = {size: _parse_cost(make(size)) for size in (small, large)}
        for size, (multiple, _) in costs.items():
            assert multiple > 1, f"{name} at {size} bytes was refused unparsed"
            results.add(
                "records",
                f"{name}, {size >> 20} MiB: peak memory",
                multiple,
                "x size",
                "≤ 12",
                multiple <= 12,
            )
        seconds = {size: cost[1] for size, cost in costs.items()}
        results.add("records", f"{name}: parse time", seconds[large] / (large / 2**20), "s/MiB")
        slope = math.log(seconds[large] / seconds[small]) / math.log(large / small)
        results.add("records", f"{name}: time growth with size (log-log slope)", slope, "")
