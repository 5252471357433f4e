"""The verdict on one task: a status and every reason for it, each with its evidence.

The status is derived from the reasons, never set on its own, so a report cannot say
``UP_TO_DATE`` while listing a blocking reason. Non-blocking observations (code changed under
``on_code_change = warn``, an input that can only be checked for existence…) are *notes*.
"""

from __future__ import annotations

import enum
from typing import Any, Dict, Mapping, Tuple

import attrs

__all__ = ["Reason", "ReasonKind", "Status", "TaskStatus", "status_from_reasons"]


class Status(enum.Enum):
    """The verdict; only ``UP_TO_DATE`` makes ``complete()`` true."""

    UP_TO_DATE = "UP_TO_DATE"
    MISSING_OUTPUT = "MISSING_OUTPUT"
    NO_RECORD = "NO_RECORD"
    BAD_RECORD = "BAD_RECORD"
    OUTPUT_MODIFIED = "OUTPUT_MODIFIED"
    STALE = "STALE"

    def __str__(self) -> str:
        return self.value


class ReasonKind(enum.Enum):
    """Why a task is not up to date (or, for notes, what is worth knowing)."""

    MISSING_OUTPUT = "MISSING_OUTPUT"
    NO_RECORD = "NO_RECORD"
    BAD_RECORD = "BAD_RECORD"
    OUTPUT_MODIFIED = "OUTPUT_MODIFIED"
    PARAMS_CHANGED = "PARAMS_CHANGED"
    CODE_CHANGED = "CODE_CHANGED"
    ENV_CHANGED = "ENV_CHANGED"
    INPUT_CHANGED = "INPUT_CHANGED"
    INPUTS_ADDED = "INPUTS_ADDED"
    INPUTS_REMOVED = "INPUTS_REMOVED"
    UPSTREAM_NOT_UP_TO_DATE = "UPSTREAM_NOT_UP_TO_DATE"
    DYNAMIC_DEPENDENCY_UNRESOLVED = "DYNAMIC_DEPENDENCY_UNRESOLVED"
    INPUT_UNVERIFIABLE = "INPUT_UNVERIFIABLE"
    #: A note: references in the task's code that the code fingerprint cannot follow.
    CODE_UNRESOLVED = "CODE_UNRESOLVED"
    CHECK_FAILED = "CHECK_FAILED"

    def __str__(self) -> str:
        return self.value


#: Which status a blocking reason implies; the most severe wins.
_STATUS_OF: Mapping[ReasonKind, Status] = {
    ReasonKind.MISSING_OUTPUT: Status.MISSING_OUTPUT,
    ReasonKind.NO_RECORD: Status.NO_RECORD,
    ReasonKind.BAD_RECORD: Status.BAD_RECORD,
    ReasonKind.OUTPUT_MODIFIED: Status.OUTPUT_MODIFIED,
}
_SEVERITY = (
    Status.MISSING_OUTPUT,
    Status.NO_RECORD,
    Status.BAD_RECORD,
    Status.OUTPUT_MODIFIED,
    Status.STALE,
    Status.UP_TO_DATE,
)


@attrs.frozen
class Reason:
    """One reason with its evidence (``old``/``new`` values, which input, which files…)."""

    kind: ReasonKind
    message: str
    evidence: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> Dict[str, Any]:
        return {"kind": self.kind.value, "message": self.message, "evidence": dict(self.evidence)}


def status_from_reasons(reasons: Tuple[Reason, ...]) -> Status:
    """The most severe status implied by ``reasons``; ``UP_TO_DATE`` when there are none."""
    found = {_STATUS_OF.get(reason.kind, Status.STALE) for reason in reasons}
    for status in _SEVERITY:
        if status in found:
            return status
    return Status.UP_TO_DATE


@attrs.frozen
class TaskStatus:
    """The verdict on one task.

    ``exhaustive`` says whether every reason was looked for (``verify``) or the check stopped at
    the first one (``complete()`` only needs to know whether there is any).
    """

    task_id: str
    family: str
    reasons: Tuple[Reason, ...] = ()
    notes: Tuple[Reason, ...] = ()
    upstream: Tuple[str, ...] = ()
    exhaustive: bool = True

    @property
    def status(self) -> Status:
        return status_from_reasons(self.reasons)

    @property
    def ok(self) -> bool:
        return not self.reasons

    def to_json(self) -> Dict[str, Any]:
        return {
            "task_id": self.task_id,
            "family": self.family,
            "status": self.status.value,
            "reasons": [reason.to_json() for reason in self.reasons],
            "notes": [note.to_json() for note in self.notes],
            "upstream": list(self.upstream),
        }
