"""Parameter spaces as the batch configuration writes them, and the grid they span."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any, Dict, List, Mapping

import numpy as np


def param_interpreter(space: Mapping[str, Any]) -> List[Any]:
    """The values of one parameter's space (``defined_list``, ``linspace``, ``logspace``...)."""
    kind = space["param_type"]
    if kind == "defined_list":
        return list(space["vals"])
    low, high, steps = space["min_val"], space["max_val"], int(space["steps"])
    if kind == "linspace":
        return [round(float(v), 6) for v in np.linspace(low, high, steps)]
    if kind == "linspace_int":
        return sorted({int(v) for v in np.linspace(low, high, steps)})
    if kind == "logspace":
        return [round(float(v), 6) for v in np.logspace(low, high, steps)]
    raise ValueError(f"unknown param_type {kind!r}")


def parameter_grid(
    spaces: Mapping[str, Mapping[str, Any]], fraction: float
) -> List[Dict[str, Any]]:
    """Every point of the grid (sorted names), or a seeded random sample of ``fraction``."""
    names = sorted(spaces)
    points = [
        dict(zip(names, values))
        for values in itertools.product(*(param_interpreter(spaces[n]) for n in names))
    ]
    if fraction >= 1.0:
        return points
    random.seed(42)
    return random.sample(points, math.ceil(len(points) * fraction))
