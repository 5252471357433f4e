"""The shape of an audit report: what ``luigi-repro verify`` prints, apart from how it was judged.

Kept free of Luigi so that a report remembered from an earlier audit can be rendered by a process
that never imports the pipeline machinery.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import attrs

from luigi_repro.fingerprint import Counters
from luigi_repro.status import Reason

__all__ = ["REPORT_SCHEMA", "Report", "TaskReport"]


#: Version of the JSON document printed by ``verify --format json`` (documented in the README).
REPORT_SCHEMA = 1


@attrs.frozen
class TaskReport:
    """One node of a report: a task (or, in a record-only audit, a recorded run or a raw file).

    ``kind`` is ``checked`` (judged by luigi_repro), ``plain`` / ``external`` / ``wrapper`` (judged
    by its own ``complete()``), ``recorded`` (record-only audit) or ``raw`` (an input without a
    record). ``status`` is a :class:`~luigi_repro.status.Status` value for checked and recorded
    nodes, and ``COMPLETE`` / ``INCOMPLETE`` (or ``EXISTS`` / ``MISSING``) for the others.
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

    def to_json(self) -> Dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "mode": self.mode,
            "ok": self.ok,
            "roots": list(self.roots),
            "notes": list(self.notes),
            "tasks": [task.to_json() for task in self.tasks.values()],
            "summary": {
                "tasks": len(self.tasks),
                "files_statted": self.counters.files_statted,
                "files_hashed": self.counters.files_hashed,
                "bytes_hashed": self.counters.bytes_hashed,
                "seconds": round(self.seconds, 3),
            },
        }
