"""The shape of an audit report: what ``luigi-repro verify`` prints, apart from how it was judged.

Kept free of Luigi so that a report remembered from an earlier audit can be rendered by a process
that never imports the pipeline machinery.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import attrs

from luigi_repro.fingerprint import Counters
from luigi_repro.status import Reason, ReasonKind

__all__ = ["REPORT_SCHEMA", "RESTORABLE", "Report", "RestoreSource", "TaskReport"]


#: Version of the JSON document printed by ``verify --format json`` (documented in the README).
REPORT_SCHEMA = 1


#: Added to the status of a task whose run would restore its outputs from the run cache.
RESTORABLE = "restorable from run cache"


@attrs.frozen
class RestoreSource:
    """The run cache entry a task's next run would restore instead of running, and its run."""

    action_key: str
    run_id: str
    host: str
    created: str

    def describe(self) -> str:
        """``restorable from run cache: run <id> on <host> (<created>), entry sha256:…``."""
        return (
            f"{RESTORABLE}: run {self.run_id} on {self.host} ({self.created}), "
            f"entry {self.action_key}"
        )

    def to_json(self) -> Dict[str, str]:
        return {
            "action_key": self.action_key,
            "run_id": self.run_id,
            "host": self.host,
            "created": self.created,
        }


@attrs.frozen
class TaskReport:
    """One node of a report: a task (or, in a record-only audit, a recorded run or a raw file).

    ``kind`` is ``checked`` (judged by luigi_repro), ``plain`` / ``external`` / ``wrapper`` (judged
    by its own ``complete()``), ``recorded`` (record-only audit) or ``raw`` (an input without a
    record). ``status`` is a :class:`~luigi_repro.status.Status` value for checked and recorded
    nodes, and ``COMPLETE`` / ``INCOMPLETE`` (or ``EXISTS`` / ``MISSING``) for the others.
    ``restorable`` names the run cache entry a build would restore the task from (task mode
    with a run cache only); the task is still not up to date.
    """

    task_id: str
    family: str
    kind: str
    status: str
    ok: bool
    label: str
    reasons: Tuple[Reason, ...] = ()
    notes: Tuple[Reason, ...] = ()
    upstream: Tuple[str, ...] = ()
    outputs: Tuple[str, ...] = ()
    restorable: Optional[RestoreSource] = None

    @property
    def shown_status(self) -> str:
        """The status as people read it: ``STALE (restorable from run cache)``."""
        return self.status if self.restorable is None else f"{self.status} ({RESTORABLE})"

    def to_json(self) -> Dict[str, Any]:
        return {
            "task_id": self.task_id,
            "family": self.family,
            "label": self.label,
            "kind": self.kind,
            "status": self.status,
            "ok": self.ok,
            "reasons": [reason.to_json() for reason in self.reasons],
            "notes": [note.to_json() for note in self.notes],
            "upstream": list(self.upstream),
            "outputs": list(self.outputs),
            "restorable": None if self.restorable is None else self.restorable.to_json(),
        }


@attrs.frozen
class Report:
    """Verdicts on every node reachable from ``roots``, in the order they were first reached."""

    mode: str
    roots: Tuple[str, ...]
    tasks: Mapping[str, TaskReport]
    counters: Counters
    seconds: float
    notes: Tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(task.ok for task in self.tasks.values())

    def changed(self) -> Tuple[TaskReport, ...]:
        """The tasks that are not up to date, in report order."""
        return tuple(task for task in self.tasks.values() if not task.ok)

    def restorable(self) -> int:
        """How many tasks a build would restore from the run cache instead of running."""
        return sum(1 for task in self.tasks.values() if task.restorable is not None)

    def reason_counts(self) -> Dict[str, int]:
        """How many tasks are not up to date for each kind of reason.

        A task counts once per kind it has (two changed inputs: one ``INPUT_CHANGED``); one not
        up to date without any reason (a plain task whose ``complete()`` is false) counts under
        its status. Kinds come in their declared order, ``UPSTREAM_NOT_UP_TO_DATE`` last: the
        others are where a change started.
        """
        found: Dict[str, int] = {}
        for task in self.changed():
            kinds = {reason.kind.value for reason in task.reasons} or {task.status}
            for kind in kinds:
                found[kind] = found.get(kind, 0) + 1
        order = [k.value for k in ReasonKind if k is not ReasonKind.UPSTREAM_NOT_UP_TO_DATE]
        order.append(ReasonKind.UPSTREAM_NOT_UP_TO_DATE.value)
        rank = {kind: index for index, kind in enumerate(order)}
        return dict(sorted(found.items(), key=lambda item: (rank.get(item[0], len(rank)), item)))

    def to_json(self, changed_only: bool = False) -> Dict[str, Any]:
        """The documented JSON document; ``changed_only`` lists only tasks not up to date."""
        shown = self.changed() if changed_only else tuple(self.tasks.values())
        return {
            "schema": REPORT_SCHEMA,
            "mode": self.mode,
            "ok": self.ok,
            "roots": list(self.roots),
            "notes": list(self.notes),
            "changed_only": changed_only,
            "tasks": [task.to_json() for task in shown],
            "reason_counts": self.reason_counts(),
            "summary": {
                "tasks": len(self.tasks),
                "not_up_to_date": len(self.changed()),
                "restorable": self.restorable(),
                "files_statted": self.counters.files_statted,
                "files_hashed": self.counters.files_hashed,
                "bytes_hashed": self.counters.bytes_hashed,
                "seconds": round(self.seconds, 3),
            },
        }
