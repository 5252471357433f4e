"""Run the benchmarks: ``python -m benchmarks [--quick] [name ...]``.

Prints a table and writes ``benchmarks/results/latest.json`` (machine, versions, every figure).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import List, Optional

from benchmarks.common import Results, machine

BENCHMARKS = [
    "hashing",
    "memory",
    "pipeline",
    "build",
    "buildcost",
    "dataframe",
    "codeclosure",
    "auditreads",
    "rangetools",
    "fsync",
    "records",
    "startup",
    "scaling",
    "folders",
    "s3scale",
    "everyday",
    "runcache",
]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"which to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--json", default="benchmarks/results/latest.json", help="results file")
    parser.add_argument(
        "--sizes", nargs="+", type=int, metavar="MIB", help="runcache: the output sizes, in MiB"
    )
    options = parser.parse_args(argv)
    names = options.names or BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    if options.sizes and (names != ["runcache"] or min(options.sizes) < 1):
        parser.error("--sizes (whole MiB, at least 1) applies to runcache alone")
    info = machine()
    print(f"python {info['python']} on {info['platform']}, {info['cpus']} CPUs")
    results = Results()
    started = time.perf_counter()
    try:
        for name in names:
            module = importlib.import_module(f"benchmarks.{name}")
            if options.sizes:
                module.run(results, options.quick, sizes=options.sizes)
            else:
                module.run(results, options.quick)
    finally:
        results.save(options.json)  # what was measured is kept, even if a later part fails
    missed = [row for row in results.rows if row["ok"] is False]
    print(f"done in {time.perf_counter() - started:.0f} s; results in {options.json}")
    if missed:
        print(f"{len(missed)} target(s) missed: " + ", ".join(r["measure"] for r in missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
