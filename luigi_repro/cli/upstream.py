"""Naming the tasks a verdict stands on, readably even when there are hundreds of them.

``UPSTREAM_NOT_UP_TO_DATE`` comes once per upstream task; a task reading 300 partitions would
otherwise list 300 labels on one line. They are grouped by family, and a long group shows its
first few labels, an ellipsis and the last: ``14 Data tasks: Data(i=0), …, Data(i=13) (STALE)``.
"""

from __future__ import annotations

import collections
from typing import Dict, List, Optional, Sequence, Tuple

from luigi_repro.reportmodel import Report, TaskReport
from luigi_repro.status import Reason, ReasonKind

__all__ = ["SHOWN_FIRST", "name_upstream", "upstream_summary"]

#: How many labels of a long group are shown before the ellipsis (the last one is always shown).
SHOWN_FIRST = 3


def _shortened(labels: Sequence[str], ellipsis: str) -> str:
    if len(labels) <= SHOWN_FIRST + 2:
        return ", ".join(labels)
    return ", ".join([*labels[:SHOWN_FIRST], ellipsis, labels[-1]])


def _statuses(statuses: Sequence[str]) -> str:
    counted = collections.Counter(statuses)
    if len(counted) == 1:
        return statuses[0]
    return ", ".join(f"{count} {status}" for status, count in counted.most_common())


def name_upstream(found: Sequence[Tuple[str, str, str]], ellipsis: str = "…") -> str:
    """``(family, label, status)`` of each upstream task, as one phrase grouped by family."""
    groups: Dict[str, List[Tuple[str, str]]] = {}
    for family, label, status in found:
        groups.setdefault(family, []).append((label, status))
    phrases = []
    for family, members in groups.items():
        labels = [label for label, _ in members]
        statuses = _statuses([status for _, status in members])
        if len(members) == 1:
            phrases.append(f"{labels[0]} ({statuses})")
            continue
        noun = "files" if not family else f"{family} tasks"
        phrases.append(f"{len(members)} {noun}: {_shortened(labels, ellipsis)} ({statuses})")
    return "; ".join(phrases)


def _described(report: Report, reason: Reason) -> Tuple[str, str, str]:
    task_id = str(reason.evidence.get("task_id", ""))
    task: Optional[TaskReport] = report.tasks.get(task_id)
    status = str(reason.evidence.get("status", "") or (task.status if task else "?"))
    if task is None:
        return "", task_id or reason.message, status
    return task.family, task.label, status


def upstream_summary(report: Report, task: TaskReport, ellipsis: str = "…") -> str:
    """The task's upstream reasons as one phrase; empty when it has none."""
    found = [
        _described(report, reason)
        for reason in task.reasons
        if reason.kind is ReasonKind.UPSTREAM_NOT_UP_TO_DATE
    ]
    return name_upstream(found, ellipsis) if found else ""
