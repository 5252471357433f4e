"""A two-step pipeline whose outputs do not depend on its parameter's place: ``level`` 1 -> 2 -> 1
writes the same files, so the third build's action keys are the first build's (run cache tests).

Every ``run()`` appends its task_id to ``runs.log`` (:func:`pipelines.runs` reads it).
"""

from __future__ import annotations

import luigi
from pipelines import log_run

from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash


class RcvStep(TaskWithCheckingInputHash):
    """Writes the raw text with ``level`` in front."""

    level = luigi.IntParameter()

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/in.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/step.txt")

    def run(self) -> None:
        log_run(self)
        text = self.input().open("r").read()
        with self.output().open("w") as sink:
            sink.write(f"{self.level}:{text}")


class RcvDown(TaskWithCheckingInputHash):
    """Reads :class:`RcvStep`'s output and doubles it."""

    level = luigi.IntParameter()

    def requires(self) -> luigi.Task:
        return RcvStep(self.level)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/down.txt")

    def run(self) -> None:
        log_run(self)
        text = self.input().open("r").read()
        with self.output().open("w") as sink:
            sink.write(text * 2)


class RcvUncached(TaskWithCheckingInputHash):
    """Like :class:`RcvStep`, but opted out of the run cache."""

    run_cache = False
    level = luigi.IntParameter()

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/in.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/uncached.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(f"{self.level}\n")
