"""How the cost of checked builds grows with the number of tasks, against plain Luigi.

Two shapes, each at two sizes, built in this process with Luigi's local scheduler and one worker:

- the layered DAG of ``benchmarks/dag.py`` (every task requires two of the layer below), rebuilt
  when nothing changed ("no-op rebuild"): Luigi asks ``complete()`` of every root;
- a daily chain (each day requires the day before and its own raw file), built from scratch:
  before every run Luigi asks ``complete()`` of the day before, whose status stands on every
  earlier day.

A status recomputed from its whole upstream DAG on every call would make both quadratic (log-log
slope 2); remembered statuses kept honest by file-change events make them linear (slope 1). Each
row also counts, per build, the own verdicts the rules decided, those replayed by stat, those
reused with nothing read, and the statuses that stood whole.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import luigi

from benchmarks import dag
from benchmarks.common import Results, environment, median_times
from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash
from luigi_repro.runtime import runtime

NAME = "scaling"

#: (layers, width) of the DAG, and days of the chain: normal and --quick. The DAG's growth is
#: judged between the first two sizes (twice the tasks, twice as deep); the third is the size of
#: a large real pipeline (10,000 tasks), reported with its slope from the first.
DAG_SIZES = {False: ((20, 50), (40, 50), (20, 500)), True: ((10, 20), (20, 20), (10, 100))}
CHAIN_SIZES = {False: (150, 300), True: (40, 80)}

FOLDER = "chain"


class PlainDay(luigi.Task):
    day = luigi.IntParameter()

    def requires(self) -> List[luigi.Task]:
        upstream: List[luigi.Task] = [PlainRaw(day=self.day)]
        return upstream if self.day == 0 else [*upstream, PlainDay(day=self.day - 1)]

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(os.path.join(FOLDER, "plain", f"day{self.day:05d}.txt"))

    def run(self) -> None:
        _produce(self)


class PlainRaw(luigi.ExternalTask):
    day = luigi.IntParameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(_raw_path(self.day))


class CheckedDay(TaskWithCheckingInputHash):
    day = luigi.IntParameter()

    def requires(self) -> List[luigi.Task]:
        upstream: List[luigi.Task] = [HashableExternalFile(_raw_path(self.day))]
        return upstream if self.day == 0 else [*upstream, CheckedDay(day=self.day - 1)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.join(FOLDER, "checked", f"day{self.day:05d}.txt"))

    def run(self) -> None:
        _produce(self)


def _raw_path(day: int) -> str:
    return os.path.join(FOLDER, "raw", f"{day:05d}.txt")


def _produce(task: luigi.Task) -> None:
    text = "".join(
        target.open("r").read()[:64]
        for target in luigi.task.flatten(task.input())  # type: ignore[no-untyped-call]
    )
    with task.output().open("w") as sink:
        sink.write(f"{task.day}:{len(text)}\n")


def _build(tasks: List[luigi.Task], workers: int = 1) -> None:
    if not luigi.build(tasks, local_scheduler=True, workers=workers, log_level="ERROR"):
        raise RuntimeError("the benchmark pipeline failed to build")


def _from_scratch(tasks: List[luigi.Task], folder: str, flavour: str) -> None:
    shutil.rmtree(os.path.join(folder, flavour), ignore_errors=True)
    _build(tasks)


def _counted(action: Callable[[], None]) -> Tuple[float, Dict[str, int]]:
    counts = runtime().memory.counts
    before = (counts.decided, counts.replayed, counts.reused, counts.statuses_reused)
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    after = (counts.decided, counts.replayed, counts.reused, counts.statuses_reused)
    names = ("decided", "replayed", "reused", "statuses reused")
    return elapsed, {name: b - a for name, a, b in zip(names, before, after)}


#: Days at the end of the chain whose raw files change before the rebuild with two workers.
EDITED = 10


def _partial_rebuild(days: int, repeats: int) -> Dict[str, float]:
    """The last :data:`EDITED` days changed (raw files edited; plain outputs removed), rebuilt
    with two workers (each task in a forked child): the median of ``repeats`` rounds."""
    changed = range(max(0, days - EDITED), days)

    def plain() -> None:
        for day in changed:
            os.unlink(os.path.join(FOLDER, "plain", f"day{day:05d}.txt"))
        _build([PlainDay(day=days - 1)], workers=2)

    def checked() -> None:
        for day in changed:
            with open(_raw_path(day), "a") as sink:
                sink.write("edited\n")
        _build([CheckedDay(day=days - 1)], workers=2)

    _build([PlainDay(day=days - 1)])
    _build([CheckedDay(day=days - 1)])
    return median_times(
        [("plain luigi.Task", plain), ("TaskWithCheckingInputHash", checked)], repeats
    )


def _timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _slope(small: Tuple[int, float], large: Tuple[int, float]) -> float:
    return math.log(large[1] / small[1]) / math.log(large[0] / small[0])


def run(results: Results, quick: bool) -> None:
    logging.getLogger("luigi-interface").setLevel(logging.ERROR)
    repeats = 3 if quick else 5
    with (
        tempfile.TemporaryDirectory(prefix="luigi-repro-scaling-") as folder,
        environment(LUIGI_REPRO_STAT_CACHE=os.path.join(folder, "statcache.sqlite3")),
    ):
        _dag_rows(results, folder, DAG_SIZES[quick], repeats)
        _chain_rows(results, folder, CHAIN_SIZES[quick], max(1, repeats - 2))


def _dag_rows(
    results: Results, folder: str, sizes: Tuple[Tuple[int, int], ...], repeats: int
) -> None:
    points: Dict[str, List[Tuple[int, float]]] = {"plain": [], "checked": []}
    for layers, width in sizes:
        count = layers * width
        dag.set_folder(os.path.join(folder, f"dag{count}"))
        plain = dag.roots(dag.PlainNode, layers, width)
        checked = dag.roots(dag.CheckedNode, layers, width)
        scratch = {
            "plain": _timed(functools.partial(_build, plain)),
            "checked": _timed(functools.partial(_build, checked)),
        }
        times = median_times(
            [
                ("plain", functools.partial(_build, plain)),
                ("checked", functools.partial(_build, checked)),
            ],
            repeats,
        )
        _, counts = _counted(functools.partial(_build, checked))
        built = f"first build from scratch, {count} tasks in {layers} layers (one sample)"
        results.add(NAME, f"plain luigi.Task, {built}", scratch["plain"], "s")
        results.add(NAME, f"TaskWithCheckingInputHash, {built}", scratch["checked"], "s")
        results.add(NAME, f"checked / plain, {built}", scratch["checked"] / scratch["plain"], "x")
        name = f"no-op rebuild, {count} tasks in {layers} layers"
        results.add(NAME, f"plain luigi.Task, {name}", times["plain"], "s")
        results.add(NAME, f"TaskWithCheckingInputHash, {name}", times["checked"], "s")
        ratio = times["checked"] / times["plain"]
        results.add(NAME, f"checked / plain, {name}", ratio, "x", target="<= 3", ok=ratio <= 3)
        for what, value in counts.items():
            results.add(NAME, f"{name}: own verdicts {what} per build", value, "")
        for flavour in points:
            points[flavour].append((count, times[flavour]))
    for flavour, measured in points.items():
        slope = _slope(measured[0], measured[1])
        ok = slope <= 1.15 if flavour == "checked" else None
        target = "<= 1.15" if flavour == "checked" else None
        results.add(
            NAME,
            f"no-op rebuild growth, {flavour} (log-log slope)",
            slope,
            "",
            target=target,
            ok=ok,
        )
        if len(measured) > 2:
            wide = _slope(measured[0], measured[2])
            results.add(
                NAME,
                f"no-op rebuild growth to {measured[2][0]} tasks, {flavour} (log-log slope)",
                wide,
                "",
                target=target,
                ok=wide <= 1.15 if flavour == "checked" else None,
            )


def _chain_rows(results: Results, folder: str, sizes: Tuple[int, ...], repeats: int) -> None:
    global FOLDER
    points: Dict[str, List[Tuple[int, float]]] = {"plain": [], "checked": []}
    work: List[Tuple[int, float]] = []
    forked: Dict[str, List[Tuple[int, float]]] = {
        "plain luigi.Task": [],
        "TaskWithCheckingInputHash": [],
    }
    for days in sizes:
        FOLDER = os.path.join(folder, f"chain{days}")
        os.makedirs(os.path.join(FOLDER, "raw"))
        for day in range(days):
            with open(_raw_path(day), "w") as sink:
                sink.write(f"raw {day}\n")
        plain: List[luigi.Task] = [PlainDay(day=days - 1)]
        checked: List[luigi.Task] = [CheckedDay(day=days - 1)]
        times = median_times(
            [
                ("plain", functools.partial(_from_scratch, plain, FOLDER, "plain")),
                ("checked", functools.partial(_from_scratch, checked, FOLDER, "checked")),
            ],
            repeats,
        )
        _, counts = _counted(functools.partial(_from_scratch, checked, FOLDER, "checked"))
        name = f"daily chain of {days} days, built from scratch"
        results.add(NAME, f"plain luigi.Task, {name}", times["plain"], "s")
        results.add(NAME, f"TaskWithCheckingInputHash, {name}", times["checked"], "s")
        results.add(NAME, f"checked / plain, {name}", times["checked"] / times["plain"], "x")
        for what, value in counts.items():
            results.add(NAME, f"{name}: own verdicts {what} per build", value, "")
        for flavour in points:
            points[flavour].append((days, times[flavour]))
        work.append((days, max(1, counts["decided"] + counts["replayed"])))
        partial = _partial_rebuild(days, repeats)
        name = f"daily chain of {days} days, last {EDITED} days changed, rebuilt with 2 workers"
        for flavour, seconds in partial.items():
            results.add(NAME, f"{flavour}, {name}", seconds, "s")
            forked[flavour].append((days, seconds))
        ratio = partial["TaskWithCheckingInputHash"] / partial["plain luigi.Task"]
        results.add(NAME, f"checked / plain, {name}", ratio, "x")
    # Luigi's own scheduler grows faster than linearly on a chain (its slope is printed too):
    # luigi_repro must add no growth of its own, and its verdict work must be linear.
    slopes = {flavour: _slope(measured[0], measured[-1]) for flavour, measured in points.items()}
    for flavour, slope in slopes.items():
        results.add(NAME, f"daily chain build growth, {flavour} (log-log slope)", slope, "")
    excess = slopes["checked"] - slopes["plain"]
    results.add(
        NAME,
        "daily chain build growth, checked minus plain (slope)",
        excess,
        "",
        target="<= 0.15",
        ok=excess <= 0.15,
    )
    # Each task runs in a forked child that checks its dependencies: a child handed its
    # parent's remembered statuses looks at what changed, not at the whole chain.
    slope = _slope(forked["TaskWithCheckingInputHash"][0], forked["TaskWithCheckingInputHash"][-1])
    results.add(
        NAME,
        "daily chain rebuilt with 2 workers after a change, checked (log-log slope)",
        slope,
        "",
        target="<= 0.5",
        ok=slope <= 0.5,
    )
    verdict_slope = _slope(work[0], work[-1])
    results.add(
        NAME,
        "daily chain, verdicts decided and replayed per build (log-log slope)",
        verdict_slope,
        "",
        target="<= 1.05",
        ok=verdict_slope <= 1.05,
    )
