"""Where the time of a build from scratch goes, per task: checked tasks against plain ones.

The DAG of ``benchmarks/build.py`` is built once of plain and once of checked tasks (after one
warm-up build of each), with a timer around each part of the work: Luigi's ``complete()``
calls, the run protocol's steps (locks, fingerprints before and after ``run()``, the record
written, the folder flush), the ``fsync`` calls, and ``run()`` itself. The figures are the
microseconds each part costs per task (inclusive, so they overlap: ``finish`` holds the record
write, which holds an ``fsync``), and how often it happens per task.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

import luigi

from benchmarks import dag
from benchmarks.build import _build
from benchmarks.common import Results, environment

#: (layers, width): normal and --quick.
SIZES = ((20, 50), (10, 20))


def _parts() -> List[Tuple[Any, str, str]]:
    """(owner, attribute, label) of every timed part."""
    from luigi_repro import task as checked_task
    from luigi_repro.protocol import RunProtocol
    from luigi_repro.targets.local import HashableLocalTarget

    return [
        (luigi.Task, "complete", "complete()"),
        (checked_task.CheckingInputHashMixin, "complete", "complete()"),
        (dag._Shape, "produce", "run() itself"),
        (RunProtocol, "begin", "protocol: lock, fingerprint inputs, judge"),
        (RunProtocol, "_lock", "… of which the run lock"),
        (RunProtocol, "finish", "protocol: fingerprint again, write the record"),
        (HashableLocalTarget, "write_record_bytes", "… of which the record write"),
        (RunProtocol, "close", "protocol: release, flush the folder"),
        (os, "fsync", "fsync"),
    ]


@contextlib.contextmanager
def _timed(spent: Dict[str, float], calls: Dict[str, int]) -> Iterator[None]:
    """Wrap every part in a timer for the duration of the block."""
    saved = []
    for owner, name, label in _parts():
        saved.append((owner, name, vars(owner).get(name)))
        setattr(owner, name, _timer(getattr(owner, name), label, spent, calls))
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            if original is None:
                delattr(owner, name)  # it was inherited
            else:
                setattr(owner, name, original)


def _timer(
    func: Callable[..., Any], label: str, spent: Dict[str, float], calls: Dict[str, int]
) -> Callable[..., Any]:
    @functools.wraps(func)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - started
            calls[label] = calls.get(label, 0) + 1

    return timed


def run(results: Results, quick: bool) -> None:
    logging.getLogger("luigi-interface").setLevel(logging.ERROR)
    layers, width = SIZES[1] if quick else SIZES[0]
    measure(results, layers, width)


def measure(results: Results, layers: int, width: int) -> None:
    """Build the DAG of both flavours once under the timers; add the per-task figures."""
    count = layers * width
    with (
        tempfile.TemporaryDirectory(prefix="luigi-repro-buildcost-") as folder,
        environment(LUIGI_REPRO_STAT_CACHE=os.path.join(folder, "statcache.sqlite3")),
    ):
        dag.set_folder(folder)
        totals: Dict[str, float] = {}
        parts: Dict[str, Tuple[Dict[str, float], Dict[str, int]]] = {}
        for flavour, cls in (("plain", dag.PlainNode), ("checked", dag.CheckedNode)):
            tasks = dag.roots(cls, layers, width)
            _build(tasks)  # warm-up: imports, code fingerprints
            shutil.rmtree(os.path.join(folder, flavour))
            spent, calls = parts[flavour] = ({}, {})
            with _timed(spent, calls):
                started = time.perf_counter()
                _build(tasks)
                totals[flavour] = time.perf_counter() - started
            shutil.rmtree(os.path.join(folder, flavour))
    print(f"buildcost: {count} tasks ({layers} layers x {width}), one build of each")
    for flavour, seconds in totals.items():
        results.add("buildcost", f"{flavour} build, per task", seconds / count * 1e6, "us")
    extra = (totals["checked"] - totals["plain"]) / count * 1e6
    results.add("buildcost", "checked - plain, per task", extra, "us")
    for flavour, (spent, calls) in parts.items():
        for label in dict.fromkeys(label for _, _, label in _parts()):
            if label in spent:
                per_task = spent[label] / count * 1e6
                results.add("buildcost", f"{flavour}: {label}, per task", per_task, "us")
                results.add(
                    "buildcost", f"{flavour}: {label}, calls per task", calls[label] / count, ""
                )
