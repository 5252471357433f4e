"""The four panels of the cross-validation figure, written as tables into a report folder."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd


def roc_curve(y: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    order = np.argsort(-predicted, kind="stable")
    hits = y[order]
    tpr = np.concatenate([[0.0], np.cumsum(hits) / max(1, hits.sum())])
    fpr = np.concatenate([[0.0], np.cumsum(1 - hits) / max(1, (1 - hits).sum())])
    return pd.DataFrame({"fpr": fpr, "tpr": tpr})


def badrate_per_decile(y: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    deciles = np.minimum((predicted * 10).astype(int), 9)
    rates = [float(y[deciles == d].mean()) if (deciles == d).any() else 0.0 for d in range(10)]
    return pd.DataFrame({"decile": range(10), "badrate": rates})


def calibration_curve(y: np.ndarray, predicted: np.ndarray, bins: int = 10) -> pd.DataFrame:
    which = np.minimum((predicted * bins).astype(int), bins - 1)
    rows = [
        (float(predicted[which == b].mean()), float(y[which == b].mean()))
        for b in range(bins)
        if (which == b).any()
    ]
    return pd.DataFrame(rows, columns=["mean_predicted", "fraction_positive"])


def draw_cv_graph(y: np.ndarray, predicted: np.ndarray, folder: str) -> None:
    """ROC, bad rate per decile, histogram and calibration of ``predicted``, into ``folder``."""
    roc_curve(y, predicted).to_csv(os.path.join(folder, "roc.csv"), index=False)
    badrate_per_decile(y, predicted).to_csv(os.path.join(folder, "badrate.csv"), index=False)
    counts, edges = np.histogram(predicted[y == 1], bins=20, range=(0.0, 1.0))
    histogram = pd.DataFrame({"left": edges[:-1], "count": counts})
    histogram.to_csv(os.path.join(folder, "histogram.csv"), index=False)
    calibration_curve(y, predicted).to_csv(os.path.join(folder, "calibration.csv"), index=False)
