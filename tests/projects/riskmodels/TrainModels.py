"""Train and evaluate classifiers over hyperparameter grids, batch after batch.

Run with a batch configuration, as the project does::

    LUIGI_CONFIG_PATH=Batch_A.cfg luigi --module TrainModels RunAllBatches --local-scheduler

``train_input_exists`` -> ``Generate_merged_models`` (three feature matrices per training set)
-> ``NewClassifier`` (one per grid point: cross-validated predictions, a report folder)
-> ``NewBatch`` (the grid of one batch) -> ``RunAllBatches`` (every batch, and the leaderboard).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List

import luigi
import numpy as np
import pandas as pd
import settings
from ml.classifiers import MODELS, cross_val_predict, roc_auc
from ml.features import clean, scale
from ml.grid import parameter_grid
from ml.plots import draw_cv_graph

from luigi_repro import (
    HashableDirectoryTarget,
    HashableExternalTask,
    HashableLocalTarget,
    ParquetTarget,
    TaskWithCheckingInputHash,
    WrapperTask,
)

DATASETS = ("epf", "topics", "both")


def note_run(task: luigi.Task) -> None:
    """Leave a mark that ``run()`` was computed (restores and early cutoffs leave none)."""
    with open(settings.RUNS_LOG, "a") as runs:
        runs.write(f"{task}\n")


class train_input_exists(HashableExternalTask):
    """The three raw exports of one training set."""

    train_set = luigi.Parameter(default="train1")

    def output(self) -> List[HashableLocalTarget]:
        return [
            HashableLocalTarget(f"{settings.RAW_DATA}/{self.train_set}-{part}.tsv")
            for part in ("epf", "to-match", "topics")
        ]


class Generate_merged_models(TaskWithCheckingInputHash):
    """The feature matrices (epf, topics, both), each with the label column ``defs``."""

    train_set = luigi.Parameter(default="train1")
    scaling = luigi.Parameter(default="none")  # the feature-engineering variant

    def requires(self) -> luigi.Task:
        return train_input_exists(train_set=self.train_set)

    def output(self) -> List[ParquetTarget]:
        return [
            ParquetTarget(f"{settings.MATRICES}/{self.train_set}/Xy_{name}.parquet")
            for name in DATASETS
        ]

    def run(self) -> None:
        note_run(self)
        raw = f"{settings.RAW_DATA}/{self.train_set}"
        epf = clean(pd.read_csv(f"{raw}-epf.tsv", delimiter="\t", header=None), 0, "epffeat")
        topics = clean(pd.read_csv(f"{raw}-topics.tsv", delimiter=" ", header=None), 8, "topics")
        defs = pd.read_csv(f"{raw}-to-match.tsv", delimiter="\t").set_index("cuid")[["defs"]]
        epf, topics = scale(epf, self.scaling), scale(topics, self.scaling)
        both = epf.merge(topics, left_index=True, right_index=True)
        for frame, target in zip((epf, topics, both), self.output()):
            merged = frame.merge(defs, left_index=True, right_index=True).sort_index()
            target.dump(merged.reset_index(drop=True))


class NewClassifier(TaskWithCheckingInputHash):
    """One grid point: cross-validated predictions, their figure panels and the log row."""

    train_set = luigi.Parameter(default="train1")
    model_param = luigi.Parameter(default="both")  # epf, topics or both
    classifier_params = luigi.DictParameter(default={})
    model_type = luigi.Parameter()  # LR or RF

    def requires(self) -> luigi.Task:
        return Generate_merged_models(train_set=self.train_set)

    def output(self) -> HashableDirectoryTarget:
        point = "__".join(f"{k}-{v}" for k, v in sorted(self.classifier_params.items()))
        name = f"{self.model_type}__{point}__{self.model_param}"
        return HashableDirectoryTarget(f"{settings.MODELS}/{self.train_set}/{name}")

    def run(self) -> None:
        note_run(self)
        matrices = dict(zip(DATASETS, self.input()))
        Xy = matrices[self.model_param].load()
        y = Xy.pop("defs").to_numpy()
        X = Xy.fillna(0).to_numpy(dtype=float)
        params: Dict[str, Any] = dict(self.classifier_params)
        if self.model_type == "RF":
            params["seed"] = settings.SEED
        predicted = cross_val_predict(
            lambda: MODELS[self.model_type](**params), X, y, settings.CV_FOLDS
        )
        log = {
            **dict(self.classifier_params),
            "dataset": self.model_param,
            "model_type": self.model_type,
            "train_set": self.train_set,
            "ROC_AUC": round(roc_auc(y, predicted), 6),
        }
        with self.output().temporary_path() as folder:
            draw_cv_graph(y, np.round(predicted, 9), folder)
            with open(os.path.join(folder, "model.json"), "w") as sink:
                json.dump(log, sink, sort_keys=True)


class NewBatch(WrapperTask):
    """Every grid point (or a random fraction of them) of one model type on one data set."""

    train_set = luigi.Parameter(default="train1")
    model_type = luigi.Parameter()
    data_set = luigi.Parameter()
    parameter_spaces = luigi.DictParameter()
    randomsearch_fraction = luigi.FloatParameter(default=1.0)

    def requires(self) -> Iterator[NewClassifier]:
        for point in parameter_grid(self.parameter_spaces, self.randomsearch_fraction):
            yield NewClassifier(
                train_set=self.train_set,
                classifier_params=point,
                model_param=self.data_set,
                model_type=self.model_type,
            )


class RunAllBatches(TaskWithCheckingInputHash):
    """Every batch of the configuration on every training set, and the leaderboard of all."""

    batch_list = luigi.ListParameter()
    train_sets = luigi.ListParameter(default=["train1"])

    def requires(self) -> List[NewBatch]:
        return [
            NewBatch(
                train_set=train_set,
                model_type=batch["model_type"],
                data_set=batch["data_set"],
                parameter_spaces=batch["parameter_spaces"],
                randomsearch_fraction=batch.get("randomsearch_fraction", 1.0),
            )
            for train_set in self.train_sets
            for batch in self.batch_list
        ]

    def output(self) -> ParquetTarget:
        return ParquetTarget(f"{settings.MODELS}/logs.parquet")

    def run(self) -> None:
        note_run(self)
        rows = []
        for batch in self.requires():
            for classifier in batch.requires():
                with open(os.path.join(classifier.output().path, "model.json")) as source:
                    rows.append(json.load(source))
        board = pd.DataFrame(
            [{k: row[k] for k in ("train_set", "model_type", "dataset", "ROC_AUC")} for row in rows]
        )
        board["params"] = [
            json.dumps({k: v for k, v in row.items() if k not in board.columns}, sort_keys=True)
            for row in rows
        ]
        board = board.sort_values(["ROC_AUC", "params"], ascending=[False, True])
        self.output().dump(board.reset_index(drop=True))


if __name__ == "__main__":
    luigi.run()
