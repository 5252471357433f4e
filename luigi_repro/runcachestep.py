"""The run cache's two steps in a task's run: find an entry to restore, and restore it.

Kept apart from the run protocol's ordering (locks, early cutoff, records) because both are
about the cache alone: which action this run is, whether the cache may stand in for it, and the
record of outputs that came from the cache instead of ``run()``.
"""

from __future__ import annotations

import os
import stat as stat_module
import time
from typing import Mapping, Optional, Sequence, Tuple

import attrs
import luigi

from luigi_repro.config import Settings
from luigi_repro.dag import InputRef
from luigi_repro.log import logger
from luigi_repro.record import Key, Record
from luigi_repro.runcache import RunCache, cache_opt_out, open_run_cache
from luigi_repro.runcacheentry import Entry
from luigi_repro.runcachekey import ActionKey, InputSlot, action_key
from luigi_repro.runcacheplan import foreign_output, records_beside
from luigi_repro.runrecord import RunTimes, build_record, now_iso
from luigi_repro.targets.base import FingerprintContext, HashableTarget, Observation
from luigi_repro.targets.local import HashableLocalTarget

__all__ = ["CacheStep", "find_in_cache", "restored_record", "unshare_outputs"]


@attrs.frozen
class CacheStep:
    """The run cache as one run sees it: the cache, this run's action key, and the entry that
    may restore it (None when the task must run)."""

    cache: Optional[RunCache] = None
    key: Optional[ActionKey] = None
    entry: Optional[Entry] = None


def find_in_cache(
    task: luigi.Task,
    settings: Settings,
    signing_key: Optional[bytes],
    outputs: Sequence[Tuple[Key, HashableTarget]],
    inputs: Sequence[InputRef],
    seen: Mapping[InputSlot, Optional[Observation]],
    rerun: bool,
) -> CacheStep:
    """This run's action key, and the cache's entry for it when one may be restored."""
    cache = open_run_cache(settings, signing_key)
    if cache is None or not outputs or cache_opt_out(task) is not None:
        return CacheStep()
    key = action_key(task, settings, signing_key, inputs, seen)
    if key is None or rerun:
        return CacheStep(cache, key)
    entry = cache.lookup(key)
    if entry is None:
        return CacheStep(cache, key)
    why = foreign_output(task, records_beside(outputs, settings))
    if why is not None:
        logger.warning("luigi_repro: %r is not restored from the run cache: %s", task, why)
        return CacheStep(cache, key)
    return CacheStep(cache, key, entry)


def restored_record(
    step: CacheStep,
    task: luigi.Task,
    settings: Settings,
    signing_key: Optional[bytes],
    outputs: Sequence[Tuple[Key, HashableTarget]],
    inputs: Sequence[InputRef],
    seen: Mapping[InputSlot, Optional[Observation]],
    context: FingerprintContext,
) -> Optional[Record]:
    """Restore ``step.entry``'s outputs; the record to write for them, or None when the task
    must run instead (the cache's copy could not be restored exactly)."""
    if step.cache is None or step.entry is None:
        return None
    started_at, started_clock = now_iso(), time.monotonic()
    restored = step.cache.restore(task, step.entry, outputs, context)
    if restored is None:
        return None
    record = build_record(
        task,
        settings,
        signing_key,
        inputs,
        seen,
        restored.outputs,
        RunTimes(started_at, started_clock, False),
    )
    return attrs.evolve(record, run=attrs.evolve(record.run, restored_from=restored.origin))


def unshare_outputs(outputs: Sequence[Tuple[Key, HashableTarget]], settings: Settings) -> None:
    """Before ``run()`` under ``run_cache_links``: unlink each local output file that shares its
    bytes with another name (a cache blob it was stored or restored as).

    A ``run()`` that writes its output in place (``df.to_csv(self.output().path)``) would
    otherwise write into the cached copy (or, for a read-only blob, fail). The bytes stay in the
    cache; the run writes a file of its own.
    """
    if not settings.run_cache_links:
        return
    for _, target in outputs:
        path = getattr(target, "path", None)
        if not isinstance(target, HashableLocalTarget) or not isinstance(path, str):
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat_module.S_ISREG(st.st_mode) and st.st_nlink > 1:
            os.unlink(path)
