"""The dependency graph as one self-contained HTML file: an SVG drawn here, a legend, a panel.

Everything is inline (style, script, data), so the file opens offline, from an e-mail or a CI
artefact. Nodes are filled by status; hovering one shows its reasons (an SVG ``<title>``),
clicking it lists them in the side panel. Past ``group_above`` tasks a node per task is no
longer readable, so the drawing has one node per task family, with its counts per status, and
the panel lists the family's tasks. Every node element carries ``data-task-id`` (or
``data-family``) and ``data-status``, and so does each task listed in a family, so a browser
test can find every task with its status in the page.
"""

from __future__ import annotations

import html
import json
from typing import Any, Dict, List, Sequence, Tuple

from luigi_repro.graphassets import SCRIPT, STYLE
from luigi_repro.graphsvg import Box, render_svg
from luigi_repro.graphtext import MARKER
from luigi_repro.graphview import (
    SEVERITY,
    DagGraph,
    FamilyGroup,
    family_groups,
    status_style,
)
from luigi_repro.printable import printable
from luigi_repro.status import Reason

__all__ = ["GROUP_ABOVE", "render_html"]

#: Above this many tasks the drawing shows one node per task family.
GROUP_ABOVE = 150


def _data(graph: DagGraph, groups: Sequence[FamilyGroup]) -> str:
    """What the panel shows, as JSON that cannot end the ``<script>`` element holding it."""
    rank = {status: index for index, status in enumerate(SEVERITY)}
    tasks: Dict[str, Any] = {}
    for node in graph.nodes:
        task = node.task
        tasks[task.task_id] = {
            "node": node.node_id,
            "label": node.label,
            "family": node.family,
            "kind": task.kind,
            "status": node.status,
            "ok": task.ok,
            "rank": rank.get(node.status, -1),
            "reasons": [_reason(reason) for reason in task.reasons],
            "notes": [_reason(note) for note in task.notes],
            "upstream": [u for u in dict.fromkeys(task.upstream) if u in graph.report.tasks],
            "outputs": [printable(uri) for uri in task.outputs],
        }
    document = {
        "tasks": tasks,
        "groups": {
            group.node_id: {
                "family": group.family,
                "members": [member.task_id for member in group.members],
            }
            for group in groups
        },
        "styles": {
            status: [status_style(status, False).fill, status_style(status, False).stroke]
            for status in ("", *SEVERITY)
        },
    }
    text = json.dumps(document, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _reason(reason: Reason) -> Dict[str, Any]:
    files = [
        printable(f"{word}: {name}")
        for word in ("added", "removed", "changed")
        for name in reason.evidence.get(word) or ()
    ]
    return {"kind": reason.kind.value, "message": printable(reason.message), "files": files}


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


def _legend(graph: DagGraph) -> str:
    items = []
    ok_of = {node.status: node.ok for node in graph.nodes}
    for status, count in graph.counts().items():
        style = status_style(status, ok_of[status])
        items.append(
            f'<li data-status="{_attr(status)}"><span class="swatch" style="background:'
            f'{style.fill};border-color:{style.stroke}"></span>{html.escape(status)} '
            f"({count})</li>"
        )
    return f'<ul class="legend" title="click to show one status">{"".join(items)}</ul>'


def _members(groups: Sequence[FamilyGroup]) -> str:
    """Each family's tasks with their status, in the page itself (hidden until asked for)."""
    lists = []
    for group in groups:
        items = "".join(
            f'<li data-task-id="{_attr(m.task_id)}" data-status="{_attr(m.status)}">'
            f"{html.escape(m.label)}: {html.escape(m.status)}</li>"
            for m in group.members
        )
        lists.append(f'<ul data-family="{_attr(group.family)}">{items}</ul>')
    return f'<div id="members" hidden>{"".join(lists)}</div>'


def render_html(graph: DagGraph, group_above: int = GROUP_ABOVE) -> str:
    """The page: header (summary, notes, legend), the drawing, the panel, inline data and code."""
    report = graph.report
    grouped = len(graph.nodes) > group_above
    groups: Tuple[FamilyGroup, ...] = ()
    boxes: List[Box] = list(graph.nodes)
    edges = graph.edges
    if grouped:
        groups, edges = family_groups(graph)
        boxes = list(groups)
    by_id = report.tasks
    roots = ", ".join(printable(by_id[r].label) for r in report.roots if r in by_id) or "nothing"
    bad = sum(1 for node in graph.nodes if not node.ok)
    state = "all up to date" if bad == 0 else f"{bad} not up to date"
    folded = f" \u00b7 one node per task family ({len(groups)} families)" if grouped else ""
    summary = f"{len(graph.nodes)} tasks ({state}) \u00b7 {report.mode} mode{folded}"
    notes = "".join(f'<p class="notes">note: {html.escape(printable(n))}</p>' for n in report.notes)
    hint = "Click a family to list its tasks" if grouped else "Click a task to see why"
    svg = render_svg(boxes, edges)
    return (
        f"<!DOCTYPE html>\n<!-- {MARKER} -->\n"
        f'<html lang="en" data-grouped="{str(grouped).lower()}" data-ok="{str(report.ok).lower()}">'
        f'<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>luigi-repro dag: {html.escape(roots)}</title><style>{STYLE}</style></head>"
        f"<body><header><h1>{html.escape(roots)}</h1>"
        f'<p class="summary">{html.escape(summary)}</p>{notes}{_legend(graph)}</header>'
        f'<main><div id="canvas">{svg}</div><aside id="panel"><p class="hint">{hint} '
        f"(hover for a summary).</p></aside></main>{_members(groups)}"
        f'<script type="application/json" id="dag-data">{_data(graph, groups)}</script>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )
