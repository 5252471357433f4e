"""Would a task's run be a restore from the run cache? Asked by the run, and by ``verify``.

The run asks once it has its action key and an entry (:func:`foreign_output`: a restore never
replaces an output another family recorded). ``verify`` asks beforehand, read-only, for every
checked task that is not up to date (:func:`restorable_tasks`): the key is computed exactly as
the run computes it (:func:`~luigi_repro.runcachekey.action_key_of`, the same inputs), from the
inputs as they are now, except that an input made by an upstream task that will itself be
restored gets the fingerprint its entry gives that output. An upstream task that will really run
(or a plain one that is not complete) makes the key unknowable: its outputs will change.

Cost: one entry read per task not up to date whose key is known (none without a run cache);
inputs are fingerprinted by the audit's own judge, which has already seen them. Nothing in the
cache is removed or marked used.
"""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Set, Tuple

import luigi

from luigi_repro.config import Settings
from luigi_repro.dag import InputRef, flatten_with_keys, requirements_of, static_inputs
from luigi_repro.evidence import Missing
from luigi_repro.judge import Judge
from luigi_repro.record import Key, Record
from luigi_repro.reportmodel import RestoreSource, TaskReport
from luigi_repro.rules import is_checked_task
from luigi_repro.runcache import RunCache, cache_opt_out, open_run_cache
from luigi_repro.runcacheentry import Entry
from luigi_repro.runcachekey import InputSlot, action_key_of, input_slot
from luigi_repro.targets.base import HashableTarget, as_hashable

__all__ = ["foreign_output", "records_beside", "restorable_tasks"]


def records_beside(
    outputs: Iterable[Tuple[Key, HashableTarget]], settings: Settings
) -> Iterator[Tuple[str, Optional[Record]]]:
    """Each output's location and the record beside it now (None: none, or unreadable)."""
    for _, target in outputs:
        try:
            record = target.read_record(settings)
        except Exception:  # noqa: BLE001 - an unreadable record names no other task
            record = None
        yield target.uri, record


def foreign_output(
    task: luigi.Task, records: Iterable[Tuple[str, Optional[Record]]]
) -> Optional[str]:
    """Why ``task`` must not be restored: one of its outputs (location, record) is recorded as
    another family's. The same family with other parameters wrote the very slot the task
    writes, which is the task's to replace."""
    family = task.get_task_family()
    for uri, record in records:
        if record is not None and record.task.family != family:
            return (
                f"its output {uri} is recorded as {record.task.label}'s, which a restore must "
                "not replace."
            )
    return None


def restorable_tasks(judge: Judge, nodes: Mapping[str, TaskReport]) -> Dict[str, RestoreSource]:
    """The tasks of an audit (``nodes``, judged by ``judge``) that a build would restore from
    the run cache instead of running, with the entry each would be restored from."""
    cache = open_run_cache(judge.settings, judge.rules.signing_key)
    if cache is None:
        return {}
    planner = _Planner(judge, cache, nodes)
    for task_id, node in nodes.items():
        if node.kind == "checked" and not node.ok:
            planner.decide(task_id)
    return {
        task_id: RestoreSource(**entry.origin())
        for task_id, entry in planner.entries.items()
        if entry is not None
    }


class _Planner:
    def __init__(self, judge: Judge, cache: RunCache, nodes: Mapping[str, TaskReport]) -> None:
        self.judge = judge
        self.cache = cache
        self.nodes = nodes
        #: Decided tasks: the entry a build would restore, or None (it would run).
        self.entries: Dict[str, Optional[Entry]] = {}

    def _stale_checked(self, task_id: str) -> bool:
        node = self.nodes.get(task_id)
        return node is not None and node.kind == "checked" and not node.ok

    def decide(self, root: str) -> None:
        """Decide ``root`` and, first, every stale checked task its inputs come from (an
        explicit stack: a chain of thousands of tasks is no recursion)."""
        inputs: Dict[str, List[InputRef]] = {}
        deciding: Set[str] = set()
        stack = [root]
        while stack:
            task_id = stack[-1]
            if task_id in self.entries:
                stack.pop()
                continue
            task = self.judge.tasks.get(task_id)
            if task is None:  # not judged as a checked task: nothing to restore
                self.entries[task_id] = None
                stack.pop()
                continue
            if task_id not in inputs:
                inputs[task_id] = static_inputs(requirements_of(task))
                deciding.add(task_id)
                upstream = {ref.task.task_id for ref in inputs[task_id]}
                pending = [
                    upstream_id
                    for upstream_id in sorted(upstream)
                    if upstream_id not in self.entries
                    and upstream_id not in deciding
                    and self._stale_checked(upstream_id)
                ]
                if pending:
                    stack.extend(pending)
                    continue
            self.entries[task_id] = self._entry(task, inputs[task_id])
            deciding.discard(task_id)
            stack.pop()

    def _entry(self, task: luigi.Task, refs: List[InputRef]) -> Optional[Entry]:
        """The entry ``task``'s run would restore, or None when it would run (or cannot tell)."""
        if cache_opt_out(task) is not None:
            return None
        outputs: List[Tuple[Key, HashableTarget]] = []
        for key, target in flatten_with_keys(task.output()):
            hashable = as_hashable(target)
            if hashable is None or not hashable.supports_records:
                return None  # the run refuses such an output
            outputs.append((key, hashable))
        if not outputs:
            return None
        fingerprints: Dict[InputSlot, Optional[str]] = {}
        for ref in refs:
            fingerprint = self._fingerprint(ref)
            if fingerprint is None:
                return None
            fingerprints[input_slot(ref)] = fingerprint
        settings = self.judge.settings
        action = action_key_of(task, settings, self.judge.rules.signing_key, refs, fingerprints)
        if action is None:
            return None
        records = ((target.uri, self.judge.record_of(target)[0]) for _, target in outputs)
        if foreign_output(task, records) is not None:
            return None
        entry = self.cache.peek(action)
        if entry is None or not entry.has_outputs(key for key, _ in outputs):
            return None
        return entry

    def _fingerprint(self, ref: InputRef) -> Optional[str]:
        """The fingerprint input ``ref`` will have when the task runs, or None if unknowable."""
        upstream = self.nodes.get(ref.task.task_id)
        if upstream is None:
            return None
        if not upstream.ok:  # it runs first: only a restore says what its outputs will be
            entry = self.entries.get(ref.task.task_id)
            return None if entry is None else entry.fingerprint_of(ref.output_key)
        hashable = as_hashable(ref.target)
        if hashable is None:
            return None  # the run cannot fingerprint it either: no key
        outcome = self.judge.observe(hashable, recorded=is_checked_task(ref.task))
        return None if isinstance(outcome, Missing) else outcome.fingerprint
