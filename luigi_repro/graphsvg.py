"""The drawing of the HTML view: an inline SVG of the layered graph, nodes filled by status.

Data flows left to right when layers are short and numerous tasks share a layer, top to bottom
when the graph is a long chain: whichever fits a landscape window at the larger size. Each node is
a ``<g>`` carrying its task id (or family) and status as ``data-`` attributes, with a ``<title>``
that browsers show on hover.
"""

from __future__ import annotations

import html
import json
from typing import Dict, List, Sequence, Tuple, Union

import attrs

from luigi_repro.graphlayout import layered_layout
from luigi_repro.graphview import DagNode, FamilyGroup, status_style

__all__ = ["Box", "render_svg"]

Box = Union[DagNode, FamilyGroup]

_WIDTH, _MARGIN, _WAYPOINT = 232, 16, 12
_TASK_HEIGHT, _GROUP_HEIGHT = 56, 62
_CHARS = 34  # what fits on one line of a node at 12 px
_WINDOW = (1000, 640)  # the landscape window an orientation is chosen for


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fit(text: str, chars: int = _CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "\u2026"


def _title_lines(node: DagNode) -> Tuple[str, str]:
    """A node's two lines of text: its family (``raw input`` for a file without a record) and
    its parameters (or the file's location)."""
    label, family = node.label, node.family
    if node.task.kind == "raw":
        return "raw input", label
    if label.startswith(family + "(") and label.endswith(")"):
        return family, label[len(family) + 1 : -1] or "no parameters"
    return family, label


def _task_svg(node: DagNode, x: int, y: int) -> str:
    style = status_style(node.status, node.ok)
    count = len(node.task.reasons)
    detail = node.status + (f" \u00b7 {count} reason{'s' * (count > 1)}" if count else "")
    name, params = _title_lines(node)
    return (
        f'<g class="node task" id="{node.node_id}" tabindex="0" role="button"'
        f' data-task-id="{_attr(node.task_id)}" data-status="{_attr(node.status)}"'
        f' data-statuses="{_attr(node.status)}" data-family="{_attr(node.family)}"'
        f' data-kind="{_attr(node.task.kind)}" data-ok="{str(node.ok).lower()}">'
        f"<title>{html.escape(node.hover_text())}</title>"
        f'<rect class="box" x="{x}" y="{y}" width="{_WIDTH}" height="{_TASK_HEIGHT}" rx="7"'
        f' fill="{style.fill}" stroke="{style.stroke}"/>'
        f'<text class="family-name" x="{x + 10}" y="{y + 17}">{html.escape(_fit(name))}</text>'
        f'<text class="label" x="{x + 10}" y="{y + 32}">{html.escape(_fit(params, 36))}</text>'
        f'<text class="status" x="{x + 10}" y="{y + 48}" fill="{style.stroke}">'
        f"{html.escape(detail)}</text></g>"
    )


def _group_svg(group: FamilyGroup, x: int, y: int) -> str:
    counts = group.counts()
    style = status_style(group.status, group.ok)
    name = _fit(f"{group.family} \u00d7{len(group.members)}")
    ok_of = {member.status: member.ok for member in group.members}
    parts = [
        f'<g class="node family" id="{group.node_id}" tabindex="0" role="button"'
        f' data-family="{_attr(group.family)}" data-status="{_attr(group.status)}"'
        f' data-statuses="{_attr(" ".join(counts))}" data-count="{len(group.members)}"'
        f" data-counts='{_attr(json.dumps(counts))}' data-ok=\"{str(group.ok).lower()}\">",
        f"<title>{html.escape(group.hover_text())}</title>",
        f'<rect class="box" x="{x}" y="{y}" width="{_WIDTH}" height="{_GROUP_HEIGHT}" rx="7"'
        f' fill="{style.fill}" stroke="{style.stroke}"/>',
        f'<text class="family-name" x="{x + 10}" y="{y + 18}">{html.escape(name)}</text>',
    ]
    bar, left, total = _WIDTH - 20, float(x + 10), len(group.members)
    for status, count in counts.items():
        width = bar * count / total
        shade = status_style(status, ok_of[status])
        parts.append(
            f'<rect class="share" x="{left:.1f}" y="{y + 25}" width="{width:.1f}" height="9"'
            f' fill="{shade.stroke}" data-status="{_attr(status)}"><title>'
            f"{count} {html.escape(status)}</title></rect>"
        )
        left += width
    summary = " \u00b7 ".join(f"{count} {status}" for status, count in counts.items())
    parts.append(
        f'<text class="counts" x="{x + 10}" y="{y + 52}">{html.escape(_fit(summary, 34))}</text>'
    )
    return "".join(parts) + "</g>"


@attrs.frozen
class _Geometry:
    """Sizes in one orientation: ``vertical`` (data flows down) or not (data flows right)."""

    vertical: bool
    height: int  # of a node

    @property
    def layer_size(self) -> int:
        """A node's extent along the flow."""
        return self.height if self.vertical else _WIDTH

    @property
    def layer_pitch(self) -> int:
        return self.layer_size + (44 if self.vertical else 64)

    def size(self, node_id: str) -> int:
        """A node's extent across the flow (a waypoint's is the room an edge needs)."""
        if node_id.startswith("~"):
            return _WAYPOINT
        return _WIDTH if self.vertical else self.height

    @property
    def gap(self) -> int:
        return 24 if self.vertical else 14

    def row_length(self, row: Sequence[str]) -> int:
        return sum(self.size(node) for node in row) + self.gap * max(0, len(row) - 1)

    def extent(self, rows: Sequence[Sequence[str]]) -> Tuple[int, int]:
        """Width and height of the drawing of ``rows``."""
        along = (len(rows) - 1) * self.layer_pitch + self.layer_size if rows else 0
        across = max((self.row_length(row) for row in rows), default=0)
        return (across, along) if self.vertical else (along, across)

    def places(self, rows: Sequence[Sequence[str]]) -> Dict[str, Tuple[int, int]]:
        """The top left corner of each node and waypoint, each layer centred."""
        longest = max((self.row_length(row) for row in rows), default=0)
        where: Dict[str, Tuple[int, int]] = {}
        for layer, row in enumerate(rows):
            across = (longest - self.row_length(row)) // 2
            for node in row:
                along = layer * self.layer_pitch
                x, y = (across, along) if self.vertical else (along, across)
                where[node] = (_MARGIN + x, _MARGIN + y)
                across += self.size(node) + self.gap
        return where

    def ends(self, corner: Tuple[int, int], node_id: str) -> Tuple[Tuple[int, int], ...]:
        """Where edges enter and leave a node or waypoint."""
        x, y = corner
        half = self.size(node_id) // 2
        if self.vertical:
            return (x + half, y), (x + half, y + self.height)
        return (x, y + half), (x + _WIDTH, y + half)


def _curve(start: Tuple[int, int], end: Tuple[int, int], vertical: bool) -> str:
    if vertical:
        bend = max(16, abs(end[1] - start[1]) // 2)
        return f" C{start[0]},{start[1] + bend} {end[0]},{end[1] - bend} {end[0]},{end[1]}"
    bend = max(24, abs(end[0] - start[0]) // 2)
    return f" C{start[0] + bend},{start[1]} {end[0] - bend},{end[1]} {end[0]},{end[1]}"


def _edge_path(points: List[Tuple[int, int]], vertical: bool) -> str:
    """From the first point, a curve to each waypoint's entry, a line through it, and so on;
    the last point is pulled back a little so the arrow head ends on the border."""
    last = points[-1]
    points[-1] = (last[0], last[1] - 2) if vertical else (last[0] - 2, last[1])
    path = f"M{points[0][0]},{points[0][1]}"
    for index in range(1, len(points)):
        point = points[index]
        if index % 2:
            path += _curve(points[index - 1], point, vertical)
        else:
            path += f" L{point[0]},{point[1]}"
    return path


def render_svg(boxes: Sequence[Box], edges: Sequence[Tuple[str, str]]) -> str:
    """The ``<svg id="dag">`` of ``boxes`` (tasks or families) and the edges between them."""
    layout = layered_layout([box.node_id for box in boxes], edges)
    height = _GROUP_HEIGHT if any(isinstance(b, FamilyGroup) for b in boxes) else _TASK_HEIGHT
    shapes = [_Geometry(vertical, height) for vertical in (False, True)]
    geometry = min(
        shapes,
        key=lambda g: max(size / room for size, room in zip(g.extent(layout.rows), _WINDOW)),
    )
    width, tall = (size + 2 * _MARGIN for size in geometry.extent(layout.rows))
    where = geometry.places(layout.rows)
    ok = {box.node_id: box.ok for box in boxes}
    paths = []
    for upstream, downstream in edges:
        points = [geometry.ends(where[upstream], upstream)[1]]
        for waypoint in layout.routes.get((upstream, downstream), ()):
            points.extend(geometry.ends(where[waypoint], waypoint))
        points.append(geometry.ends(where[downstream], downstream)[0])
        paths.append(
            f'<path class="edge{"" if ok[upstream] else " bad"}" data-from="{upstream}" '
            f'data-to="{downstream}" d="{_edge_path(points, geometry.vertical)}" '
            'marker-end="url(#arrow)"/>'
        )
    drawn = [
        _task_svg(box, *where[box.node_id])
        if isinstance(box, DagNode)
        else _group_svg(box, *where[box.node_id])
        for box in boxes
    ]
    return (
        f'<svg id="dag" width="{width}" height="{tall}" viewBox="0 0 {width} {tall}" role="img" '
        f'aria-label="dependency graph" '
        f'data-orientation="{"down" if geometry.vertical else "right"}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        'markerHeight="8" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#7d8995"/></marker></defs>'
        f'<g class="edges">{"".join(paths)}</g><g class="nodes">{"".join(drawn)}</g></svg>'
    )
