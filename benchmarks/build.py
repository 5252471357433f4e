"""``luigi.build`` of a large DAG: TaskWithCheckingInputHash against plain ``luigi.Task``.

The same DAG (``benchmarks/dag.py``: layers of tasks, each requiring two tasks of the layer
below) is built in this process with Luigi's local scheduler and one worker, once made of
plain tasks and once of checked tasks, alternating: "everything built" starts from an empty
folder, "nothing built" rebuilds a finished one (every task is found complete). The ratio of
the medians is what luigi_repro costs on top of Luigi itself. "No re-check" builds the checked
DAG with ``[worker] check_unfulfilled_deps = false``: Luigi then no longer asks every dependency's
``complete()`` again just before each run (for luigi_repro, a walk of the dependency's whole
upstream DAG), while the run protocol still refuses to run with a missing input.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import tempfile
import time
from typing import Callable, List

import luigi

from benchmarks import dag
from benchmarks.common import Results, environment, median_times


def _build(tasks: List[luigi.Task], recheck_dependencies: bool = True) -> None:
    """Build with Luigi's local scheduler; ``recheck_dependencies=False`` builds as with
    ``[worker] check_unfulfilled_deps = false`` (no ``complete()`` of every dependency just
    before each run)."""
    config = luigi.configuration.get_config()
    if not recheck_dependencies:
        config.set("worker", "check_unfulfilled_deps", "false")
    try:
        if not luigi.build(tasks, local_scheduler=True, workers=1, log_level="ERROR"):
            raise RuntimeError("the benchmark DAG failed to build")
    finally:
        if not recheck_dependencies:
            config.remove_option("worker", "check_unfulfilled_deps")


SHAPES = {
    # name: (layers, width), normal and --quick
    "wide": ((2, 500), (2, 100)),
    "deep": ((20, 50), (10, 20)),
}


def run(results: Results, quick: bool) -> None:
    repeats = 3 if quick else 5
    logging.getLogger("luigi-interface").setLevel(logging.ERROR)
    for shape, sizes in SHAPES.items():
        layers, width = sizes[1] if quick else sizes[0]
        _run_shape(results, shape, layers, width, repeats)


def _run_shape(results: Results, shape: str, layers: int, width: int, repeats: int) -> None:
    count = layers * width
    with (
        tempfile.TemporaryDirectory(prefix="luigi-repro-build-") as folder,
        environment(LUIGI_REPRO_STAT_CACHE=os.path.join(folder, "statcache.sqlite3")),
    ):
        dag.set_folder(folder)
        plain = dag.roots(dag.PlainNode, layers, width)
        checked = dag.roots(dag.CheckedNode, layers, width)

        def from_scratch(
            tasks: List[luigi.Task], flavour: str, recheck: bool = True
        ) -> Callable[[], None]:
            def action() -> None:
                shutil.rmtree(os.path.join(folder, flavour), ignore_errors=True)
                _build(tasks, recheck)

            return action

        print(f"build, {shape}: {count} tasks ({layers} layers x {width}, two requirements each)")
        everything = median_times(
            [
                ("plain", from_scratch(plain, "plain")),
                ("checked", from_scratch(checked, "checked")),
                ("checked, no re-check", from_scratch(checked, "checked", recheck=False)),
            ],
            repeats,
        )
        nothing = median_times(
            [("plain", lambda: _build(plain)), ("checked", lambda: _build(checked))], repeats
        )
        extra_files = _count_files(folder, "checked") - _count_files(folder, "plain")
        creation = _file_creation_seconds(folder)
    # Every checked task also creates its record and its lock file: on a file system where
    # creating a file is slow, that alone sets a floor under the "everything built" ratio.
    floor = (everything["plain"] + extra_files * creation) / everything["plain"]
    results.add(
        "build",
        f"{shape}: extra files per checked task (record, lock)",
        extra_files / count,
        "files",
    )
    results.add("build", f"{shape}: time to create one file here", creation * 1e6, "us")
    results.add(
        "build", f"{shape}: file-creation floor of checked / plain, everything built", floor, "x"
    )
    no_recheck = everything["checked, no re-check"] / everything["plain"]
    results.add(
        "build",
        f"checked / plain, {shape} {count}, everything built, no re-check",
        no_recheck,
        "x",
        target="<= 1.3",
        ok=no_recheck <= 1.3,
    )
    # Targets: a build from scratch within 1.3x plain Luigi (1.2x for the wide shape); a no-op
    # rebuild (every task found complete) within 3x.
    goals = {"everything built": 1.2 if shape == "wide" else 1.3, "nothing built": 3.0}
    for label, times in (("everything built", everything), ("nothing built", nothing)):
        name = f"{shape} {count}, {label}"
        results.add("build", f"plain luigi.Task, {name}", times["plain"], "s")
        results.add("build", f"TaskWithCheckingInputHash, {name}", times["checked"], "s")
        ratio = times["checked"] / times["plain"]
        goal = goals[label]
        results.add(
            "build", f"checked / plain, {name}", ratio, "x", target=f"<= {goal}", ok=ratio <= goal
        )


def _count_files(folder: str, flavour: str) -> int:
    return sum(len(files) for _, _, files in os.walk(os.path.join(folder, flavour)))


def _file_creation_seconds(folder: str, count: int = 200) -> float:
    """Median time to create (and close) one new empty file in ``folder``'s file system."""
    scratch = os.path.join(folder, "creation")
    os.makedirs(scratch)
    samples = []
    for index in range(count):
        started = time.perf_counter()
        with open(os.path.join(scratch, f"f{index}"), "x"):
            pass
        samples.append(time.perf_counter() - started)
    shutil.rmtree(scratch)
    return statistics.median(samples)
