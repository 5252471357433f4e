"""What watching for undeclared reads costs: per ``open()``, and on a whole build.

The audit hook is installed once per process and is called for every audit event, so the cost
of one ``open()`` (plus reading and closing a small file) is measured in fresh child processes,
interleaved: with no hook, with the hook installed but nothing watched (every task has finished),
and with a watch active (a task's ``run()`` is executing). Opening the same file again and again
measures the path the hook takes for a file it has already seen; opening many different files
adds the ``os.stat`` taken at the first open of each.

The build part builds the benchmark DAG (``benchmarks/dag.py``, two layers, every task reading
its two declared inputs) from scratch with ``undeclared_reads = ignore`` (no hook work at all) and
``warn`` (the default: every run watched), at two sizes, and prints the log-log slope of the
build time against the number of tasks: 1 means linear.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List

from benchmarks import dag
from benchmarks.build import _build
from benchmarks.common import Results, environment, median_times

MODES = ("no hook", "hook, nothing watched", "watched")

CHILD = """
import json, os, sys, tempfile, time

mode, folder, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
from luigi_repro import reads
from luigi_repro.config import load_settings

tempfile.tempdir = os.path.join(folder, "elsewhere")  # so the files read are not temporaries
files = [os.path.join(folder, "files", f"f{index}.txt") for index in range(count)]


def seconds_per_open(paths):
    started = time.perf_counter()
    for path in paths:
        with open(path, "rb") as stream:
            stream.read()
    return (time.perf_counter() - started) / len(paths)


if mode != "no hook":
    reads._install()
watch = reads.ReadWatch("benchmark", load_settings()) if mode == "watched" else None
with reads.watching(watch):
    seconds_per_open([files[0]] * 1000)  # warm up
    same = min(seconds_per_open([files[0]] * count) for _ in range(3))
    distinct = seconds_per_open(files)
print(json.dumps({"same": same, "distinct": distinct}))
"""


def _child(mode: str, folder: str, count: int) -> Dict[str, float]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, folder, str(count)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LUIGI_REPRO_STAT_CACHE": "off"},
    )
    if done.returncode:
        raise RuntimeError(f"the measuring child failed:\n{done.stderr}")
    report: Dict[str, float] = json.loads(done.stdout)
    return report


def per_open(results: Results, count: int, repeats: int) -> None:
    """Seconds per open() in fresh processes, without the hook, idle and watching."""
    samples: Dict[str, Dict[str, List[float]]] = {
        mode: {"same": [], "distinct": []} for mode in MODES
    }
    with tempfile.TemporaryDirectory(prefix="luigi-repro-auditreads-") as folder:
        os.makedirs(os.path.join(folder, "files"))
        os.makedirs(os.path.join(folder, "elsewhere"))
        for index in range(count):
            with open(os.path.join(folder, "files", f"f{index}.txt"), "wb") as stream:
                stream.write(b"x" * 100)
        for _ in range(repeats):
            for mode in MODES:
                report = _child(mode, folder, count)
                for kind in ("same", "distinct"):
                    samples[mode][kind].append(report[kind])
    print(f"auditreads: open()+read()+close() of a 100-byte file, fresh processes, {count} opens")
    for kind, label in (("same", "the same file"), ("distinct", "different files")):
        medians = {mode: statistics.median(samples[mode][kind]) for mode in MODES}
        for mode in MODES:
            results.add("auditreads", f"{label}, {mode}", medians[mode] * 1e6, "us")
        idle = (medians["hook, nothing watched"] - medians["no hook"]) * 1e6
        results.add("auditreads", f"{label}: hook cost per open, nothing watched", idle, "us")
        watched = (medians["watched"] - medians["no hook"]) * 1e6
        results.add("auditreads", f"{label}: hook cost per open, watched", watched, "us")


#: The two DAG sizes of the build part, normal and --quick.
SIZES = {False: (500, 1000), True: (100, 200)}


def _build_times(count: int, repeats: int) -> Dict[str, float]:
    """Median from-scratch build times of a two-layer DAG of ``count`` tasks, per policy."""
    width = count // 2
    saved_tempdir = tempfile.tempdir
    with (
        tempfile.TemporaryDirectory(prefix="luigi-repro-auditreads-build-") as folder,
        environment(LUIGI_REPRO_STAT_CACHE=os.path.join(folder, "statcache.sqlite3")),
    ):
        # The DAG must not sit in the temp folder, whose files the hook skips at once.
        tempfile.tempdir = os.path.join(folder, "elsewhere")
        os.makedirs(tempfile.tempdir)
        try:
            dag.set_folder(os.path.join(folder, "dag"))
            tasks = dag.roots(dag.CheckedNode, 2, width)
            plain = dag.roots(dag.PlainNode, 2, width)

            def from_scratch(policy: str) -> Callable[[], None]:
                def action() -> None:
                    shutil.rmtree(os.path.join(folder, "dag"), ignore_errors=True)
                    with environment(LUIGI_REPRO_UNDECLARED_READS=policy):
                        _build(plain if policy == "plain Luigi" else tasks)

                return action

            return median_times(
                [(policy, from_scratch(policy)) for policy in ("plain Luigi", "ignore", "warn")],
                repeats,
            )
        finally:
            tempfile.tempdir = saved_tempdir


def build_growth(results: Results, small: int, large: int, repeats: int) -> None:
    """Build times under ignore and warn at two sizes, their ratio and their growth."""
    print(f"auditreads: from-scratch builds of {small} and {large} tasks, ignore against warn")
    times = {count: _build_times(count, repeats) for count in (small, large)}
    for count in (small, large):
        for policy in ("ignore", "warn"):
            results.add(
                "auditreads",
                f"build {count} tasks, undeclared_reads = {policy}",
                times[count][policy],
                "s",
            )
        ratio = times[count]["warn"] / times[count]["ignore"]
        results.add(
            "auditreads",
            f"build {count} tasks, warn / ignore",
            ratio,
            "x",
            target="<= 1.1",
            ok=ratio <= 1.1,
        )
    for count in (small, large):
        results.add(
            "auditreads", f"build {count} tasks, plain Luigi", times[count]["plain Luigi"], "s"
        )
    slopes = {
        policy: math.log(times[large][policy] / times[small][policy]) / math.log(large / small)
        for policy in ("plain Luigi", "ignore", "warn")
    }
    results.add(
        "auditreads", "build time growth with tasks, plain Luigi", slopes["plain Luigi"], ""
    )
    for policy in ("ignore", "warn"):
        # Measured against plain Luigi's own growth in the same run: Luigi's scheduler is not
        # linear either, and this machine is noisy.
        excess = slopes[policy] - slopes["plain Luigi"]
        results.add(
            "auditreads",
            f"build time growth with tasks, {policy} (log-log slope)",
            slopes[policy],
            "",
            target="<= plain + 0.2",
            ok=excess <= 0.2,
        )


def run(results: Results, quick: bool) -> None:
    repeats = 3 if quick else 5
    logging.getLogger("luigi-interface").setLevel(logging.ERROR)
    per_open(results, 2000 if quick else 20000, repeats)
    build_growth(results, *SIZES[quick], repeats)
