"""The run cache: never compute the same action twice, on one machine or across a team.

After a checked task runs and its records are written, its outputs are kept in the cache
(``[luigi_repro] run_cache``, a folder or ``s3://bucket/prefix``) under the task's action key
(:mod:`luigi_repro.runcachekey`). Before a later run of a task with the same key, after the early
cutoff found the records do not match, the outputs are restored from the cache instead of
running, verified against the entry, and recorded as a run would record them.

What is never cached: tasks with ``run_cache = False`` on their class (non-deterministic or huge
outputs), tasks whose ``run()`` yields dynamic dependencies (the key would not cover them), runs
that read files they did not declare, inputs that cannot be fingerprinted, and outputs of kinds
the cache cannot restore. A restore never replaces an output whose record names another task.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import attrs
import luigi

from luigi_repro.config import Settings
from luigi_repro.evidence import warn_once
from luigi_repro.log import logger
from luigi_repro.record import Key, OutputEntry, Record
from luigi_repro.runcacheentry import CachedOutput, Entry, EntryError, dump_entry, parse_entry
from luigi_repro.runcachekey import ActionKey
from luigi_repro.runcacheoutputs import (
    NotCacheable,
    RestoreRefused,
    capture_output,
    restore_output,
)
from luigi_repro.runcachestore import BlobCorrupt, CacheStore, LocalStore
from luigi_repro.runrecord import now_iso, output_entry
from luigi_repro.statcache import open_stat_cache
from luigi_repro.targets.base import FingerprintContext, HashableTarget

__all__ = ["RunCache", "cache_opt_out", "open_run_cache"]

_stores: Dict[Tuple[object, ...], CacheStore] = {}
_stores_lock = threading.Lock()


def open_store(settings: Settings) -> Optional[CacheStore]:
    """The store ``settings`` configure (one per process and configuration), or None."""
    location = settings.run_cache
    if location is None:
        return None
    key = (os.getpid(), location, settings.run_cache_links, settings.fsync,
           settings.stat_cache_path, settings.racy_window_ns)  # fmt: skip
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = _make_store(location, settings)
        return store


def _make_store(location: str, settings: Settings) -> CacheStore:
    cache = open_stat_cache(settings.stat_cache_path)
    if location.startswith("s3://"):
        from luigi_repro.runcaches3 import S3Store

        return S3Store(location, cache=cache, racy_window_ns=settings.racy_window_ns)
    return LocalStore(
        location,
        cache=cache,
        racy_window_ns=settings.racy_window_ns,
        links=settings.run_cache_links,
    )


def cache_opt_out(task: luigi.Task) -> Optional[str]:
    """Why ``task``'s runs are never cached, or None when they may be."""
    if getattr(type(task), "run_cache", True) is False:
        return f"{type(task).__name__}.run_cache = False"
    from luigi_repro.task import runs_dynamically

    if runs_dynamically(type(task)):
        return "its run() yields dynamic dependencies, which the action key cannot cover"
    return None


@attrs.frozen
class Restored:
    """What a restore wrote: the outputs' entries for the record, and the run they came from."""

    outputs: Tuple[OutputEntry, ...]
    origin: Dict[str, str]


class RunCache:
    """The run cache as one task's run uses it."""

    def __init__(self, store: CacheStore, settings: Settings, signing_key: Optional[bytes]):
        self.store = store
        self.settings = settings
        self.signing_key = signing_key

    def lookup(self, key: ActionKey) -> Optional[Entry]:
        """The usable entry of ``key``, or None. An unusable one is reported; a corrupt one is
        removed (the warning keeps the evidence), so the run that follows stores a good one."""
        entry, problem = self._read(key)
        if problem is not None:
            logger.warning(
                "luigi_repro: run cache entry %s is not used: %s; the task runs.", key, problem
            )
            if problem.removable:
                self._forget(key)
        return entry

    def peek(self, key: ActionKey) -> Optional[Entry]:
        """The entry :meth:`lookup` would give, read-only: nothing is removed or marked used
        (``verify`` asks what a build would do, and changes nothing)."""
        entry, problem = self._read(key)
        if problem is not None:
            logger.debug("luigi_repro: run cache entry %s would not be used: %s", key, problem)
        return entry

    def _read(self, key: ActionKey) -> Tuple[Optional[Entry], Optional[EntryError]]:
        """The entry of ``key`` if there is a usable one, else why the one there is not."""
        try:
            data = self.store.read_entry(key)
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be read is no cache
            warn_once(
                f"run-cache-read:{self.store.location}",
                "luigi_repro: the run cache %s cannot be read (%s); tasks run instead.",
                self.store.location,
                exc,
            )
            return None, None
        if data is None:
            return None, None
        try:
            entry = parse_entry(data, self.signing_key)
            if entry.action_key != key:
                raise EntryError("it is stored under another action key")
        except EntryError as exc:
            return None, exc
        return entry, None

    def _forget(self, key: str) -> None:
        try:
            self.store.remove_entry(key)
        except Exception as exc:  # noqa: BLE001
            logger.warning("luigi_repro: cannot remove run cache entry %s: %s", key, exc)

    def restore(
        self,
        task: luigi.Task,
        entry: Entry,
        outputs: Sequence[Tuple[Key, HashableTarget]],
        context: FingerprintContext,
    ) -> Optional[Restored]:
        """Write ``entry``'s outputs as ``task``'s, verified; None (with a warning) when one
        cannot be restored exactly: the task then runs."""
        cached = {output.key: output for output in entry.outputs}
        if not entry.has_outputs(key for key, _ in outputs):
            logger.warning(
                "luigi_repro: run cache entry %s has other outputs than %r; the task runs.",
                entry.action_key,
                task,
            )
            return None
        written: List[OutputEntry] = []
        for key, target in outputs:
            output = cached[key]
            try:
                observation = restore_output(
                    self.store, target, output, context, self.settings.fsync
                )
            except (BlobCorrupt, RestoreRefused) as exc:
                logger.warning(
                    "luigi_repro: %r: the run cache's copy of %s was discarded (%s); "
                    "the task runs.",
                    task,
                    target.uri,
                    exc,
                )
                self._forget(entry.action_key)
                return None
            except Exception as exc:  # noqa: BLE001 - a failed restore is a run, not a crash
                logger.warning(
                    "luigi_repro: %r: %s cannot be restored from the run cache (%s); "
                    "the task runs.",
                    task,
                    target.uri,
                    exc,
                )
                return None
            written.append(output_entry(key, target, observation))
        self.store_touch(entry.action_key)
        return Restored(tuple(written), entry.origin())

    def store_touch(self, key: str) -> None:
        """Mark the entry used (eviction goes least recently used first)."""
        try:
            self.store.touch_entry(key)
        except Exception as exc:  # noqa: BLE001
            logger.debug("luigi_repro: cannot mark run cache entry %s used: %s", key, exc)

    def keep(
        self,
        task: luigi.Task,
        key: ActionKey,
        record: Record,
        outputs: Sequence[Tuple[Key, HashableTarget]],
    ) -> bool:
        """Store the outputs ``record`` describes under ``key``; False (logged) if they
        cannot be kept. Never fails the run."""
        try:
            if self.store.read_entry(key) is not None:
                return True  # already there (an earlier run, or another worker just now)
            kept: List[CachedOutput] = []
            for output_key, target in outputs:
                recorded = record.output(output_key)
                if recorded is None:
                    return False
                kept.append(
                    capture_output(self.store, target, recorded, self.settings.hash_algorithm)
                )
            entry = Entry(
                action_key=key,
                family=record.task.family,
                task_id=record.task.task_id,
                params=record.task.params,
                code_fingerprint=record.task.code_fingerprint,
                algorithm=self.settings.hash_algorithm,
                outputs=tuple(kept),
                created=now_iso(),
                run_id=record.run.run_id,
                host=socket.gethostname(),
                duration_s=record.run.duration_s,
            )
            self.store.write_entry(key, dump_entry(entry, self.signing_key))
            logger.debug("luigi_repro: %r kept in the run cache as %s", task, key)
            return True
        except NotCacheable as exc:
            logger.info("luigi_repro: %r is not kept in the run cache: %s", task, exc)
        except Exception as exc:  # noqa: BLE001 - the run succeeded; the cache is optional
            logger.warning(
                "luigi_repro: %r could not be kept in the run cache %s: %s",
                task,
                self.store.location,
                exc,
            )
        return False


def open_run_cache(settings: Settings, signing_key: Optional[bytes]) -> Optional[RunCache]:
    """The run cache ``settings`` configure, or None when there is none."""
    store = open_store(settings)
    return None if store is None else RunCache(store, settings, signing_key)
