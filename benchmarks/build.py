"""``luigi.build`` of a large DAG: TaskWithCheckingInputHash against plain ``luigi.Task``.

The same DAG (``benchmarks/dag.py``: layers of tasks, each requiring two tasks of the layer
below) is built in this process with Luigi's local scheduler and one worker, once made of
plain tasks and once of checked tasks, alternating: "everything built" starts from an empty
folder, "nothing built" rebuilds a finished one (every task is found complete). The ratio of
the medians is what luigi_repro costs on top of Luigi itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Callable, List

import luigi

from benchmarks import dag
from benchmarks.common import Results, median_times


def _build(tasks: List[luigi.Task]) -> None:
    if not luigi.build(tasks, local_scheduler=True, workers=1, log_level="ERROR"):
        raise RuntimeError("the benchmark DAG failed to build")


def run(results: Results, quick: bool) -> None:
    layers, width = (10, 20) if quick else (20, 50)
    repeats = 3 if quick else 5
    count = layers * width
    logging.getLogger("luigi-interface").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="luigi-repro-build-") as folder:
        os.environ["LUIGI_REPRO_STAT_CACHE"] = os.path.join(folder, "statcache.sqlite3")
        dag.set_folder(folder)
        plain = dag.roots(dag.PlainNode, layers, width)
        checked = dag.roots(dag.CheckedNode, layers, width)

        def from_scratch(tasks: List[luigi.Task], flavour: str) -> Callable[[], None]:
            def action() -> None:
                shutil.rmtree(os.path.join(folder, flavour), ignore_errors=True)
                _build(tasks)

            return action

        print(f"build: {count} tasks ({layers} layers x {width}, two requirements each)")
        everything = median_times(
            [
                ("plain", from_scratch(plain, "plain")),
                ("checked", from_scratch(checked, "checked")),
            ],
            repeats,
        )
        nothing = median_times(
            [("plain", lambda: _build(plain)), ("checked", lambda: _build(checked))], repeats
        )
    for label, times in (("everything built", everything), ("nothing built", nothing)):
        results.add("build", f"plain luigi.Task, {label}", times["plain"], "s")
        results.add("build", f"TaskWithCheckingInputHash, {label}", times["checked"], "s")
        ratio = times["checked"] / times["plain"]
        results.add(
            "build", f"checked / plain, {label}", ratio, "x", target="<= 1.3", ok=ratio <= 1.3
        )
