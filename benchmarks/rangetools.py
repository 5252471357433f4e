"""What it costs a Range tool to find the stale dates of checked tasks, at two sizes.

``RangeDaily`` asks the task class's ``bulk_complete`` which dates are done. For plain Luigi
tasks it lists the output files instead (one listing, no ``complete()``); for checked tasks
luigi_repro judges every date in one check: its output, record, parameters, code and raw input.
Both are measured on the same N daily tasks, all up to date, interleaved; the log-log slope of
the checked cost against N says whether it grows linearly (1).
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import shutil
import tempfile
import warnings
from typing import Any, Dict, List, Tuple

import luigi
from luigi.task_register import Register
from luigi.tools.range import RangeDaily

from benchmarks.common import Results, environment, median_times
from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash

START = datetime.date(2020, 1, 1)
SIZES = {True: (100, 200), False: (365, 730)}


class PlainDay(luigi.Task):
    """A plain Luigi daily task: done when its file exists."""

    date = luigi.DateParameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(f"plain/{self.date:%Y-%m-%d}.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(str(self.date))


class CheckedDay(TaskWithCheckingInputHash):
    """The same task, checked: its raw input, parameters and code are part of done."""

    date = luigi.DateParameter()

    def requires(self) -> luigi.Task:
        return HashableExternalFile(f"raw/{self.date:%Y-%m-%d}.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"checked/{self.date:%Y-%m-%d}.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read())


def _missing(of: Any, days: int) -> List[Any]:
    """A new Range (as a new ``luigi`` process makes it) and the tasks it finds missing."""
    Register.clear_instance_cache()
    stop = START + datetime.timedelta(days=days)
    now = datetime.datetime(stop.year, stop.month, stop.day, tzinfo=datetime.timezone.utc)
    task = RangeDaily(of=of, start=START, stop=stop, days_back=days + 10, now=int(now.timestamp()))
    return list(task.requires())


def _prepare(days: int) -> None:
    os.makedirs("raw", exist_ok=True)
    dates = [START + datetime.timedelta(days=d) for d in range(days)]
    for day in dates:
        with open(f"raw/{day:%Y-%m-%d}.txt", "w") as stream:
            stream.write(f"data of {day}\n")
    tasks = [PlainDay(day) for day in dates] + [CheckedDay(day) for day in dates]
    assert luigi.build(tasks, local_scheduler=True, log_level="ERROR")


def _measure(days: int, repeats: int) -> Tuple[float, float]:
    assert _missing(PlainDay, days) == []
    assert _missing(CheckedDay, days) == []
    times: Dict[str, float] = median_times(
        [
            ("plain", lambda: _missing(PlainDay, days)),
            ("checked", lambda: _missing(CheckedDay, days)),
        ],
        repeats,
    )
    return times["plain"], times["checked"]


def growth(results: Results, small: int, large: int, repeats: int) -> None:
    """Both contenders over ``small`` and ``large`` days, and the growth of the checked cost."""
    checked: Dict[int, float] = {}
    for days in (small, large):
        folder = tempfile.mkdtemp(prefix="luigi_repro-range-")
        cwd = os.getcwd()
        try:
            os.chdir(folder)
            with environment(LUIGI_REPRO_STAT_CACHE=os.path.join(folder, "statcache.sqlite3")):
                _prepare(days)
                plain, checked[days] = _measure(days, repeats)
        finally:
            os.chdir(cwd)
            shutil.rmtree(folder, ignore_errors=True)
        results.add("rangetools", f"RangeDaily over {days} days, plain (file listing)", plain, "s")
        results.add(
            "rangetools",
            f"RangeDaily over {days} days, checked (bulk_complete)",
            checked[days],
            "s",
        )
        results.add(
            "rangetools", f"checked per day ({days} days)", checked[days] / days * 1e6, "us"
        )
    slope = math.log(checked[large] / checked[small]) / math.log(large / small)
    results.add(
        "rangetools", "growth of the checked cost (log-log slope)", slope, "", "≤ 1.2", slope <= 1.2
    )


def run(results: Results, quick: bool) -> None:
    logging.getLogger("luigi-interface").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message='Parameter "param_name"')  # Luigi's own Range
    growth(results, *SIZES[quick], repeats=3 if quick else 5)
