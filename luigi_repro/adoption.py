"""Adoption: which outputs already on disk may be recorded as up to date without a run.

For projects that start using luigi_repro with results in place, or records written before the
code fingerprint covered helper code. Only tasks whose outputs all exist and that have no
(usable) record, or such an earlier record whose classes are unchanged, are adopted; a task whose
record shows a real change is left alone, since adopting it would hide that change. The command
line (``luigi-repro adopt``) only shows the plan and asks.
"""

from __future__ import annotations

from typing import List, Optional, Set, Tuple

import luigi

from luigi_repro.config import load_settings
from luigi_repro.dag import requirements_of, static_inputs, upstream_first
from luigi_repro.judge import Judge
from luigi_repro.protocol import RunProtocol
from luigi_repro.rules import is_checked_task
from luigi_repro.statcache import flush_stat_caches
from luigi_repro.status import Reason, ReasonKind
from luigi_repro.task import runs_dynamically

__all__ = ["adopt", "plan"]

_ADOPTABLE = {ReasonKind.NO_RECORD}


def _predates_closure(reason: Reason) -> bool:
    """CODE_CHANGED only because the record predates fingerprints that cover helper code."""
    evidence = reason.evidence
    return (
        reason.kind is ReasonKind.CODE_CHANGED
        and evidence.get("record_covers_helpers") is False
        and evidence.get("classes_unchanged") is True
        and evidence.get("old_version") == evidence.get("new_version")
    )


def _why_not(task: luigi.Task, judge: Judge, force: bool, blocked: Set[str]) -> Optional[str]:
    """Why ``task`` must not be adopted, or None when it may be."""
    if any(upstream.task_id in blocked for _, upstream in requirements_of(task)):
        return "a task it requires is not up to date, so it must run after that one"
    if runs_dynamically(type(task)):
        return "its run() yields dynamic dependencies, which only a run can know"
    for ref in static_inputs(requirements_of(task)):
        if not ref.target.exists():
            return f"its input {ref.label} does not exist"
    reasons = judge.own(task).reasons
    kinds = {reason.kind for reason in reasons}
    if not reasons:
        return "already recorded and up to date"
    if ReasonKind.MISSING_OUTPUT in kinds:
        return "an output is missing, so it must run"
    adoptable = _ADOPTABLE | ({ReasonKind.BAD_RECORD} if force else set())
    blocking = [r for r in reasons if r.kind not in adoptable and not _predates_closure(r)]
    if blocking:
        first = blocking[0]
        if first.kind is ReasonKind.BAD_RECORD:
            return f"{first.message} (--force adopts it anyway)"
        return f"its record shows a change ({first.message}); run it instead"
    return None


def plan(
    root: luigi.Task, force: bool = False
) -> Tuple[List[luigi.Task], List[Tuple[luigi.Task, str]]]:
    """``(tasks to adopt, [(task, why it is left alone)])``, upstream tasks first.

    A task is adopted only when all its outputs and inputs exist, it has no record (or, with
    ``force``, an unusable one; or one written before code fingerprints covered helper code,
    whose classes are unchanged), its run() is not dynamic, and everything it requires is up to
    date or adopted too.
    """
    judge = Judge(load_settings(), exhaustive=True)
    adopt: List[luigi.Task] = []
    skipped: List[Tuple[luigi.Task, str]] = []
    blocked: Set[str] = set()
    for task in upstream_first(root):
        if not is_checked_task(task):
            if not judge.plain_complete(task)[0]:
                blocked.add(task.task_id)
            continue
        why = _why_not(task, judge, force, blocked)
        if why is None:
            adopt.append(task)
            continue
        skipped.append((task, why))
        if why != "already recorded and up to date":
            blocked.add(task.task_id)
    flush_stat_caches()
    return adopt, skipped


def adopt(tasks: List[luigi.Task]) -> None:
    """Record each task's outputs as made from its current inputs (a :func:`plan`'s first list)."""
    for task in tasks:
        RunProtocol(task).adopt()
