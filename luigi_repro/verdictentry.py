"""What the verdict memory keeps about one task, and how much of it there may be.

See :mod:`luigi_repro.memory` for when an entry may be reused.
"""

from __future__ import annotations

from typing import Any, FrozenSet, Optional, Set, Tuple

import attrs

from luigi_repro.config import Settings
from luigi_repro.status import TaskStatus

__all__ = ["BUDGET_BYTES", "CAPACITY", "Counts", "Entry", "VerdictKey", "weight_of"]

#: (task id, class, settings, exhaustive, digest of the signing key)
VerdictKey = Tuple[str, type, Settings, bool, bytes]

#: How many tasks' verdicts one process remembers, and roughly how many bytes they may keep
#: alive (a folder input's manifest can make one entry weigh megabytes).
CAPACITY = 65536
BUDGET_BYTES = 256 << 20

#: Rough sizes behind :func:`weight_of`: an entry with its task's bookkeeping, and one item of
#: evidence (an observation, a record's input or output, a manifest line).
_ENTRY_BYTES = 4096
_ITEM_BYTES = 160


@attrs.define
class Counts:
    """How verdicts were reached, summed over a process's checks."""

    #: Own verdicts decided by the rules (nothing usable was remembered).
    decided: int = 0
    #: Own verdicts replayed by stat (their files could not be watched, or an event came).
    replayed: int = 0
    #: Own verdicts reused with nothing read (watched, and no event since).
    reused: int = 0
    #: Whole statuses reused without visiting the tasks upstream.
    statuses_reused: int = 0


@attrs.define(eq=False)
class Entry:
    """Everything remembered about one task."""

    key: VerdictKey
    #: (params, code, requirement ids, shape): a verdict only stands for the same task seen the
    #: same way.
    identity: Tuple[Any, ...]
    trace: Any
    verdict: Any
    #: Every change to the own evidence raises an event, and none has since it was decided.
    own_clean: bool
    paths: FrozenSet[str]
    status: Optional[TaskStatus] = None
    status_clean: bool = False
    upstream: Tuple[VerdictKey, ...] = ()
    status_paths: FrozenSet[str] = frozenset()
    runs: int = 0
    #: Roughly how many bytes the entry keeps alive (its trace's records and manifests).
    weight: int = 0
    dependents: Set[VerdictKey] = attrs.field(factory=set)
    #: A wrapper's task (its requirements are listed again before a status standing on it is
    #: trusted: a wrapper's ``requires()`` often lists a folder, which raises no event here).
    wrapper: Any = None
    #: The wrappers this status stands on, itself included.
    wrappers: FrozenSet[VerdictKey] = frozenset()


def weight_of(trace: Any) -> int:
    """Roughly the bytes a trace keeps alive."""
    items = len(trace.observations) + len(trace.existence)
    for _, record in trace.records:
        for entry in (*record.inputs, *record.outputs):
            items += 1 + (len(entry.manifest) if entry.manifest else 0)
    return _ENTRY_BYTES + _ITEM_BYTES * items
