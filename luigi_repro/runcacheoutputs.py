"""Putting one output into the run cache and getting it back, by kind of target.

Local files and folders (every target built on ``HashableLocalTarget``: DataFrame and object
targets too) are kept as blobs of their bytes. A restore writes through the target's own
``temporary_path()``, so the output appears whole or not at all and a failed restore leaves the
previous output in place; its fingerprint is then taken as the target itself takes it and must
equal the entry's, or the restore is refused. S3 outputs are handled by
:mod:`luigi_repro.runcaches3outputs`, loaded once S3 targets are (an S3 output implies them).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import stat as stat_module
import sys
from typing import Callable, Dict, List, Optional, Tuple

from luigi_repro.fingerprint import algorithm_of
from luigi_repro.folderwalk import walk_directory
from luigi_repro.fsclock import fs_now_ns
from luigi_repro.record import OutputEntry
from luigi_repro.runcacheentry import BlobRef, CachedOutput
from luigi_repro.runcachestore import CacheStore
from luigi_repro.runtime import runtime
from luigi_repro.statstore import StatKey
from luigi_repro.targets.base import FingerprintContext, HashableTarget, Observation
from luigi_repro.targets.bookkeeping import is_bookkeeping
from luigi_repro.targets.directory import HashableDirectoryTarget
from luigi_repro.targets.local import HashableLocalTarget

__all__ = [
    "NotCacheable",
    "RestoreRefused",
    "capture_output",
    "register_output_kind",
    "restore_output",
]


class NotCacheable(Exception):
    """This output cannot be kept in the run cache (its kind, or what it holds)."""


class RestoreRefused(Exception):
    """A restored output is not what the entry says: discarded, the task runs instead."""


#: ``capture(store, target, recorded entry, algorithm)`` for one kind of target, or None.
Capture = Callable[[CacheStore, HashableTarget, OutputEntry, str], Optional[CachedOutput]]
#: ``restore(store, target, cached output, context, fsync)`` for one kind, or None.
Restore = Callable[
    [CacheStore, HashableTarget, CachedOutput, FingerprintContext, bool], Optional[Observation]
]
_kinds: Dict[str, Tuple[Capture, Restore]] = {}


def register_output_kind(name: str, capture: Capture, restore: Restore) -> None:
    """Teach the run cache another kind of output (the S3 backend registers itself)."""
    _kinds[name] = (capture, restore)


def _load_backends() -> None:
    """Register the S3 output kind once S3 targets exist (boto3 is then importable)."""
    if "luigi_repro.targets.s3" in sys.modules:
        importlib.import_module("luigi_repro.runcaches3outputs")


def capture_output(
    store: CacheStore, target: HashableTarget, recorded: OutputEntry, algorithm: str
) -> CachedOutput:
    """Keep ``target``'s content in ``store``; :class:`NotCacheable` when no kind can."""
    _load_backends()
    for capture, _ in _kinds.values():
        cached = capture(store, target, recorded, algorithm)
        if cached is not None:
            return cached
    raise NotCacheable(f"{type(target).__name__} outputs cannot be kept in the run cache")


def restore_output(
    store: CacheStore,
    target: HashableTarget,
    cached: CachedOutput,
    context: FingerprintContext,
    fsync: bool,
) -> Observation:
    """Write ``cached`` back as ``target``, verified; its observation for the record."""
    _load_backends()
    if cached.target != target.describe():
        raise RestoreRefused(
            f"the cached output was read as {cached.target or 'bytes'}, "
            f"{target.uri} as {target.describe() or 'bytes'}"
        )
    for _, restore in _kinds.values():
        observation = restore(store, target, cached, context, fsync)
        if observation is not None:
            if observation.fingerprint != cached.fingerprint:
                raise RestoreRefused(
                    f"{target.uri} restored as {observation.fingerprint}, "
                    f"not {cached.fingerprint} as the entry says"
                )
            return observation
    raise RestoreRefused(f"{type(target).__name__} outputs cannot be restored from the run cache")


# --- local files and folders -------------------------------------------------------------------


def _capture_local(
    store: CacheStore, target: HashableTarget, recorded: OutputEntry, algorithm: str
) -> Optional[CachedOutput]:
    if not isinstance(target, HashableLocalTarget):
        return None
    st = os.stat(target.path)
    common = {
        "key": recorded.key,
        "fingerprint": recorded.fingerprint,
        "size": recorded.size,
        "target": recorded.target,
    }
    if stat_module.S_ISREG(st.st_mode):
        # The raw bytes' fingerprint is the blob's name: a copy that differs is never stored.
        expected = (
            recorded.fingerprint
            if target.describe() is None and algorithm_of(recorded.fingerprint) == algorithm
            else None
        )
        blob = store.put_file(target.path, algorithm, expected)
        return CachedOutput(kind="file", blob=blob, **common)  # type: ignore[arg-type]
    if not stat_module.S_ISDIR(st.st_mode):
        raise NotCacheable(f"{target.uri} is neither a file nor a folder")
    files: Dict[str, BlobRef] = {}
    folders: List[str] = []
    suffix = runtime().records().suffix
    for rel, path, seen in walk_directory(
        target.path, lambda entry, siblings: is_bookkeeping(entry, suffix, siblings)
    ):
        if seen is not None:
            files[rel] = store.put_file(path, algorithm)
        elif os.path.isdir(path) and not os.path.islink(path):
            folders.append(rel.rstrip("/"))  # the walk names an empty folder "name/"
        else:
            raise NotCacheable(f"{path} in output {target.uri} is not a plain file or folder")
    return CachedOutput(
        kind="folder",
        files=files,
        folders=tuple(folders),
        **common,  # type: ignore[arg-type]
    )


def _restore_local(
    store: CacheStore,
    target: HashableTarget,
    cached: CachedOutput,
    context: FingerprintContext,
    fsync: bool,
) -> Optional[Observation]:
    if not isinstance(target, HashableLocalTarget):
        return None
    if cached.kind == "file" and cached.blob is not None:
        blob = cached.blob
        with target.temporary_path() as temporary:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)  # a target whose temporary_path() makes a file (gokart)
            store.get_file(blob, temporary, fsync and not _flushed_on_commit(target))
        if target.describe() is None and algorithm_of(blob.digest) == context.algorithm:
            # The bytes just verified are the content: no need to read them a third time.
            st = os.stat(target.path)
            state = {
                "kind": "file",
                "stat": StatKey.of(st).to_json(),
                "taken_at_ns": fs_now_ns(target.path, st.st_dev),
            }
            return Observation(blob.digest, blob.size, state)
        return target.observe(context, None)
    if cached.kind == "folder":
        if isinstance(target, HashableDirectoryTarget):
            making = target.temporary_path()
        else:
            making = HashableLocalTarget.temporary_path(target)
        with making as temporary:
            if not os.path.isdir(temporary):
                os.mkdir(temporary)
            for rel in cached.folders:
                os.makedirs(os.path.join(temporary, *rel.split("/")), exist_ok=True)
            for rel, blob in cached.files.items():
                path = os.path.join(temporary, *rel.split("/"))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                # Both temporary paths above flush the whole tree before moving it into place.
                store.get_file(blob, path, fsync and not _records_fsync())
        return target.observe(context, None)
    return None


def _records_fsync() -> bool:
    return runtime().records().fsync


def _flushed_on_commit(target: HashableLocalTarget) -> bool:
    """Whether ``target.temporary_path()`` flushes what it moves into place: luigi_repro's own
    do (with ``fsync`` on), so a restored copy is not flushed twice; an override may not."""
    own = (HashableLocalTarget.temporary_path, HashableDirectoryTarget.temporary_path)
    return type(target).temporary_path in own and _records_fsync()


register_output_kind("local", _capture_local, _restore_local)
