"""A small local pipeline whose tasks tell the scheduler why they run (tests of status messages).

Per name: ``raw/<name>.txt`` → :class:`L12Normalize` (lower-cased words, one a line) →
:class:`L12Count`; :class:`L12Summary` joins the counts. Changing only the case of a raw file
reruns its normalisation, which writes the same bytes: the count after it is an early cutoff.
"""

from __future__ import annotations

from typing import Dict

import luigi

from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash


class L12Normalize(TaskWithCheckingInputHash):
    name = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return HashableExternalFile(f"raw/{self.name}.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/norm_{self.name}.txt")

    def run(self) -> None:
        words = self.input().open("r").read().split()
        with self.output().open("w") as sink:
            sink.write("".join(word.lower() + "\n" for word in words))


class L12Count(TaskWithCheckingInputHash):
    name = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return L12Normalize(self.name)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/count_{self.name}.txt")

    def run(self) -> None:
        words = self.input().open("r").read().split()
        with self.output().open("w") as sink:
            sink.write(f"{len(words)}\n")


class L12Summary(TaskWithCheckingInputHash):
    names = luigi.ListParameter()

    def requires(self) -> Dict[str, luigi.Task]:
        return {name: L12Count(name) for name in self.names}

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/summary.txt")

    def run(self) -> None:
        lines = [f"{name} {self.input()[name].open('r').read().strip()}" for name in self.names]
        with self.output().open("w") as sink:
            sink.write("\n".join(lines) + "\n")
