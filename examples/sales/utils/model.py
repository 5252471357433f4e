"""A small logistic regression, trained by gradient descent (no dependency beyond Python)."""

from __future__ import annotations

import json
import math
import os
from typing import List

from utils import config


def standardize(x: List[List[float]]) -> List[List[float]]:
    columns = list(zip(*x))
    means = [sum(c) / len(c) for c in columns]
    spreads = [
        max(1e-9, math.sqrt(sum((v - m) ** 2 for v in c) / len(c))) for c, m in zip(columns, means)
    ]
    return [[(v - m) / s for v, m, s in zip(row, means, spreads)] for row in x]


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def predict(weights: List[float], row: List[float]) -> float:
    return sigmoid(weights[0] + sum(w * v for w, v in zip(weights[1:], row)))


def train_model(x: List[List[float]], y: List[float], out_folder: str) -> str:
    """Fit the weights, write them with the training accuracy; returns the path written."""
    x = standardize(x)
    weights = [0.0] * (len(x[0]) + 1)
    for _ in range(config.EPOCHS):
        gradient = [0.0] * len(weights)
        for row, label in zip(x, y):
            error = predict(weights, row) - label
            gradient[0] += error
            for i, value in enumerate(row):
                gradient[i + 1] += error * value
        weights = [w - config.LEARNING_RATE * g / len(x) for w, g in zip(weights, gradient)]
    hits = sum(int((predict(weights, row) > 0.5) == bool(label)) for row, label in zip(x, y))
    target = os.path.join(out_folder, "model.json")
    with open(target, "w") as stream:
        json.dump({"weights": [round(w, 6) for w in weights], "accuracy": hits / len(y)}, stream)
    return target
