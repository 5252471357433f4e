"""The shape of a museum's data pipeline (public: a Luigi project that fills a database daily).

A root wrapper (``FillDb``) requires two wrappers (daily and hourly), which require one task per
data source; one source is a folder of exported CSV files, listed by a wrapper's ``requires()``
(one task per file). Run with several workers, as the project does::

    luigi --module pipeline FillDb --local-scheduler --workers 3

The sources write plain text instead of database tables; the structure is what matters here.
"""

from __future__ import annotations

import csv
import os
from typing import Iterator, List

import luigi

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
    WrapperTask,
)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
OUT = os.path.join(HERE, "output")
RUNS = os.path.join(HERE, "runs.log")


def _note_run(task: luigi.Task) -> None:
    with open(RUNS, "a") as log:
        log.write(task.task_id + "\n")


class PostsFile(TaskWithCheckingInputHash):
    """One exported file of social media posts, cleaned."""

    name = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return HashableExternalFile(os.path.join(DATA, "posts", self.name))

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.join(OUT, "posts", self.name))

    def run(self) -> None:
        _note_run(self)
        with self.input().open("r") as source, self.output().open("w") as sink:
            for row in csv.DictReader(source):
                sink.write(f"{row['post_id']},{row['text'].strip().lower()}\n")


class PostsToDb(luigi.WrapperTask):
    """Every exported posts file in the folder (the project lists its exports like this)."""

    def requires(self) -> Iterator[luigi.Task]:
        for name in sorted(os.listdir(os.path.join(DATA, "posts"))):
            if name.endswith(".csv"):
                yield PostsFile(name=name)


class PostPerformanceToDb(TaskWithCheckingInputHash):
    """Counts per post, from every cleaned posts file."""

    def requires(self) -> luigi.Task:
        return PostsToDb()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.join(OUT, "post_performance.txt"))

    def run(self) -> None:
        _note_run(self)
        total = 0
        for task in PostsToDb().requires():
            with task.output().open("r") as cleaned:
                total += sum(1 for _ in cleaned)
        with self.output().open("w") as sink:
            sink.write(f"posts: {total}\n")


class GomusToDb(TaskWithCheckingInputHash):
    """Ticket sales from the ticketing system's export."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile(os.path.join(DATA, "gomus", "orders.csv"))

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.join(OUT, "gomus_orders.txt"))

    def run(self) -> None:
        _note_run(self)
        with self.input().open("r") as source:
            rows = list(csv.DictReader(source))
        with self.output().open("w") as sink:
            sink.write(f"orders: {len(rows)}, tickets: {sum(int(r['tickets']) for r in rows)}\n")


class Diagnostics(TaskWithCheckingInputHash):
    """A report over what the daily tasks produced."""

    def requires(self) -> List[luigi.Task]:
        return [PostPerformanceToDb(), GomusToDb()]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.join(OUT, "diagnostics.txt"))

    def run(self) -> None:
        _note_run(self)
        with self.output().open("w") as sink:
            for target in self.input():
                with target.open("r") as part:
                    sink.write(part.read())


class FillDbDaily(WrapperTask):
    """Runs all tasks that are relevant for the daily pipeline execution."""

    def requires(self) -> Iterator[luigi.Task]:
        yield PostPerformanceToDb()
        yield GomusToDb()
        yield Diagnostics()


class FillDbHourly(luigi.WrapperTask):
    """Runs the tasks refreshed every hour."""

    def requires(self) -> Iterator[luigi.Task]:
        yield GomusToDb()


class FillDb(WrapperTask):
    """The proto-root of the complete data pipeline."""

    def requires(self) -> Iterator[luigi.Task]:
        yield FillDbDaily()
        yield FillDbHourly()
