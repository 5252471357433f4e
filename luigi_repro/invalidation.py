"""Invalidation: force tasks to rerun by removing luigi_repro's records, never an output.

A checked task is complete only while its outputs carry records that still describe them; with
its records gone, ``verify`` reports ``NO_RECORD`` and the next build runs it again, exactly as
if it had never run (its outputs stay in place until the rerun replaces them). Chosen with
downstream, every task of the root's graph that requires a chosen task, directly or through
others, loses its records too; those tasks rerun as well, since a task without a record has
nothing to cut off against. Without downstream, the tasks below a rerun task are kept when the
rerun writes the same bytes again (early cutoff) and rerun otherwise.

Records are removed under the outputs' run locks, the ones a run holds from its first check to
its last write, so a run in progress is never left with half of its records: the removal waits
for it (up to ``lock_timeout``). The command line (``luigi-repro invalidate``) only parses and
prints.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Set

import attrs
import luigi

from luigi_repro.config import Settings, load_settings
from luigi_repro.dag import flatten_with_keys, requirements_of, upstream_first
from luigi_repro.errors import RecordError
from luigi_repro.locking import LockRequest, lock_backend
from luigi_repro.rules import is_checked_task
from luigi_repro.runtime import runtime
from luigi_repro.targets.base import HashableTarget, as_hashable

__all__ = ["Invalidation", "RecordToRemove", "invalidate", "plan", "select"]


class NoSuchTask(ValueError):
    """A task named to invalidate is not in the root task's graph, or cannot have records."""


@attrs.frozen
class RecordToRemove:
    """One record that exists now, beside one output of a chosen task."""

    task: luigi.Task
    target: HashableTarget
    location: str


@attrs.frozen
class Invalidation:
    """What :func:`invalidate` removes: the chosen checked tasks, upstream first, and the
    records they have now (a task that has none is already going to run)."""

    tasks: List[luigi.Task]
    records: List[RecordToRemove]

    @property
    def task_count(self) -> int:
        """How many tasks lose at least one record."""
        return len({record.task.task_id for record in self.records})


def _named(task: luigi.Task, name: str) -> bool:
    """Does ``name`` name ``task``: its family, its task id, or how it prints?"""
    return name in (task.get_task_family(), task.task_id, repr(task))


def _dependants(order: Sequence[luigi.Task]) -> Dict[str, Set[str]]:
    """For each task id, the ids of the tasks that require it directly."""
    found: Dict[str, Set[str]] = {task.task_id: set() for task in order}
    for task in order:
        for _, upstream in requirements_of(task):
            found.setdefault(upstream.task_id, set()).add(task.task_id)
    return found


def select(root: luigi.Task, names: Sequence[str], downstream: bool) -> List[luigi.Task]:
    """The tasks of ``root``'s graph to invalidate, upstream first.

    ``names`` picks tasks by family (every instance in the graph), task id or printed form;
    no names picks the root. With ``downstream``, every task that requires a picked one,
    directly or through others (wrappers included), is added; only ``requires()`` is followed,
    so a task that yields a picked one as a dynamic dependency must be named too. Raises
    :class:`NoSuchTask` when a name matches nothing.
    """
    order = upstream_first(root)
    if not names:
        picked = {root.task_id}
    else:
        picked = set()
        for name in names:
            matching = {task.task_id for task in order if _named(task, name)}
            if not matching:
                raise NoSuchTask(f"no task named {name!r} is in the graph of {root!r}")
            picked |= matching
    if downstream:
        dependants = _dependants(order)
        stack = list(picked)
        while stack:
            for later in dependants.get(stack.pop(), ()):
                if later not in picked:
                    picked.add(later)
                    stack.append(later)
    return [task for task in order if task.task_id in picked]


def _outputs(task: luigi.Task) -> List[HashableTarget]:
    found = []
    for _, target in flatten_with_keys(task.output()):
        hashable = as_hashable(target)
        if hashable is not None and hashable.supports_records:
            found.append(hashable)
    return found


def _has_record(target: HashableTarget, settings: Settings) -> bool:
    """Is something at the target's record location (an unusable record counts too)?"""
    try:
        return target.read_record_bytes(settings) is not None
    except RecordError:
        return True


def plan(root: luigi.Task, names: Sequence[str] = (), downstream: bool = False) -> Invalidation:
    """What invalidating ``names`` (see :func:`select`) in ``root``'s graph would remove.

    Tasks luigi_repro does not check (plain Luigi tasks, wrappers, external files) have no
    records and are left out; naming only such tasks without ``downstream`` is a
    :class:`NoSuchTask`, since nothing could make them rerun.
    """
    settings = load_settings()
    chosen = select(root, names, downstream)
    checked = [task for task in chosen if is_checked_task(task)]
    if not checked and not downstream:
        raise NoSuchTask(
            f"{chosen[0]!r} is not a luigi_repro task: it has no record to remove "
            "(--downstream invalidates the tasks that use it)"
        )
    records = [
        RecordToRemove(task, target, target.record_location(settings))
        for task in checked
        for target in _outputs(task)
        if _has_record(target, settings)
    ]
    return Invalidation(checked, records)


def invalidate(invalidation: Invalidation) -> int:
    """Remove the planned records, each task's under its outputs' run locks; how many were.

    Downstream tasks lose theirs first, so that at every moment a task without a record has
    no upstream task that lost its own before it. A record already gone is not counted.
    """
    settings = load_settings()
    store = runtime().records(settings)
    backend = lock_backend(settings.lock)
    by_task: Dict[str, List[RecordToRemove]] = {}
    for record in invalidation.records:
        by_task.setdefault(record.task.task_id, []).append(record)
    removed = 0
    for task in reversed(invalidation.tasks):
        records = by_task.get(task.task_id)
        if not records:
            continue
        requests = [LockRequest(target.uri, target.lock_name()) for target in _outputs(task)]
        with backend.hold(requests, settings.lock_timeout, task.task_id):
            for record in records:
                if _has_record(record.target, settings):
                    store.remove(record.target)
                    removed += 1
    return removed
