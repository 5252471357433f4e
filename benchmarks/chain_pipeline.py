"""The wide pipeline measured by ``benchmarks/pipeline.py``, importable by a child process.

``Root(count=N)`` wraps ``N`` independent ``Produce(index=i)`` tasks. Each ``Produce`` reads one
small raw file, ``raw/<i>.txt`` (its seed), and writes ``out/<i>.bin``: :data:`OUTPUT_SIZE` bytes
drawn from a generator seeded by that file, so every output differs and a rerun gives the same
bytes. All files live in the folder named by the environment variable :data:`DATA_ENV`, so that
``luigi-repro verify --module benchmarks.chain_pipeline Root --count N`` judges the same files in
another process.

``DiamondTop`` is the other shape measured there: ``DIAMOND_LAYERS`` layers of two tasks, each
requiring both tasks of the layer below, over one raw seed (``diamond/seed.txt``): one check must
judge each task and fingerprint each file once, however many paths lead to it.

The wide shape is one DVC can express too: one ``dvc.yaml`` stage per ``Produce`` (a dependency
on the raw file, the output as its ``outs``), which is how ``benchmarks/pipeline.py`` compares
``luigi-repro verify`` with ``dvc status``.
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import List, Union

import luigi
import luigi.format

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
    WrapperTask,
)

__all__ = [
    "DATA_ENV",
    "DIAMOND_LAYERS",
    "OUTPUT_SIZE",
    "DiamondLayer",
    "DiamondTop",
    "Produce",
    "Root",
    "data_folder",
    "diamond_path",
    "output_path",
    "raw_path",
    "write_raw_inputs",
]

#: The environment variable naming the folder that holds ``raw/`` and ``out/``.
DATA_ENV = "LUIGI_REPRO_BENCHMARK_DATA"

#: Bytes in every output.
OUTPUT_SIZE = 1 << 20

#: Layers of the diamond (two tasks each).
DIAMOND_LAYERS = 20


def data_folder() -> str:
    """The folder named by :data:`DATA_ENV` (an error that says so when it is not set)."""
    folder = os.environ.get(DATA_ENV)
    if not folder:
        raise RuntimeError(f"set {DATA_ENV} to the benchmark's data folder")
    return folder


def raw_path(index: int) -> str:
    """Where the raw input (the seed) of ``Produce(index)`` is."""
    return os.path.join(data_folder(), "raw", f"{index:04d}.txt")


def output_path(index: int) -> str:
    """Where ``Produce(index)`` writes its output."""
    return os.path.join(data_folder(), "out", f"{index:04d}.bin")


def diamond_path(name: str) -> str:
    """A file of the diamond pipeline."""
    return os.path.join(data_folder(), "diamond", name)


def write_raw_inputs(count: int) -> None:
    """Create the ``count`` raw seed files (a few bytes each)."""
    os.makedirs(os.path.join(data_folder(), "raw"), exist_ok=True)
    for index in range(count):
        with open(raw_path(index), "w") as stream:
            stream.write(f"seed {index}\n")


class Produce(TaskWithCheckingInputHash):
    """Read a seed, write :data:`OUTPUT_SIZE` pseudo-random bytes drawn from it."""

    index = luigi.IntParameter()

    def requires(self) -> HashableExternalFile:
        return HashableExternalFile(raw_path(self.index))  # type: ignore[no-untyped-call]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(output_path(self.index), format=luigi.format.Nop)

    def run(self) -> None:
        with open(self.requires().output().path) as source:
            seed = source.read()
        data = random.Random(seed).randbytes(OUTPUT_SIZE)
        with self.output().temporary_path() as path, open(path, "wb") as sink:
            sink.write(data)


class Root(WrapperTask):
    """All ``count`` outputs: ``Produce(0)`` … ``Produce(count - 1)``."""

    count = luigi.IntParameter(default=1000)

    def requires(self) -> List[Produce]:
        return [Produce(index=index) for index in range(self.count)]


def _input_paths(task: luigi.Task) -> List[str]:
    """The paths of the outputs of what ``task`` requires (one task or a list of them)."""
    required = task.requires()
    tasks = required if isinstance(required, list) else [required]
    return [str(upstream.output().path) for upstream in tasks]


def _read(path: str) -> str:
    with open(path) as stream:
        return stream.read()


class DiamondLayer(TaskWithCheckingInputHash):
    """Task (layer, column); every task of a layer requires both tasks of the layer below."""

    layer = luigi.IntParameter()
    column = luigi.IntParameter()

    def requires(self) -> Union[HashableExternalFile, List[DiamondLayer]]:
        if self.layer == 0:
            return HashableExternalFile(diamond_path("seed.txt"))  # type: ignore[no-untyped-call]
        return [DiamondLayer(self.layer - 1, 0), DiamondLayer(self.layer - 1, 1)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(diamond_path(f"layer_{self.layer:02d}_{self.column}.txt"))

    def run(self) -> None:
        text = "".join(_read(path) for path in _input_paths(self))
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]  # keeps every file small
        with self.output().temporary_path() as path, open(path, "w") as sink:
            sink.write(f"{self.layer}:{self.column}:{digest}\n")


class DiamondTop(TaskWithCheckingInputHash):
    """The single task on top of the diamond, requiring both tasks of its last layer."""

    def requires(self) -> List[DiamondLayer]:
        return [DiamondLayer(DIAMOND_LAYERS - 1, 0), DiamondLayer(DIAMOND_LAYERS - 1, 1)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(diamond_path("top.txt"))

    def run(self) -> None:
        text = "".join(_read(path) for path in _input_paths(self))
        with self.output().temporary_path() as path, open(path, "w") as sink:
            sink.write(text)
