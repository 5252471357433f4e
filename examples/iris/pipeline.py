"""Iris: a small machine-learning pipeline made reproducible by luigi_repro.

raw CSV -> Clean -> Split -> Features -> Train -> Evaluate -> Report

Plain Python (csv, statistics) so that it runs wherever luigi_repro does; parameters flow
downstream with Luigi's own ``@requires`` / ``@inherits``. Compared with a plain Luigi pipeline
only two things changed: tasks inherit ``TaskWithCheckingInputHash`` and outputs are
``HashableLocalTarget``. Run it with::

    luigi --module pipeline Report --local-scheduler
    luigi-repro verify --module pipeline Report
"""

from __future__ import annotations

import csv
import json
import random
import statistics
from typing import Any, Dict, List, Tuple

import luigi
from luigi.util import inherits, requires

from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
Row = Dict[str, Any]


def read_rows(target: luigi.Target) -> List[Row]:
    with target.open("r") as stream:
        return list(csv.DictReader(stream))


def write_rows(target: luigi.Target, rows: List[Row], columns: List[str]) -> None:
    with target.open("w") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


class Clean(TaskWithCheckingInputHash):
    """Keep complete rows with numeric measurements; normalise species names."""

    source = luigi.Parameter(default="data/iris.csv", description="The raw CSV.")

    def requires(self) -> luigi.Task:
        return HashableExternalFile(self.source)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("results/clean.csv")

    def run(self) -> None:
        clean = []
        for row in read_rows(self.input()):
            try:
                values = {name: float(row[name]) for name in FEATURES}
            except (TypeError, ValueError, KeyError):
                continue  # a malformed row is dropped, not guessed
            species = (row.get("species") or "").strip().lower()
            if species:
                clean.append({**{k: f"{v:g}" for k, v in values.items()}, "species": species})
        write_rows(self.output(), clean, [*FEATURES, "species"])


@requires(Clean)
class Split(TaskWithCheckingInputHash):
    """A seeded, stratified train/test split."""

    test_fraction = luigi.FloatParameter(default=0.3)
    seed = luigi.IntParameter(default=7)

    def output(self) -> Dict[str, HashableLocalTarget]:
        return {
            "train": HashableLocalTarget("results/split/train.csv"),
            "test": HashableLocalTarget("results/split/test.csv"),
        }

    def run(self) -> None:
        rows = read_rows(self.input())
        rng = random.Random(self.seed)
        train, test = [], []
        for species in sorted({row["species"] for row in rows}):
            group = [row for row in rows if row["species"] == species]
            rng.shuffle(group)
            cut = round(len(group) * self.test_fraction)
            test.extend(group[:cut])
            train.extend(group[cut:])
        columns = [*FEATURES, "species"]
        write_rows(self.output()["train"], train, columns)
        write_rows(self.output()["test"], test, columns)


@requires(Split)
class Features(TaskWithCheckingInputHash):
    """Standardise every measurement with the training set's mean and deviation."""

    def output(self) -> Dict[str, HashableLocalTarget]:
        return {
            "train": HashableLocalTarget("results/features/train.csv"),
            "test": HashableLocalTarget("results/features/test.csv"),
            "scaler": HashableLocalTarget("results/features/scaler.json"),
        }

    def run(self) -> None:
        train = read_rows(self.input()["train"])
        test = read_rows(self.input()["test"])
        scaler = {
            name: (
                statistics.fmean(float(r[name]) for r in train),
                statistics.pstdev(float(r[name]) for r in train) or 1.0,
            )
            for name in FEATURES
        }

        def scale(rows: List[Row]) -> List[Row]:
            return [
                {
                    **{n: f"{(float(r[n]) - scaler[n][0]) / scaler[n][1]:.6f}" for n in FEATURES},
                    "species": r["species"],
                }
                for r in rows
            ]

        columns = [*FEATURES, "species"]
        write_rows(self.output()["train"], scale(train), columns)
        write_rows(self.output()["test"], scale(test), columns)
        with self.output()["scaler"].open("w") as stream:
            json.dump({n: {"mean": m, "std": s} for n, (m, s) in scaler.items()}, stream, indent=1)


def _vector(row: Row) -> List[float]:
    return [float(row[name]) for name in FEATURES]


def _distance(a: List[float], b: List[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b))


@requires(Features)
class Train(TaskWithCheckingInputHash):
    """Fit a nearest-centroid or k-nearest-neighbours classifier."""

    model = luigi.ChoiceParameter(choices=["centroid", "knn"], default="centroid")
    k = luigi.IntParameter(default=5, description="Neighbours for model=knn.")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("results/model.json")

    def run(self) -> None:
        train = read_rows(self.input()["train"])
        if self.model == "centroid":
            species = sorted({row["species"] for row in train})
            fitted: Dict[str, Any] = {
                "kind": "centroid",
                "centroids": {
                    s: [
                        statistics.fmean(v)
                        for v in zip(*(_vector(r) for r in train if r["species"] == s))
                    ]
                    for s in species
                },
            }
        else:
            fitted = {
                "kind": "knn",
                "k": self.k,
                "points": [[_vector(r), r["species"]] for r in train],
            }
        with self.output().open("w") as stream:
            json.dump(fitted, stream, indent=1)


def predict(model: Dict[str, Any], vector: List[float]) -> str:
    if model["kind"] == "centroid":
        centroids = model["centroids"]
        return str(min(sorted(centroids), key=lambda s: _distance(centroids[s], vector)))
    nearest = sorted(model["points"], key=lambda p: (_distance(p[0], vector), p[1]))
    votes: Dict[str, int] = {}
    for _, label in nearest[: model["k"]]:
        votes[label] = votes.get(label, 0) + 1
    return max(sorted(votes), key=lambda label: votes[label])


@inherits(Train)
class Evaluate(TaskWithCheckingInputHash):
    """Accuracy and confusion matrix on the held-out rows."""

    def requires(self) -> Dict[str, luigi.Task]:
        return {"model": self.clone(Train), "features": self.clone(Features)}

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("results/metrics.json")

    def run(self) -> None:
        with self.input()["model"].open("r") as stream:
            model = json.load(stream)
        test = read_rows(self.input()["features"]["test"])
        pairs: List[Tuple[str, str]] = [(r["species"], predict(model, _vector(r))) for r in test]
        labels = sorted({truth for truth, _ in pairs} | {guess for _, guess in pairs})
        confusion = {t: dict.fromkeys(labels, 0) for t in labels}
        for truth, guess in pairs:
            confusion[truth][guess] += 1
        correct = sum(1 for truth, guess in pairs if truth == guess)
        metrics = {
            "model": self.model,
            "test_rows": len(pairs),
            "accuracy": round(correct / len(pairs), 4) if pairs else None,
            "confusion": confusion,
        }
        with self.output().open("w") as stream:
            json.dump(metrics, stream, indent=1)


@inherits(Evaluate)
class Report(TaskWithCheckingInputHash):
    """A Markdown report of the data and the model's results."""

    def requires(self) -> Dict[str, luigi.Task]:
        return {"metrics": self.clone(Evaluate), "clean": self.clone(Clean)}

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("results/report.md")

    def run(self) -> None:
        rows = read_rows(self.input()["clean"])
        with self.input()["metrics"].open("r") as stream:
            metrics = json.load(stream)
        lines = [
            "# Iris classification",
            "",
            f"- rows after cleaning: {len(rows)}",
            f"- model: {metrics['model']}",
            f"- held-out rows: {metrics['test_rows']}",
            f"- accuracy: {metrics['accuracy']}",
            "",
            "| truth \\ predicted | " + " | ".join(metrics["confusion"]) + " |",
            "|---" * (len(metrics["confusion"]) + 1) + "|",
        ]
        for truth, row in metrics["confusion"].items():
            lines.append(f"| {truth} | " + " | ".join(str(n) for n in row.values()) + " |")
        with self.output().open("w") as stream:
            stream.write("\n".join(lines) + "\n")
