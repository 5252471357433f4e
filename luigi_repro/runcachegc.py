"""The run cache's eviction policy: which entries, blobs and leftovers ``cache gc`` removes.

Planning is pure (a :class:`~luigi_repro.runcachesurvey.Survey` and the limits in, a
:class:`Plan` out), so the dry run lists exactly what ``--yes`` then removes:

1. unreadable entries (corrupt, truncated, not ours: a restore would discard them anyway);
2. entries not used for ``older_than`` seconds;
3. then, least recently used first, entries until the blobs still referenced fit in
   ``max_size`` bytes; an entry evicted on the way whose blobs all stay referenced by kept
   entries is kept after all (removing it would free nothing);
4. blobs no remaining entry names, unless younger than the grace period;
5. the local store's temporaries older than the grace period.

Removal (:func:`carry_out`) goes entries first, then blobs, and lists the store again first:
an entry used since the plan is kept (with its blobs), and a blob that changed since (stored
again by a run that is about to name it) is kept.
"""

from __future__ import annotations

import collections
from typing import Dict, List, Optional, Set, Tuple

import attrs

from luigi_repro.runcachestore import CacheStore, StoredItem
from luigi_repro.runcachesurvey import Survey, SurveyedEntry, remove_temporary

__all__ = ["GRACE_SECONDS", "Eviction", "Plan", "Removal", "carry_out", "plan_gc"]

#: A run stores its outputs' blobs first and writes the entry naming them last, so for a moment
#: (minutes for big outputs) a blob in the store is named by no entry yet. A blob younger than
#: this, and a temporary (a blob or entry being written), is never removed: an hour is far
#: longer than any store takes, and a blob that was really abandoned goes at the next gc.
GRACE_SECONDS = 3600.0


@attrs.frozen
class Eviction:
    """An entry to remove, and why."""

    entry: SurveyedEntry
    why: str


@attrs.frozen
class Removal:
    """What became of one planned removal: done, kept (in use since the plan) or failed."""

    kind: str
    name: str
    bytes: int
    why: str
    removed: bool
    error: Optional[str] = None


@attrs.frozen
class Plan:
    """What a gc removes, and what the cache holds after it."""

    evict: Tuple[Eviction, ...]
    blobs: Tuple[StoredItem, ...]
    temporaries: Tuple[StoredItem, ...]
    kept_entries: int
    young_blobs: Tuple[StoredItem, ...]
    bytes_before: int
    bytes_after: int
    referenced_after: int

    def listed(self) -> List[Removal]:
        """Every planned removal, none carried out (the dry run)."""
        return (
            [Removal("entry", e.entry.name, e.entry.size, e.why, False) for e in self.evict]
            + [Removal("blob", b.name, b.size, _UNREFERENCED, False) for b in self.blobs]
            + [Removal("temporary", t.name, t.size, _LEFT_OVER, False) for t in self.temporaries]
        )


_UNREFERENCED = "named by no entry"
_LEFT_OVER = "left over by a store that did not finish"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _fit(
    found: Survey, candidates: List[SurveyedEntry], max_size: int
) -> Tuple[List[SurveyedEntry], Dict[str, int]]:
    """Entries of ``candidates`` (least recently used first) to evict so that what the rest
    reference fits in ``max_size``, and the remaining references (digest -> entries)."""
    references = collections.Counter(d for entry in candidates for d in entry.blobs)
    referenced = sum(found.blob_size(digest) for digest in references)
    evicted: List[SurveyedEntry] = []
    for entry in candidates:
        if referenced <= max_size:
            break
        evicted.append(entry)
        for digest in entry.blobs:
            references[digest] -= 1
            if not references[digest]:
                del references[digest]
                referenced -= found.blob_size(digest)
    for entry in reversed(list(evicted)):  # free to keep: all its blobs stay anyway
        if all(digest in references for digest in entry.blobs):
            evicted.remove(entry)
            references.update(entry.blobs)
    return evicted, dict(references)


def plan_gc(
    found: Survey,
    *,
    max_size: Optional[int],
    older_than: Optional[float],
    now: float,
    grace: float = GRACE_SECONDS,
) -> Plan:
    """What to remove from the surveyed cache so it fits ``max_size`` bytes of blobs and holds
    no entry unused for ``older_than`` seconds (either may be None: no such limit)."""
    evict: List[Eviction] = []
    candidates: List[SurveyedEntry] = []
    for entry in sorted(found.entries, key=lambda e: (e.last_used, e.name)):
        if entry.problem is not None:
            evict.append(Eviction(entry, f"unreadable: {entry.problem}"))
        elif older_than is not None and entry.last_used < now - older_than:
            evict.append(Eviction(entry, f"not used for {_age(now - entry.last_used)}"))
        else:
            candidates.append(entry)
    if max_size is not None:
        evicted, references = _fit(found, candidates, max_size)
        evict += [Eviction(entry, "least recently used") for entry in evicted]
    else:
        references = dict(collections.Counter(d for e in candidates for d in e.blobs))
    unreferenced = [item for name, item in found.blobs.items() if name not in references]
    old_blobs = tuple(item for item in unreferenced if item.last_used < now - grace)
    young_blobs = tuple(item for item in unreferenced if item.last_used >= now - grace)
    before = sum(item.size for item in found.blobs.values())
    return Plan(
        evict=tuple(evict),
        blobs=old_blobs,
        temporaries=tuple(t for t in found.temporaries if t.last_used < now - grace),
        kept_entries=len(found.entries) - len(evict),
        young_blobs=young_blobs,
        bytes_before=before,
        bytes_after=before - sum(item.size for item in old_blobs),
        referenced_after=sum(found.blob_size(digest) for digest in references),
    )


def _entries_in_use(store: CacheStore, plan: Plan) -> Set[str]:
    """Planned evictions of readable entries used (touched) since the plan."""
    planned = {e.entry.name: e.entry.last_used for e in plan.evict if e.entry.problem is None}
    return {
        item.name
        for item in store.entries()
        if item.name in planned and item.last_used > planned[item.name]
    }


def carry_out(store: CacheStore, plan: Plan) -> List[Removal]:
    """Remove what ``plan`` lists from ``store``; every item's outcome, in plan order."""
    outcomes: List[Removal] = []
    in_use = _entries_in_use(store, plan)
    protected: Set[str] = set()
    for eviction in plan.evict:
        entry = eviction.entry
        if entry.name in in_use:
            protected.update(entry.blobs)
            outcomes.append(Removal("entry", entry.name, entry.size, "used since", False))
            continue
        try:
            store.remove_entry(entry.name)
            outcomes.append(Removal("entry", entry.name, entry.size, eviction.why, True))
        except Exception as exc:  # noqa: BLE001 - reported per item; the rest goes on
            outcomes.append(Removal("entry", entry.name, entry.size, eviction.why, False, str(exc)))
            protected.update(entry.blobs)
    current = {item.name: item.last_used for item in store.blobs()}
    for blob in plan.blobs:
        why = _UNREFERENCED
        if blob.name in protected:
            outcomes.append(Removal("blob", blob.name, blob.size, "its entry is kept", False))
            continue
        if current.get(blob.name, blob.last_used) != blob.last_used:
            outcomes.append(Removal("blob", blob.name, blob.size, "stored again since", False))
            continue
        try:
            store.remove_blob(blob.name)
            outcomes.append(Removal("blob", blob.name, blob.size, why, True))
        except Exception as exc:  # noqa: BLE001
            outcomes.append(Removal("blob", blob.name, blob.size, why, False, str(exc)))
    for temporary in plan.temporaries:
        why = _LEFT_OVER
        try:
            remove_temporary(store, temporary.name)
            outcomes.append(Removal("temporary", temporary.name, temporary.size, why, True))
        except Exception as exc:  # noqa: BLE001
            outcomes.append(
                Removal("temporary", temporary.name, temporary.size, why, False, str(exc))
            )
    return outcomes
