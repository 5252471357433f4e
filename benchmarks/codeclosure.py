"""What does the code closure cost, first and then on every check?

A package of generated helper modules is written to a temporary folder: 20 functions per
module, each calling the next one, the last calling into the next module through an attribute
(``mod_01.f_000``), every function using a module-level constant, so that the task's closure
reaches N functions (and N constants) across N / 20 modules. The task class is a plain
``luigi.Task`` (no class-creation snapshot), so the first ``code_fingerprint`` call reads, parses
and walks every module: that is the *first* cost, measured on a fresh import each time. Every
later call for the same class is the *cached* cost that ``complete()`` pays on each check: it must
not grow with N. Both are measured at two sizes; the log-log slope between them says how each
grows (1 = linear, 0 = constant).
"""

from __future__ import annotations

import gc
import importlib
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from typing import Callable, Dict, List

from benchmarks.common import Results, median_times
from luigi_repro.codeclosure import code_closure, code_fingerprint

#: Functions per generated module.
PER_MODULE = 20
ALGORITHM = "xxh3_128"


def write_tree(folder: str, functions: int) -> str:
    """Write a package whose task reaches ``functions`` functions; return the package name."""
    package = f"closure_bench_{uuid.uuid4().hex[:8]}"
    root = os.path.join(folder, package)
    os.makedirs(root)
    with open(os.path.join(root, "__init__.py"), "w") as stream:
        stream.write("")
    modules = functions // PER_MODULE
    for index in range(modules):
        lines = [f"from {package} import mod_{index + 1:03d}\n" if index + 1 < modules else ""]
        for number in range(PER_MODULE):
            lines.append(f"LIMIT_{number:03d} = {number}\n\n\n")
            if number + 1 < PER_MODULE:
                call = f"f_{number + 1:03d}(x)"
            elif index + 1 < modules:
                call = f"mod_{index + 1:03d}.f_000(x)"
            else:
                call = "x"
            lines.append(
                f"def f_{number:03d}(x):\n    return min({call}, LIMIT_{number:03d}) + 1\n\n\n"
            )
        with open(os.path.join(root, f"mod_{index:03d}.py"), "w") as stream:
            stream.write("".join(lines))
    with open(os.path.join(root, "pipeline.py"), "w") as stream:
        stream.write(
            "import luigi\n\n"
            f"from {package} import mod_000\n\n\n"
            "class BenchTask(luigi.Task):\n"
            "    def run(self):\n"
            "        return mod_000.f_000(1)\n"
        )
    return package


def fresh_task(package: str) -> type:
    """Import the generated package again (new module objects) and return its task class."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
    task_cls: type = importlib.import_module(f"{package}.pipeline").BenchTask
    return task_cls


def first_calls(packages: Dict[int, str], repeats: int) -> Dict[int, float]:
    """Median seconds of the first ``code_fingerprint`` of a fresh import, sizes interleaved."""
    samples: Dict[int, List[float]] = {size: [] for size in packages}
    for _ in range(repeats):
        for size, package in packages.items():
            task_cls = fresh_task(package)  # imported outside the measure: only the closure
            gc.collect()
            started = time.perf_counter()
            code_fingerprint(task_cls, ALGORITHM)
            samples[size].append(time.perf_counter() - started)
    return {size: statistics.median(values) for size, values in samples.items()}


def cached_calls(packages: Dict[int, str], repeats: int, calls: int) -> Dict[int, float]:
    """Median seconds per ``code_fingerprint`` once the closure is known, sizes interleaved."""
    classes = {size: fresh_task(package) for size, package in packages.items()}
    for task_cls in classes.values():
        code_fingerprint(task_cls, ALGORITHM)

    def calling(task_cls: type) -> Callable[[], None]:
        def call() -> None:
            for _ in range(calls):
                code_fingerprint(task_cls, ALGORITHM)

        return call

    times = median_times([(str(size), calling(c)) for size, c in classes.items()], repeats)
    return {size: times[str(size)] / calls for size in classes}


def parts_of(package: str) -> int:
    """How many parts the generated task's closure has."""
    return len(code_closure(fresh_task(package), ALGORITHM).parts)


def slope(small: int, large: int, small_value: float, large_value: float) -> float:
    """The log-log slope between two sizes: 1 for linear growth, 0 for constant."""
    return math.log(large_value / small_value) / math.log(large / small)


def run(results: Results, quick: bool) -> None:
    sizes = (100, 200) if quick else (200, 400)
    repeats = 3 if quick else 7
    calls = 20_000 if quick else 200_000
    with tempfile.TemporaryDirectory() as folder:
        sys.path.insert(0, folder)
        try:
            packages = {size: write_tree(folder, size) for size in sizes}
            first = first_calls(packages, repeats)
            cached = cached_calls(packages, repeats, calls)
            parts = {size: parts_of(package) for size, package in packages.items()}
        finally:
            sys.path.remove(folder)
    small, large = sizes
    for size in sizes:
        print(f"codeclosure: {size} functions in {size // PER_MODULE} modules, {parts[size]} parts")
        results.add("codeclosure", f"first code_fingerprint, N={size}", first[size] * 1e3, "ms")
        results.add(
            "codeclosure",
            f"first code_fingerprint per function, N={size}",
            first[size] / size * 1e6,
            "µs",
        )
        results.add("codeclosure", f"cached code_fingerprint, N={size}", cached[size] * 1e6, "µs")
    first_slope = slope(small, large, first[small], first[large])
    cached_slope = slope(small, large, cached[small], cached[large])
    results.add(
        "codeclosure",
        f"growth of the first call, N {small} -> {large} (log-log slope)",
        first_slope,
        "",
        target="<= 1.3",
        ok=first_slope <= 1.3,
    )
    results.add(
        "codeclosure",
        f"growth of the cached call, N {small} -> {large} (log-log slope)",
        cached_slope,
        "",
        target="<= 0.3",
        ok=cached_slope <= 0.3,
    )
