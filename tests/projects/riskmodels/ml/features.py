"""Feature matrices from the raw exports: keys parsed from the id column, prefixed columns."""

from __future__ import annotations

import pandas as pd


def cuid_of(raw_id: str) -> int:
    """The customer id in a raw key such as ``EFH=1024071=20170918``."""
    return int(raw_id.split("=")[1])


def clean(raw: pd.DataFrame, id_column: int, prefix: str) -> pd.DataFrame:
    """The features of one export, indexed by customer id, columns named ``<prefix>_<n>``."""
    frame = raw.copy()
    frame["cuid"] = frame[id_column].map(cuid_of)
    frame = frame.set_index("cuid").drop(columns=[id_column])
    frame.columns = [f"{prefix}_{column}" for column in frame.columns]
    return frame


def scale(frame: pd.DataFrame, scaling: str) -> pd.DataFrame:
    """The features scaled as the feature-engineering variant says."""
    if scaling == "none":
        return frame
    if scaling == "standard":
        spread = frame.std(ddof=0).replace(0.0, 1.0)
        return (frame - frame.mean()) / spread
    if scaling == "rank":
        return frame.rank(pct=True)
    raise ValueError(f"unknown scaling {scaling!r}: use none, standard or rank")
