"""A small shop pipeline: raw orders -> clean orders -> totals -> report.

Every task appends its task_id to ``runs.log`` when its ``run()`` body executes, so a test can see
exactly which tasks ran.
"""

import os

import luigi
from luigi.util import inherits, requires
from utils import money, preproc
from utils.config import DATA

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
    WrapperTask,
)


def log_run(task):
    with open("runs.log", "a") as stream:
        stream.write(task.task_id + "\n")


class CleanOrders(TaskWithCheckingInputHash):
    day = luigi.Parameter(default="2024-01-01")

    def requires(self):
        return HashableExternalFile(os.path.join(DATA, "orders.csv"))

    def output(self):
        return HashableLocalTarget(f"out/{self.day}/orders.tsv")

    def run(self):
        log_run(self)
        with self.input().open() as source:
            rows = preproc.parse_rows(source.read())
        with self.output().open("w") as sink:
            sink.writelines(f"{item}\t{qty}\t{price}\n" for item, qty, price in rows)


@requires(CleanOrders)
class Totals(TaskWithCheckingInputHash):
    #: Read in run() but not declared in requires(): undeclared reads are another matter.
    financials = luigi.LocalTarget(os.path.join(DATA, "financials.csv"))

    def output(self):
        return HashableLocalTarget(f"out/{self.day}/totals.txt")

    def run(self):
        log_run(self)
        with self.financials.open() as source:
            fee = float(source.read().strip())
        total = 0
        with self.input().open() as orders:
            for line in orders:
                _, quantity, price = line.split("\t")
                total += money.to_cents(float(quantity) * float(price) + fee)
        with self.output().open("w") as sink:
            sink.write(str(money.with_tax(total)))


@inherits(CleanOrders)
class Report(TaskWithCheckingInputHash):
    def requires(self):
        return self.clone(Totals)

    def output(self):
        return HashableLocalTarget(f"out/{self.day}/report.txt")

    def run(self):
        log_run(self)
        with self.input().open() as source:
            cents = int(source.read())
        with self.output().open("w") as sink:
            sink.write(f"Total for {self.day}: {money.format_total(cents)}\n")


class Root(WrapperTask):
    def requires(self):
        return Report()
