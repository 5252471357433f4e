"""A small gokart pipeline whose tasks are checked by luigi_repro.

``K12Raw`` is the raw CSV (a gokart external task: gokart's ``dump()`` needs every required
task's outputs to be gokart targets). ``K12Load`` dumps it as a DataFrame pickle under gokart's
parameter-hashed default path, ``K12Select`` keeps column ``a`` as CSV and ``K12Total`` sums it
into Parquet, each reading its upstream output through ``self.load()``. Every ``run()`` body
notes its task id in ``runs.log`` (see :func:`pipelines.log_run`).
"""

from __future__ import annotations

from typing import Any

import gokart
import luigi
import numpy as np
import pandas as pd
from pipelines import log_run

from luigi_repro import CheckingInputHashMixin


class K12Raw(gokart.TaskOnKart):
    """The raw CSV at ``path``, made outside the pipeline."""

    path = luigi.Parameter()
    complete_check_at_run = False
    run = None  # an external task: Luigi never runs it

    def output(self) -> Any:
        return self.make_target(self.path, use_unique_id=False)

    def complete(self) -> bool:
        return bool(self.output().exists())


class K12Load(CheckingInputHashMixin, gokart.TaskOnKart):
    """The raw CSV as a DataFrame, in gokart's default output (``K12Load_<unique id>.pkl``)."""

    source = luigi.Parameter()

    def requires(self) -> Any:
        return K12Raw(path=self.source)

    def run(self) -> None:
        log_run(self)
        self.dump(self.load())


class K12Select(CheckingInputHashMixin, gokart.TaskOnKart):
    """Column ``a`` only: editing column ``b`` reruns this task with equal output bytes."""

    source = luigi.Parameter()

    def requires(self) -> Any:
        return self.clone(K12Load)

    def output(self) -> Any:
        return self.make_target("select.csv")

    def run(self) -> None:
        log_run(self)
        frame = self.load()
        self.dump(frame[["a"]])


class K12Total(CheckingInputHashMixin, gokart.TaskOnKart):
    """The sum of column ``a``, as Parquet."""

    source = luigi.Parameter()

    def requires(self) -> Any:
        return self.clone(K12Select)

    def output(self) -> Any:
        return self.make_target("total.parquet")

    def run(self) -> None:
        log_run(self)
        frame = self.load()
        self.dump(pd.DataFrame({"total": [int(frame["a"].sum())]}))


def sample(extension: str) -> Any:
    """An object gokart's processor for ``extension`` can dump."""
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    if extension in ("txt", "ini", "gz"):
        return ["first line", "second line"]
    if extension == "npz":
        return np.arange(6).reshape(2, 3)
    if extension == "png":
        return b"\x89PNG\r\n\x1a\n" + bytes(range(32))
    return frame


class K12Format(CheckingInputHashMixin, gokart.TaskOnKart):
    """One output in the format gokart picks from ``extension``."""

    extension = luigi.Parameter()

    def output(self) -> Any:
        return self.make_target(f"formats/out.{self.extension}")

    def run(self) -> None:
        log_run(self)
        self.dump(sample(self.extension))


def _save_model(model: Any, path: str) -> None:
    pd.to_pickle(model, path)


class K12Model(CheckingInputHashMixin, gokart.TaskOnKart):
    """A model saved by a user function into gokart's zip archive (``make_model_target``)."""

    source = luigi.Parameter()

    def requires(self) -> Any:
        return self.clone(K12Load)

    def output(self) -> Any:
        return self.make_model_target(
            "model.zip", save_function=_save_model, load_function=pd.read_pickle
        )

    def run(self) -> None:
        log_run(self)
        frame = self.load()
        self.dump({"mean_a": float(frame["a"].mean())})


class K12Large(CheckingInputHashMixin, gokart.TaskOnKart):
    """A DataFrame split into pickles inside a zip (``make_large_data_frame_target``)."""

    source = luigi.Parameter()

    def requires(self) -> Any:
        return self.clone(K12Load)

    def output(self) -> Any:
        return self.make_large_data_frame_target("large.zip", max_byte=24)

    def run(self) -> None:
        log_run(self)
        self.dump(self.load())


class K12Join(CheckingInputHashMixin, gokart.TaskOnKart):
    """gokart's own wiring: upstream tasks as ``TaskInstanceParameter`` values."""

    left = gokart.TaskInstanceParameter()
    right = gokart.TaskInstanceParameter()

    def output(self) -> Any:
        return self.make_target("join.pkl")

    def run(self) -> None:
        log_run(self)
        self.dump(len(self.load("left")) + len(self.load("right")))
