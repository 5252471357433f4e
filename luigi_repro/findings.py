"""What the rules find about one task: its reasons and notes, and its own verdict."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import attrs
import luigi

from luigi_repro.record import Record
from luigi_repro.status import Reason

__all__ = ["Findings", "OwnVerdict", "is_checked_task"]


def is_checked_task(task: Any) -> bool:
    """Is ``task`` judged by luigi_repro's rules (a ``TaskWithCheckingInputHash``)?"""
    return bool(getattr(type(task), "_luigi_repro_checked", False))


@attrs.frozen
class OwnVerdict:
    """What a task's own state says, before its upstream tasks are looked at."""

    reasons: Tuple[Reason, ...]
    notes: Tuple[Reason, ...]
    record: Optional[Record]
    upstream: Tuple[luigi.Task, ...]


@attrs.define
class Findings:
    """Reasons and notes gathered about one task; ``done`` once a quick check has its answer."""

    exhaustive: bool
    reasons: List[Reason] = attrs.field(factory=list)
    notes: List[Reason] = attrs.field(factory=list)

    def add(self, reason: Reason) -> None:
        self.reasons.append(reason)

    def note(self, reason: Reason) -> None:
        self.notes.append(reason)

    @property
    def done(self) -> bool:
        """True when ``complete()`` already knows its answer (False) and may stop looking."""
        return bool(self.reasons) and not self.exhaustive
