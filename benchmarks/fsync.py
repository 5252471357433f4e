"""What ``[luigi_repro] fsync`` costs per task: a build with it on against one with it off.

The same DAG as ``benchmarks/build.py`` (checked tasks only: two layers, each task requiring two
of the layer below) is built from an empty folder with ``LUIGI_REPRO_FSYNC=true`` and ``false``,
alternating, at two sizes. Every task then flushes its output file, its record and their folder
twice (one ``fsync`` each before and after a rename). The cost depends on the disk far more than
on luigi_repro, so the file system the folder lives on is printed with the figures; the log-log
slope between the two sizes says whether the per-task cost grows with the number of tasks.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from typing import Callable, Dict

from benchmarks import dag
from benchmarks.build import _build
from benchmarks.common import Results, environment, median_times
from luigi_repro.fsclock import filesystem_type

#: Number of tasks: normal sizes, then --quick ones.
SIZES = ((200, 800), (100, 400))


def file_system_of(path: str) -> str:
    """The type of the file system holding ``path`` (as luigi_repro reads it from the mount
    table), or "unknown"."""
    return filesystem_type(os.stat(path).st_dev) or "unknown"


def run(results: Results, quick: bool) -> None:
    repeats = 3 if quick else 5
    logging.getLogger("luigi-interface").setLevel(logging.ERROR)
    small, large = SIZES[1] if quick else SIZES[0]
    per_task = {count: measure(results, count, repeats) for count in (small, large)}
    for mode in ("fsync on", "fsync off"):
        growth = math.log(
            per_task[large][mode] * large / (per_task[small][mode] * small)
        ) / math.log(large / small)
        results.add("fsync", f"build time growth with tasks, {mode} (log-log slope)", growth, "")


def measure(results: Results, count: int, repeats: int) -> Dict[str, float]:
    """Build ``count`` checked tasks with fsync on and off; the milliseconds per task of each."""
    width = count // 2
    with (
        tempfile.TemporaryDirectory(prefix="luigi-repro-fsync-") as folder,
        environment(LUIGI_REPRO_STAT_CACHE=os.path.join(folder, "statcache.sqlite3")),
    ):
        print(f"fsync, {count} tasks, on {file_system_of(folder)}")
        dag.set_folder(folder)
        tasks = dag.roots(dag.CheckedNode, 2, width)

        def from_scratch(fsync: str) -> Callable[[], None]:
            def action() -> None:
                shutil.rmtree(os.path.join(folder, "checked"), ignore_errors=True)
                with environment(LUIGI_REPRO_FSYNC=fsync):
                    _build(tasks)

            return action

        times = median_times(
            [("fsync on", from_scratch("true")), ("fsync off", from_scratch("false"))], repeats
        )
    per_task = {mode: seconds * 1000 / count for mode, seconds in times.items()}
    for mode, value in per_task.items():
        results.add("fsync", f"{count} tasks from scratch, {mode}, per task", value, "ms")
    results.add(
        "fsync",
        f"{count} tasks: cost of fsync per task",
        per_task["fsync on"] - per_task["fsync off"],
        "ms",
    )
    return per_task
