"""The hashable target family: one contract (:mod:`.base`), one module per storage backend.

Backends with optional dependencies (S3, DataFrames), the mock and the object targets (JSON,
pickle) are imported on first use, so ``import luigi_repro`` never needs boto3, pandas or
pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from luigi_repro.targets.base import (
    FingerprintContext,
    HashableTarget,
    Observation,
    as_hashable,
    target_from_uri,
)
from luigi_repro.targets.directory import HashableDirectoryTarget
from luigi_repro.targets.filesystem import HashableFileSystemTarget
from luigi_repro.targets.local import HashableLocalTarget

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from luigi_repro.targets.dataframe import CsvTarget, FeatherTarget, ParquetTarget
    from luigi_repro.targets.mock import HashableMockTarget
    from luigi_repro.targets.objects import JsonTarget, PickleTarget
    from luigi_repro.targets.s3 import HashableS3Target

__all__ = [
    "CsvTarget",
    "FeatherTarget",
    "FingerprintContext",
    "HashableDirectoryTarget",
    "HashableFileSystemTarget",
    "HashableLocalTarget",
    "HashableMockTarget",
    "HashableS3Target",
    "HashableTarget",
    "JsonTarget",
    "Observation",
    "ParquetTarget",
    "PickleTarget",
    "as_hashable",
    "target_from_uri",
]

LAZY = {
    "CsvTarget": "luigi_repro.targets.dataframe",
    "FeatherTarget": "luigi_repro.targets.dataframe",
    "ParquetTarget": "luigi_repro.targets.dataframe",
    "HashableMockTarget": "luigi_repro.targets.mock",
    "HashableS3Target": "luigi_repro.targets.s3",
    "JsonTarget": "luigi_repro.targets.objects",
    "PickleTarget": "luigi_repro.targets.objects",
}


def __getattr__(name: str) -> Any:
    module = LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
