"""The ``tree`` format of ``verify``: the whole DAG drawn for people, or with ``--changed`` only
the tasks that are not up to date, each with its reasons, and how many there are of each kind.

Each task is drawn once; where the DAG reaches it again it says ``(shown above)``. A child with
more children after it is drawn with ``├─`` and a line down (``│``) to its siblings; the last
one with ``└─``.
"""

from __future__ import annotations

from typing import IO, Any, Iterator, List, Mapping, Set, Tuple

from luigi_repro.cli.style import Style, summary_line
from luigi_repro.cli.upstream import upstream_summary
from luigi_repro.printable import printable
from luigi_repro.reportmodel import RESTORABLE, Report, TaskReport
from luigi_repro.status import ReasonKind

__all__ = ["reason_counts_line", "render_tree"]


def _heading(task: TaskReport, style: Style) -> str:
    mark = style.good(style.ok_mark) if task.ok else style.bad(style.bad_mark)
    status = style.good(task.status) if task.ok else style.bad(task.status)
    if task.restorable is not None:
        status += " " + style.restorable(f"({RESTORABLE})")
    return f"{mark} {style.bold(printable(task.label))}  {status}"


def _file_changes(evidence: Mapping[str, Any]) -> Iterator[str]:
    for key in ("added", "removed", "changed"):
        for name in evidence.get(key) or ():
            yield f"{key}: {printable(str(name))}"


def _details(report: Report, task: TaskReport, style: Style) -> Iterator[str]:
    """The task's reasons (its upstream ones as one phrase) and notes, one per line."""
    for reason in task.reasons:
        if reason.kind is ReasonKind.UPSTREAM_NOT_UP_TO_DATE:
            continue
        yield f"{style.bad('-')} {reason.kind.value}: {printable(reason.message)}"
        for line in _file_changes(reason.evidence):
            yield f"    {line}"
    upstream = upstream_summary(report, task, style.ellipsis)
    if upstream:
        kind = ReasonKind.UPSTREAM_NOT_UP_TO_DATE.value
        yield f"{style.bad('-')} {kind}: {printable(upstream)}"
    for note in task.notes:
        yield f"{style.note('~')} {note.kind.value}: {printable(note.message)}"
    if task.restorable is not None:
        yield f"{style.restorable('~')} {printable(task.restorable.describe())}"


def _tree_lines(report: Report, style: Style) -> Iterator[str]:
    shown: Set[str] = set()
    # (task id, what precedes its own line, what precedes the lines below it)
    stack: List[Tuple[str, str, str]] = [(root, "", "") for root in reversed(report.roots)]
    while stack:
        task_id, lead, indent = stack.pop()
        task = report.tasks.get(task_id)
        if task is None:
            continue
        if task_id in shown:
            yield lead + style.dim(f"{printable(task.label)} (shown above)")
            continue
        shown.add(task_id)
        yield lead + _heading(task, style)
        children = [child for child in task.upstream if child in report.tasks]
        bar = indent + (style.pipe if children else "   ")
        for line in _details(report, task, style):
            yield bar + line
        last = len(children) - 1
        for index in range(last, -1, -1):
            if index == last:
                stack.append((children[index], indent + style.branch, indent + "   "))
            else:
                stack.append((children[index], indent + style.tee, indent + style.pipe))


def _changed_lines(report: Report, style: Style) -> Iterator[str]:
    for task in report.changed():
        yield _heading(task, style)
        for line in _details(report, task, style):
            yield "   " + line


def reason_counts_line(report: Report) -> str:
    """``by reason: 12 INPUT_CHANGED, 3 CODE_CHANGED, 40 UPSTREAM_NOT_UP_TO_DATE``."""
    counts = report.reason_counts()
    return "by reason: " + ", ".join(f"{count} {kind}" for kind, count in counts.items())


def render_tree(report: Report, stream: IO[str], style: Style, changed: bool = False) -> None:
    """The DAG as a tree; with ``changed``, only the tasks not up to date and a count by reason."""
    lines = _changed_lines(report, style) if changed else _tree_lines(report, style)
    for line in lines:
        stream.write(line + "\n")
    if changed and not report.ok:
        stream.write(style.bad(reason_counts_line(report)) + "\n")
    for note in report.notes:
        stream.write(style.note(f"note: {printable(str(note))}") + "\n")
    summary = summary_line(report)
    stream.write((style.good(summary) if report.ok else style.bad(summary)) + "\n")
