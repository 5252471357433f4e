"""What the everyday commands cost as a pipeline grows: each run as its user runs it.

A generated project of N partitions (``Part(i)`` copies ``raw/<i>.txt``, ``Gather`` joins them,
``Top`` counts the lines: 2N + 2 tasks with the raw files) is built once with ``luigi``; one raw
file is then edited, and each command is timed as a fresh process (the median of a few runs):
``verify --changed`` in task mode and on the results folder, ``dag --format html``,
``invalidate --dry-run`` of every partition with ``--downstream``, and ``gc`` of the results
folder. Two sizes; the log-log slope between them says how each cost grows with the pipeline
(1.0 = linear; the start of Python and the imports are a constant part of every figure).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Sequence

from benchmarks.common import Results

NAME = "everyday"

#: Partitions: normal sizes, then --quick ones.
SIZES = {False: (1000, 4000), True: (100, 400)}

PIPELINE = """
import luigi
from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash


class Part(TaskWithCheckingInputHash):
    i = luigi.IntParameter()

    def requires(self):
        return HashableExternalFile(f"raw/{self.i}.txt")

    def output(self):
        return HashableLocalTarget(f"out/parts/{self.i}.txt")

    def run(self):
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read())


class Gather(TaskWithCheckingInputHash):
    parts = luigi.IntParameter()

    def requires(self):
        return [Part(i) for i in range(self.parts)]

    def output(self):
        return HashableLocalTarget("out/gathered.txt")

    def run(self):
        with self.output().open("w") as sink:
            for part in self.input():
                sink.write(part.open("r").read())


class Top(TaskWithCheckingInputHash):
    parts = luigi.IntParameter()

    def requires(self):
        return Gather(self.parts)

    def output(self):
        return HashableLocalTarget("out/top.txt")

    def run(self):
        with self.output().open("w") as sink:
            sink.write(str(len(self.input().open("r").read().split())))
"""


def _command(project: str, args: Sequence[str], ok: Sequence[int] = (0, 1)) -> float:
    """Seconds one fresh process of ``args`` takes in ``project`` (its exit status checked)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([project, os.environ.get("PYTHONPATH", "")]))
    env["LUIGI_REPRO_STAT_CACHE"] = os.path.join(project, "stat-cache.sqlite3")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=project, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode not in ok:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def _project(folder: str, parts: int) -> str:
    project = os.path.join(folder, f"p{parts}")
    os.makedirs(os.path.join(project, "raw"))
    with open(os.path.join(project, "pipeline.py"), "w") as stream:
        stream.write(PIPELINE)
    for i in range(parts):
        with open(os.path.join(project, "raw", f"{i}.txt"), "w") as stream:
            stream.write(f"row {i}\n")
    top = ["--module", "pipeline", "Top", "--parts", str(parts)]
    _command(project, ["luigi", *top, "--local-scheduler"], ok=(0,))
    with open(os.path.join(project, "raw", "7.txt"), "a") as stream:
        stream.write("edited\n")
    return project


def _commands(parts: int, has_dag: bool) -> Dict[str, List[str]]:
    top = ["--module", "pipeline", "Top", "--parts", str(parts)]
    commands = {
        "verify --changed (task mode)": ["luigi_repro", "verify", "--changed", *top],
        "verify --changed out/ (records only)": ["luigi_repro", "verify", "--changed", "out"],
        "invalidate --dry-run --task Part --downstream": [
            "luigi_repro",
            "invalidate",
            "--dry-run",
            "--task",
            "Part",
            "--downstream",
            *top,
        ],
        "gc out/ (listing)": ["luigi_repro", "gc", "out"],
    }
    if has_dag:
        commands["dag --format html"] = [
            "luigi_repro",
            "dag",
            "--format",
            "html",
            "-o",
            "graph.html",
            *top,
        ]
    return commands


def run(results: Results, quick: bool) -> None:
    measure(results, SIZES[quick], repeats=3)


def measure(results: Results, sizes: Sequence[int], repeats: int) -> None:
    """Time each command at the two ``sizes`` (partitions); add the figures and slopes."""
    try:
        import luigi_repro.cli.dag  # noqa: F401

        has_dag = True
    except ImportError:
        has_dag = False
    times: Dict[str, Dict[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="luigi-repro-everyday-") as folder:
        for parts in sizes:
            project = _project(folder, parts)
            for label, args in _commands(parts, has_dag).items():
                runs = sorted(_command(project, args) for _ in range(repeats))
                times.setdefault(label, {})[parts] = runs[len(runs) // 2]
    small, large = sizes
    print(f"everyday: {2 * small + 2} and {2 * large + 2} tasks, one raw file edited")
    for label, by_size in times.items():
        for parts in sizes:
            results.add(NAME, f"{label}, {2 * parts + 2} tasks", by_size[parts], "s")
        slope = math.log(by_size[large] / by_size[small]) / math.log(large / small)
        results.add(NAME, f"{label}, log-log slope", slope, "")
