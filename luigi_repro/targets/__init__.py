"""The hashable target family: one contract (:mod:`.base`), one module per storage backend."""

from __future__ import annotations

from luigi_repro.targets.base import (
    FingerprintContext,
    HashableTarget,
    Observation,
    as_hashable,
    target_from_uri,
)
from luigi_repro.targets.local import HashableLocalTarget

__all__ = [
    "FingerprintContext",
    "HashableLocalTarget",
    "HashableTarget",
    "Observation",
    "as_hashable",
    "target_from_uri",
]
