"""What reading a hostile record can cost: peak memory and time of parsing, at two caps.

A record is read only up to ``max_record_bytes`` (the cap), and one whose parse would cost more
than ``PARSE_MEMORY_MULTIPLE`` times the cap (estimated from its bytes) is refused unparsed (see
``luigi_repro.record``). Here the costliest shapes that estimate still lets through, and a
genuine record of a large folder output, are parsed under two caps. The figures are peak Python
memory (tracemalloc) as a multiple of the cap, and seconds; the log-log slope between the two
caps says whether the cost grows linearly.
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
from luigi_repro.record import (
    DEFAULT_MAX_RECORD_BYTES,
    PARSE_MEMORY_MULTIPLE,
    estimated_parse_bytes,
    parse_record,
)


def _as_many_as_allowed(unit: bytes, cap: int, tail: bytes = b"") -> bytes:
    """``[unit,unit,…tail]`` with as many units as the parse budget of ``cap`` lets through."""
    low, high = 1, cap
    while low < high:  # the largest count whose estimate fits the budget and the cap
        middle = (low + high + 1) // 2
        data = b"[" + b",".join([unit] * middle) + tail + b"]"
        fits = len(data) <= cap and estimated_parse_bytes(data) <= PARSE_MEMORY_MULTIPLE * cap
        low, high = (middle, high) if fits else (low, middle - 1)
    return b"[" + b",".join([unit] * low) + tail + b"]"


def _empty_lists(cap: int) -> bytes:
    return _as_many_as_allowed(b"[]", cap)


def _short_strings(cap: int) -> bytes:
    return _as_many_as_allowed(b'"abcd"', cap)


def _wide_strings(cap: int) -> bytes:
    """Non-ASCII strings, with one character beyond the BMP making all text 4 bytes wide."""
    return _as_many_as_allowed('"ā"'.encode(), cap, ',"😀"'.encode())


def _folder_record(cap: int) -> bytes:
    """A record shaped like a folder output's, near the cap: one manifest entry and stat per
    file."""
    files = cap // 240
    manifest = {f"part/{i:07d}.csv": f"xxh3_128:{i:032x}" for i in range(files)}
    stats = {
        name: {"stat": [2049, 10_000_000 + i, 4096, 1_700_000_000_000_000_000, 1], "taken_at_ns": 1}
        for i, name in enumerate(manifest)
    }
    return json.dumps({"manifest": manifest, "files": stats}).encode()


SHAPES: Dict[str, Callable[[int], bytes]] = {
    "[[],[],…] (most lists allowed)": _empty_lists,
    '["abcd",…] (most strings allowed)': _short_strings,
    '["ā",…,"😀"] (most 4-byte-wide strings allowed)': _wide_strings,
    "folder output's manifest and stats": _folder_record,
}


def _parse(data: bytes, cap: int) -> None:
    # A shape that is not a record document fails after parsing: that cost is the figure.
    with contextlib.suppress(RecordError):
        parse_record(data, "bench", None, cap)


def _parse_cost(data: bytes, cap: int) -> Tuple[float, float]:
    """Peak traced bytes per byte of ``cap`` (one traced parse), and seconds (best of three
    untraced parses: tracing slows allocation several times)."""
    tracemalloc.start()
    try:
        _parse(data, cap)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        _parse(data, cap)
        seconds.append(time.perf_counter() - started)
    return peak / cap, min(seconds)


def run(results: Results, quick: bool) -> None:
    cap = DEFAULT_MAX_RECORD_BYTES
    small, large = (cap // 8, cap // 4) if quick else (cap // 2, cap)
    for name, make in SHAPES.items():
        costs = {size: _parse_cost(make(size), size) for size in (small, large)}
        for size, (multiple, _) in costs.items():
            results.add(
                "records",
                f"{name}, cap {size >> 20} MiB: peak memory",
                multiple,
                "x cap",
                f"≤ {PARSE_MEMORY_MULTIPLE}",
                multiple <= PARSE_MEMORY_MULTIPLE,
            )
        seconds = {size: cost[1] for size, cost in costs.items()}
        results.add("records", f"{name}: parse time at cap {large >> 20} MiB", seconds[large], "s")
        slope = math.log(seconds[large] / seconds[small]) / math.log(large / small)
        results.add("records", f"{name}: time growth with the cap (log-log slope)", slope, "")
