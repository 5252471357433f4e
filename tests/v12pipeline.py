"""Pipelines for the verify-at-scale tests (test_verify_changed.py, test_verify_folders.py).

Run by the tests in-process and named with ``--module v12pipeline`` by the console script they
start. Parameters are declared out of alphabetical order, so a label shows which order it uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import luigi

from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash


class V12Part(TaskWithCheckingInputHash):
    """One partition: copies raw/<i>.txt."""

    i = luigi.IntParameter()
    shard = luigi.Parameter(default="s")
    alpha = luigi.Parameter(default="a")

    def requires(self) -> luigi.Task:
        return HashableExternalFile(f"raw/{self.i}.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/parts/{self.i}.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read())


class V12Gather(TaskWithCheckingInputHash):
    """Joins ``parts`` partitions."""

    parts = luigi.IntParameter()

    def requires(self) -> List[luigi.Task]:
        return [V12Part(i) for i in range(self.parts)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/gathered.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            for part in self.input():
                sink.write(part.open("r").read())


class V12Top(TaskWithCheckingInputHash):
    """Counts the gathered lines."""

    parts = luigi.IntParameter()

    def requires(self) -> luigi.Task:
        return V12Gather(self.parts)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/top.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(str(len(self.input().open("r").read().splitlines())))


class V12Leaf(TaskWithCheckingInputHash):
    name = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return HashableExternalFile(f"raw/{self.name}.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/leaf/{self.name}.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read())


class V12Mid(TaskWithCheckingInputHash):
    side = luigi.Parameter()

    def requires(self) -> List[luigi.Task]:
        return [V12Leaf(f"{self.side}1"), V12Leaf(f"{self.side}2")]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/mid/{self.side}.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write("".join(t.open("r").read() for t in self.input()))


class V12Root(TaskWithCheckingInputHash):
    def requires(self) -> List[luigi.Task]:
        return [V12Mid("a"), V12Mid("b")]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/root.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write("".join(t.open("r").read() for t in self.input()))


class V12Wrapper(luigi.WrapperTask):
    """Luigi's own wrapper around two leaves."""

    def requires(self) -> List[luigi.Task]:
        return [V12Leaf("a1"), V12Leaf("a2")]


class V12Folder(TaskWithCheckingInputHash):
    """A folder output (a folder target), one file per leaf it reads."""

    def requires(self) -> luigi.Task:
        return V12Leaf("a1")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/folder")

    def run(self) -> None:
        with self.output().temporary_path() as folder:
            os.makedirs(folder)
            Path(folder, "one.txt").write_text(self.input().open("r").read())


def write_raw(names: List[str]) -> None:
    """raw/<name>.txt for each name, holding its name."""
    Path("raw").mkdir(exist_ok=True)
    for name in names:
        Path("raw", f"{name}.txt").write_text(f"{name}\n")


def leaves() -> List[str]:
    return ["a1", "a2", "b1", "b2"]
