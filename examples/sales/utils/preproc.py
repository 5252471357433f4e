"""Cleaning and encoding: read a CSV, write a CSV into the outcomes folder."""

from __future__ import annotations

import csv
import os
import statistics
from typing import Dict, List, Tuple

from utils import config

Row = Dict[str, str]


def read_csv(path: str) -> List[Row]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def write_csv(path: str, rows: List[Row], columns: List[str]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def fill_value(values: List[float], strategy: str) -> float:
    """What stands in for a missing number."""
    if strategy == "mean":
        return statistics.fmean(values)
    return statistics.median(values)


def impute_data(path: str, out_folder: str, strategy: str = "median") -> str:
    """Fill missing ages and salaries; returns the path written."""
    rows = read_csv(path)
    for column in ("age", "salary"):
        known = [float(row[column]) for row in rows if row[column]]
        filler = fill_value(known, strategy)
        for row in rows:
            if not row[column]:
                row[column] = f"{filler:g}"
    target = os.path.join(out_folder, stem(path) + "-imputed.csv")
    write_csv(target, rows, list(rows[0]))
    return target


def encode_data(path: str, out_folder: str) -> str:
    """One column per country, and the target as 0/1."""
    encoded = []
    for row in read_csv(path):
        out = {country: str(int(row["country"] == country)) for country in config.COUNTRIES}
        out.update(age=row["age"], salary=row["salary"])
        out[config.TARGET] = str(int(row[config.TARGET] == "yes"))
        encoded.append(out)
    target = os.path.join(out_folder, stem(path).replace("-imputed", "") + "-encoded.csv")
    write_csv(target, encoded, [*config.COUNTRIES, "age", "salary", config.TARGET])
    return target


def load_data(path: str, x_labels: List[str], y_labels: List[str]) -> Tuple[list, list]:
    rows = read_csv(path)
    x = [[float(row[name]) for name in x_labels] for row in rows]
    y = [float(row[y_labels[0]]) for row in rows]
    return x, y
