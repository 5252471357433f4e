"""The large DAG that ``benchmarks/build.py`` builds, in two flavours with the same shape.

``layers`` layers of ``width`` tasks; every task of a layer requires two tasks of the layer
below it and writes a small text file derived from what it read. ``Plain*`` tasks are
``luigi.Task`` with ``LocalTarget``; ``Checked*`` tasks are ``TaskWithCheckingInputHash`` with
``HashableLocalTarget``; nothing else differs.
"""

from __future__ import annotations

import os
from typing import List

import luigi

from luigi_repro import HashableLocalTarget, TaskWithCheckingInputHash

#: Where the outputs go (``set_folder``); one subfolder per flavour.
FOLDER = "dag"


class _Shape(luigi.Task):
    layer = luigi.IntParameter()
    index = luigi.IntParameter()
    width = luigi.IntParameter()

    def upstream(self) -> List[luigi.Task]:
        if self.layer == 0:
            return []
        return [
            type(self)(
                layer=self.layer - 1, index=(self.index + step) % self.width, width=self.width
            )
            for step in (0, 1)
        ]

    def path(self, flavour: str) -> str:
        return os.path.join(FOLDER, flavour, f"l{self.layer:03d}_{self.index:04d}.txt")

    def produce(self) -> None:
        parts = [f"{self.layer}/{self.index}\n"]
        for target in luigi.task.flatten(self.input()):  # type: ignore[no-untyped-call]
            with target.open("r") as source:
                parts.append(source.read()[:64])
        with self.output().open("w") as sink:  # type: ignore[no-untyped-call]
            sink.write("".join(parts))


class PlainNode(_Shape):
    def requires(self) -> List[luigi.Task]:
        return self.upstream()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.path("plain"))

    def run(self) -> None:
        self.produce()


class CheckedNode(_Shape, TaskWithCheckingInputHash):
    def requires(self) -> List[luigi.Task]:
        return self.upstream()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(self.path("checked"))

    def run(self) -> None:
        self.produce()


def roots(flavour: type, layers: int, width: int) -> List[luigi.Task]:
    """The top layer: building it builds the whole DAG."""
    return [flavour(layer=layers - 1, index=index, width=width) for index in range(width)]


def set_folder(path: str) -> None:
    global FOLDER
    FOLDER = path
