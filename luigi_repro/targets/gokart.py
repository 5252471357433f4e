"""gokart's targets made hashable: what ``TaskOnKart.make_target()`` and friends return.

gokart writes through its own targets (``SingleFileTarget`` around a ``luigi.LocalTarget`` or an
``S3Target`` with gokart's own S3 client; ``ModelTarget`` around a zip archive), whatever the
file format its processor picks from the extension (pkl, txt, csv, tsv, gz, json, ini, npz,
parquet, feather, png…). luigi_repro fingerprints the bytes gokart wrote at the target's path
and keeps the record beside them (``<path>.repro.json``), so ``self.dump()`` and ``self.load()``
stay gokart's own and its parameter-hashed paths (``{name}_{unique_id}.pkl``) keep working.

gokart's in-memory targets have no bytes to fingerprint and cannot be outputs of a checked task.
Imported the first time a gokart target is seen, so gokart is never needed otherwise.
"""

from __future__ import annotations

from typing import Any, Optional

from gokart.target import SingleFileTarget, TargetOnKart

from luigi_repro.targets.base import HashableTarget, as_hashable, register_adapter
from luigi_repro.targets.local import HashableLocalTarget

__all__ = ["hashable_gokart_target"]

#: Where gokart keeps its bytes: a location with one of these prefixes is an object store.
_REMOTE_SCHEMES = ("s3://", "s3a://", "s3n://", "gs://")


def hashable_gokart_target(target: Any) -> Optional[HashableTarget]:
    """A hashable view of the file (or archive) behind a gokart target, or None."""
    if isinstance(target, SingleFileTarget):
        # The Luigi target gokart writes through (local, S3 with gokart's client, GCS).
        return as_hashable(target._target)
    if isinstance(target, TargetOnKart) and type(target).__module__ == "gokart.target":
        # ModelTarget and make_large_data_frame_target(): one zip archive at path().
        path = str(target.path())
        if path.startswith(_REMOTE_SCHEMES):
            return as_hashable(_remote_target(path))
        return HashableLocalTarget(path)
    return None


def _remote_target(path: str) -> Any:
    """The Luigi target gokart itself would make for an archive in an object store."""
    from gokart.object_storage import ObjectStorage
    from luigi.format import Nop

    return ObjectStorage.get_object_storage_target(path, Nop)


register_adapter("gokart", hashable_gokart_target, priority=5)
