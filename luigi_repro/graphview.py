"""A pipeline's dependency graph with each task's verdict, for ``luigi-repro dag``.

The graph is read off the very :class:`~luigi_repro.reportmodel.Report` that ``verify`` prints,
so a node's status and reasons are exactly verify's. Edges point the way data flows: from a task
to the tasks that require it. Large graphs can be folded into one node per task family.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Tuple

import attrs

from luigi_repro.printable import printable
from luigi_repro.reportmodel import RESTORABLE, Report, TaskReport
from luigi_repro.status import Reason

__all__ = [
    "DagGraph",
    "DagNode",
    "FamilyGroup",
    "StatusStyle",
    "family_groups",
    "graph_of",
    "reason_line",
    "status_style",
    "worst_status",
]


@attrs.frozen
class StatusStyle:
    """How a status is drawn: a light fill, a darker border (also its text colour)."""

    fill: str
    stroke: str


_GREEN = StatusStyle("#c8ecd4", "#1f7a3d")
#: A task that is not up to date, but whose run would restore its outputs from the run cache.
_RESTORABLE = StatusStyle("#c9eef0", "#0b6e79")
#: Every status a report can hold, problems first (the most severe first), then the good ones.
_STYLES: Dict[str, StatusStyle] = {
    "BAD_RECORD": StatusStyle("#f6c9f0", "#8a1c80"),
    "OUTPUT_MODIFIED": StatusStyle("#ffcfd6", "#b01f3a"),
    "MISSING": StatusStyle("#ffcfd6", "#b01f3a"),
    "MISSING_OUTPUT": StatusStyle("#dfe4ea", "#4f5d6b"),
    "NO_RECORD": StatusStyle("#e0dbf8", "#5643b5"),
    "STALE": StatusStyle("#ffdfad", "#b35900"),
    f"STALE ({RESTORABLE})": _RESTORABLE,
    "INCOMPLETE": StatusStyle("#fff1a8", "#8a6d00"),
    "UP_TO_DATE": _GREEN,
    "COMPLETE": _GREEN,
    "EXISTS": StatusStyle("#e2efe5", "#557a5f"),
}
_UNKNOWN_BAD = StatusStyle("#eeeeee", "#555555")
SEVERITY: Tuple[str, ...] = tuple(_STYLES)


def status_style(status: str, ok: bool) -> StatusStyle:
    """The style of ``status``; a status this version does not know is drawn by ``ok``, and
    any status a build would restore from the run cache as such."""
    if status.endswith(f"({RESTORABLE})"):
        return _RESTORABLE
    return _STYLES.get(status, _GREEN if ok else _UNKNOWN_BAD)


def worst_status(statuses: Mapping[str, int]) -> str:
    """The most severe of the statuses counted in ``statuses`` (unknown ones count as severe)."""
    present = [status for status, count in statuses.items() if count]
    unknown = sorted(s for s in present if s not in _STYLES)
    if unknown:
        return unknown[0]
    ranked = sorted(present, key=SEVERITY.index)
    return ranked[0] if ranked else "UP_TO_DATE"


def reason_line(reason: Reason) -> str:
    """A reason as one printable line, the way ``verify --format tsv`` writes it."""
    return printable(f"{reason.kind.value}: {reason.message}")


@attrs.frozen
class DagNode:
    """One task (or raw input) of the report, with an id that is safe in every format."""

    node_id: str
    task: TaskReport

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def status(self) -> str:
        """The status as ``verify`` shows it (``STALE (restorable from run cache)``)."""
        return self.task.shown_status

    @property
    def ok(self) -> bool:
        return self.task.ok

    @property
    def label(self) -> str:
        return printable(self.task.label or self.task.task_id)

    @property
    def family(self) -> str:
        return printable(self.task.family or self.task.kind)

    def hover_text(self) -> str:
        """The label, the status and every reason and note, one per line."""
        lines = [self.label, self.status]
        lines += [reason_line(reason) for reason in self.task.reasons]
        lines += [f"note: {reason_line(note)}" for note in self.task.notes]
        if self.task.restorable is not None:
            lines.append(printable(self.task.restorable.describe()))
        return "\n".join(lines)


@attrs.frozen
class DagGraph:
    """Every node of a report, in report order (roots first), and the edges between them."""

    report: Report
    nodes: Tuple[DagNode, ...]
    edges: Tuple[Tuple[str, str], ...]  # (upstream node_id, downstream node_id)

    def counts(self) -> Dict[str, int]:
        """How many nodes have each status, most severe first."""
        return _count(node.status for node in self.nodes)


def graph_of(report: Report) -> DagGraph:
    """The graph of ``report``: one node per task, one edge per requirement."""
    nodes = tuple(DagNode(f"n{index}", task) for index, task in enumerate(report.tasks.values()))
    ids = {node.task_id: node.node_id for node in nodes}
    edges: List[Tuple[str, str]] = []
    for node in nodes:
        for upstream in dict.fromkeys(node.task.upstream):
            if upstream in ids:
                edges.append((ids[upstream], node.node_id))
    return DagGraph(report, nodes, tuple(edges))


@attrs.frozen
class FamilyGroup:
    """All the tasks of one family, drawn as one node when the graph is too large to read."""

    node_id: str
    family: str
    members: Tuple[DagNode, ...]

    def counts(self) -> Dict[str, int]:
        return _count(member.status for member in self.members)

    @property
    def status(self) -> str:
        return worst_status(self.counts())

    @property
    def ok(self) -> bool:
        return all(member.ok for member in self.members)

    def hover_text(self) -> str:
        counts = ", ".join(f"{count} {status}" for status, count in self.counts().items())
        return f"{self.family}: {len(self.members)} tasks ({counts})"


def family_groups(graph: DagGraph) -> Tuple[Tuple[FamilyGroup, ...], Tuple[Tuple[str, str], ...]]:
    """The graph folded by family: one group per family (first reached first) and the edges
    between groups (a family requiring itself, as a daily task requiring the day before, adds
    no edge)."""
    members: Dict[str, List[DagNode]] = {}
    for node in graph.nodes:
        members.setdefault(node.family, []).append(node)
    groups = tuple(
        FamilyGroup(f"f{index}", family, tuple(nodes))
        for index, (family, nodes) in enumerate(members.items())
    )
    group_of = {member.node_id: group.node_id for group in groups for member in group.members}
    edges = {
        (group_of[upstream], group_of[downstream]): None
        for upstream, downstream in graph.edges
        if group_of[upstream] != group_of[downstream]
    }
    return groups, tuple(edges)


def _count(statuses: Iterable[str]) -> Dict[str, int]:
    found: Dict[str, int] = {}
    for status in statuses:
        found[status] = found.get(status, 0) + 1
    order = {status: index for index, status in enumerate(SEVERITY)}
    return dict(sorted(found.items(), key=lambda item: (order.get(item[0], -1), item[0])))
