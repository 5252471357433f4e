"""Part 3 of ``benchmarks/runcache.py``: the run cache's cost per task, at scale.

The two-layer DAG of ``benchmarks/dag.py`` (N small checked tasks) is built in this process from
scratch with the cache on and off (the difference is the cost of storing), then rebuilt after
every record is removed, with the cache warm (every task restored, as each build checks) and
off (every task runs again). Milliseconds per task at two sizes, and the slope between them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Sequence

from benchmarks import dag
from benchmarks.build import _build
from benchmarks.common import Results, environment
from benchmarks.runcache import NAME, Spans, interleaved, slope


def _records(folder: str) -> List[str]:
    return [
        os.path.join(top, name)
        for top, _, names in os.walk(folder)
        for name in names
        if name.endswith(".repro.json")
    ]


def _restored(folder: str) -> int:
    """How many records under ``folder`` say their output was restored from the cache."""
    count = 0
    for path in _records(folder):
        with open(path) as stream:
            count += bool(json.load(stream).get("run", {}).get("restored_from"))
    return count


def small_tasks(results: Results, count: int, repeats: int) -> Dict[str, float]:
    """Build ``count`` small checked tasks with the cache on and off: milliseconds per task of
    each way (from scratch, and rebuilt after every record is removed)."""
    with tempfile.TemporaryDirectory(prefix="luigi-repro-runcache-tasks-") as folder:
        outputs, cache = os.path.join(folder, "checked"), os.path.join(folder, "cache")
        dag.set_folder(folder)
        tasks = dag.roots(dag.CheckedNode, 2, count // 2)

        def setup(scratch: bool, clear_cache: bool = False) -> Callable[[], None]:
            def action() -> None:
                if scratch:
                    shutil.rmtree(outputs, ignore_errors=True)
                else:
                    for path in _records(outputs):
                        os.unlink(path)
                if clear_cache:
                    shutil.rmtree(cache, ignore_errors=True)

            return action

        def build(with_cache: bool, restored: int) -> Callable[[], Spans]:
            def action() -> Spans:
                with environment(LUIGI_REPRO_RUN_CACHE=cache if with_cache else ""):
                    _build(tasks)
                found = _restored(outputs)
                if found != restored:
                    raise RuntimeError(f"{found} of {count} tasks restored, not {restored}")
                return {}

            return action

        with environment(LUIGI_REPRO_STAT_CACHE=os.path.join(folder, "statcache.sqlite3")):
            build(False, 0)()  # warm-up: imports, code fingerprints, Luigi's task instances
            medians = interleaved(
                {
                    "from scratch, cache off": (setup(True), build(False, 0)),
                    "from scratch, cache on (stores)": (setup(True, True), build(True, 0)),
                    "records removed, cache off (runs)": (setup(False), build(False, 0)),
                    "records removed, cache warm (restores)": (setup(False), build(True, count)),
                },
                repeats,
            )
    per_task = {name: spans["whole"] * 1000 / count for name, spans in medians.items()}
    for name, value in per_task.items():
        results.add(NAME, f"{count} small tasks, {name}, per task", value, "ms")
    store = per_task["from scratch, cache on (stores)"] - per_task["from scratch, cache off"]
    results.add(NAME, f"{count} small tasks, cost of storing per task", store, "ms")
    restore = per_task["records removed, cache warm (restores)"]
    saved = per_task["records removed, cache off (runs)"] - restore
    results.add(NAME, f"{count} small tasks, a restore saves per task", saved, "ms")
    return per_task


def many_tasks(results: Results, counts: Sequence[int], repeats: int) -> None:
    """Part 3 at each number of tasks, then the slope of each build's time between them."""
    luigi_logger = logging.getLogger("luigi-interface")
    level = luigi_logger.level
    luigi_logger.setLevel(logging.ERROR)
    try:
        per_task = {count: small_tasks(results, count, repeats) for count in counts}
    finally:
        luigi_logger.setLevel(level)  # the tests run this in-process: leave logging as found
    small, large = counts[0], counts[-1]
    if small == large:
        return
    for name in per_task[small]:
        value = slope(per_task[small][name] * small, per_task[large][name] * large, small, large)
        results.add(NAME, f"small tasks {small} -> {large}, {name}, log-log slope", value, "")
