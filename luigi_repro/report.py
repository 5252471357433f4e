"""Audit reports: the verdict on every task of a pipeline, the API behind ``luigi-repro verify``.

:func:`verify` walks a whole DAG with one exhaustive judge (every reason, no short cut) and returns
a :class:`Report`; the command line only renders it. ``complete()`` asks the very same judge, so the
report and the scheduler can never disagree.
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence, Tuple

import attrs
import luigi

from luigi_repro.dag import flatten_with_keys, requirements_of
from luigi_repro.fingerprint import Counters
from luigi_repro.judge import Judge, judging
from luigi_repro.reportmodel import REPORT_SCHEMA, Report, TaskReport
from luigi_repro.rules import is_checked_task
from luigi_repro.runcacheplan import restorable_tasks
from luigi_repro.status import Reason, ReasonKind, TaskStatus
from luigi_repro.targets.base import as_hashable

__all__ = ["REPORT_SCHEMA", "Report", "TaskReport", "verify"]


def _kind(task: luigi.Task) -> str:
    if is_checked_task(task):
        return "checked"
    if isinstance(task, luigi.WrapperTask):
        return "wrapper"
    if isinstance(task, luigi.ExternalTask) or getattr(task, "run", None) is None:
        return "external"
    return "plain"


def _outputs(task: luigi.Task) -> Tuple[str, ...]:
    uris = []
    for _, target in flatten_with_keys(task.output()):
        hashable = as_hashable(target)
        uris.append(hashable.uri if hashable is not None else str(getattr(target, "path", target)))
    return tuple(uris)


def _checked_node(task: luigi.Task, verdict: TaskStatus) -> TaskReport:
    return TaskReport(
        task_id=task.task_id,
        family=task.get_task_family(),
        kind="checked",
        status=verdict.status.value,
        ok=verdict.ok,
        label=repr(task),
        reasons=verdict.reasons,
        notes=verdict.notes,
        upstream=verdict.upstream,
        outputs=_outputs(task),
    )


def _plain_node(task: luigi.Task, judge: Judge, upstream: Sequence[str]) -> TaskReport:
    ok, described = judge.plain_complete(task)
    reasons: Tuple[Reason, ...] = ()
    if not ok and described != "not complete":
        reasons = (Reason(ReasonKind.CHECK_FAILED, f"{task.task_id} is {described}"),)
    return TaskReport(
        task_id=task.task_id,
        family=task.get_task_family(),
        kind=_kind(task),
        status="COMPLETE" if ok else "INCOMPLETE",
        ok=ok,
        label=repr(task),
        reasons=reasons,
        upstream=tuple(upstream),
        outputs=_outputs(task),
    )


def _wrapper_reasons(wrapper: TaskReport, nodes: Dict[str, TaskReport]) -> Tuple[Reason, ...]:
    """Why a wrapper that is not complete is not: each wrapped task that is not, and its status
    (or, when all are, that its own ``complete()`` says no)."""
    blocked = [nodes[c] for c in wrapper.upstream if c in nodes and not nodes[c].ok]
    if not blocked:
        return (
            Reason(
                ReasonKind.CHECK_FAILED,
                f"complete() of {wrapper.label} is false though every task it wraps is complete",
            ),
        )
    return tuple(
        Reason(
            ReasonKind.UPSTREAM_NOT_UP_TO_DATE,
            f"wrapped task {task.label} is {task.status}",
            {"task_id": task.task_id, "status": task.status},
        )
        for task in blocked
    )


def _explain_wrappers(nodes: Dict[str, TaskReport]) -> None:
    """Give every incomplete wrapper its reasons once all it wraps is judged."""
    for task_id, node in list(nodes.items()):
        if node.kind == "wrapper" and not node.ok and not node.reasons:
            nodes[task_id] = attrs.evolve(node, reasons=_wrapper_reasons(node, nodes))


def verify(*tasks: luigi.Task, full: bool = False, counters: Optional[Counters] = None) -> Report:
    """Judge ``tasks`` and everything upstream of them; nothing runs, nothing is written.

    ``full`` ignores every cache and reads all content again. With a run cache, each task
    that is not up to date but whose run would restore its outputs from the cache says so
    (``restorable``; one entry read per such task, nothing in the cache changed).
    """
    started = time.perf_counter()
    with judging(exhaustive=True, full=full, fresh=True, counters=counters) as judge:
        nodes: Dict[str, TaskReport] = {}
        stack: List[luigi.Task] = list(reversed(tasks))
        while stack:
            task = stack.pop()
            if task.task_id in nodes:
                continue
            if is_checked_task(task):
                verdict = judge.status(task)
                node = _checked_node(task, verdict)
                children = [judge.tasks[task_id] for task_id in verdict.upstream]
            else:
                children = [t for _, t in requirements_of(task)]
                node = _plain_node(task, judge, [t.task_id for t in children])
            nodes[task.task_id] = node
            stack.extend(reversed([c for c in children if c.task_id not in nodes]))
        _explain_wrappers(nodes)
        for task_id, source in restorable_tasks(judge, nodes).items():
            nodes[task_id] = attrs.evolve(nodes[task_id], restorable=source)
        return Report(
            mode="tasks",
            roots=tuple(task.task_id for task in tasks),
            tasks=nodes,
            counters=judge.counters,
            seconds=time.perf_counter() - started,
        )
