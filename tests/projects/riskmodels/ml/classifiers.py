"""Two small classifiers and cross-validated predictions, in numpy (deterministic)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import numpy as np


class LogisticRegression:
    """L2-regularised logistic regression fitted by gradient descent."""

    def __init__(self, C: float = 1.0, max_iter: int = 100) -> None:
        self.C = float(C)
        self.max_iter = int(max_iter)

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogisticRegression:
        self.weights = np.zeros(X.shape[1])
        self.bias = 0.0
        for _ in range(self.max_iter):
            p = 1.0 / (1.0 + np.exp(-(X @ self.weights + self.bias)))
            gradient = X.T @ (p - y) / len(y) + self.weights / (self.C * len(y))
            self.weights -= 0.5 * gradient
            self.bias -= 0.5 * float(np.mean(p - y))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(X @ self.weights + self.bias)))


def _grow(X: np.ndarray, y: np.ndarray, depth: int, rng: np.random.Generator) -> Any:
    """One tree: a leaf (the positive rate) or (feature, threshold, left, right)."""
    if depth == 0 or len(y) < 4 or y.min() == y.max():
        return float(y.mean()) if len(y) else 0.5
    best: Tuple[float, int, float] = (np.inf, -1, 0.0)
    for feature in rng.choice(X.shape[1], size=max(1, X.shape[1] // 2), replace=False):
        threshold = float(np.median(X[:, feature]))
        left = X[:, feature] <= threshold
        if left.all() or not left.any():
            continue
        impurity = sum(part.var() * len(part) for part in (y[left], y[~left]))
        if impurity < best[0]:
            best = (impurity, int(feature), threshold)
    if best[1] < 0:
        return float(y.mean())
    _, feature, threshold = best
    left = X[:, feature] <= threshold
    return (
        feature,
        threshold,
        _grow(X[left], y[left], depth - 1, rng),
        _grow(X[~left], y[~left], depth - 1, rng),
    )


def _walk(tree: Any, row: np.ndarray) -> float:
    while isinstance(tree, tuple):
        feature, threshold, left, right = tree
        tree = left if row[feature] <= threshold else right
    return float(tree)


class RandomForestClassifier:
    """Bagged depth-limited trees on random halves of the features."""

    def __init__(self, max_depth: int = 3, n_estimators: int = 10, seed: int = 0) -> None:
        self.max_depth = int(max_depth)
        self.n_estimators = int(n_estimators)
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> RandomForestClassifier:
        rng = np.random.default_rng(self.seed)
        self.trees: List[Any] = []
        for _ in range(self.n_estimators):
            sample = rng.integers(0, len(y), size=len(y))
            self.trees.append(_grow(X[sample], y[sample], self.max_depth, rng))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.array([np.mean([_walk(tree, row) for tree in self.trees]) for row in X])


MODELS: Dict[str, Callable[..., Any]] = {
    "LR": LogisticRegression,
    "RF": RandomForestClassifier,
}


def cross_val_predict(make: Callable[[], Any], X: np.ndarray, y: np.ndarray, folds: int) -> Any:
    """Out-of-fold probabilities: each row predicted by a model that never saw it."""
    predicted = np.zeros(len(y))
    fold_of = np.arange(len(y)) % folds
    for fold in range(folds):
        held_out = fold_of == fold
        model = make().fit(X[~held_out], y[~held_out])
        predicted[held_out] = model.predict_proba(X[held_out])
    return predicted


def roc_auc(y: np.ndarray, predicted: np.ndarray) -> float:
    """The area under the ROC curve (ties count half)."""
    positives, negatives = predicted[y == 1], predicted[y == 0]
    if not len(positives) or not len(negatives):
        return 0.5
    wins = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((wins + 0.5 * ties) / (len(positives) * len(negatives)))
