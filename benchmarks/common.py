"""Measuring helpers: medians of repeated runs, machine facts, the table and the JSON file.

The machine these run on is shared and noisy, so every comparison is a *ratio of two medians
measured side by side in one run*, alternating the contenders, never an absolute time checked
against a threshold.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

Timing = Callable[[], Any]


def median_times(contenders: Sequence[Tuple[str, Timing]], repeats: int) -> Dict[str, float]:
    """Run every contender ``repeats`` times, interleaved; return each one's median seconds."""
    samples: Dict[str, List[float]] = {name: [] for name, _ in contenders}
    for _ in range(repeats):
        for name, action in contenders:
            gc.collect()
            started = time.perf_counter()
            action()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def machine() -> Dict[str, Any]:
    """What the numbers were measured on."""
    versions: Dict[str, Optional[str]] = {}
    for dist in ("luigi", "luigi-repro", "xxhash", "pyarrow", "pandas", "portalocker"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block; restore the previous values afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Results:
    """Rows of results: printed as a table, saved as JSON."""

    def __init__(self) -> None:
        self.rows: List[Dict[str, Any]] = []

    def add(
        self,
        benchmark: str,
        measure: str,
        value: float,
        unit: str,
        target: Optional[str] = None,
        ok: Optional[bool] = None,
    ) -> None:
        self.rows.append(
            {
                "benchmark": benchmark,
                "measure": measure,
                "value": value,
                "unit": unit,
                "target": target,
                "ok": ok,
            }
        )
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        goal = f"  (target {target})" if target else ""
        print(f"  {measure:<58} {value:>12.3f} {unit:<8}{goal}{mark}", flush=True)

    def save(self, path: str) -> None:
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path, "w") as stream:
            json.dump({"machine": machine(), "results": self.rows}, stream, indent=2)
            stream.write("\n")


#: Source of ``peak_kib()`` for benchmark child processes: the process's peak RSS in KiB (from
#: ``VmHWM``, else ``ru_maxrss``) and which of the two said so. Prepend it to a child's script.
PEAK_KIB_SOURCE = """
import resource, sys

def peak_kib():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), "VmHWM"
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak // 1024 if sys.platform == "darwin" else peak), "ru_maxrss"
"""
