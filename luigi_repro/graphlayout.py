"""A layered drawing of a directed graph, computed in Python so the HTML view needs no library.

Layers come from the longest path from the sources (data flows left to right); a source is then
pulled next to its first consumer, so a raw file read only at the end is not drawn far away.
Within a layer, nodes are ordered by the barycentre of their neighbours in a few sweeps up and
down, which removes most crossings. Cycles cannot occur between tasks, but can between task
families (a family requiring another that requires it): an edge that closes a cycle is ignored
for layering.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Set, Tuple

import attrs

__all__ = ["Layout", "layered_layout"]

_SWEEPS = 8


def _acyclic_edges(ids: Sequence[str], edges: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """``edges`` without those that close a cycle (back edges of a depth-first search)."""
    successors: Dict[str, List[str]] = {node: [] for node in ids}
    for upstream, downstream in edges:
        if upstream != downstream:
            successors[upstream].append(downstream)
    state: Dict[str, int] = {}  # 1 on the current path, 2 finished
    back: Set[Tuple[str, str]] = set()
    for start in ids:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(successors[start]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(successors[child])))
    return [edge for edge in edges if edge[0] != edge[1] and edge not in back]


def _layers(ids: Sequence[str], edges: Sequence[Tuple[str, str]]) -> Dict[str, int]:
    predecessors: Dict[str, List[str]] = {node: [] for node in ids}
    successors: Dict[str, List[str]] = {node: [] for node in ids}
    for upstream, downstream in edges:
        predecessors[downstream].append(upstream)
        successors[upstream].append(downstream)
    waiting = {node: len(predecessors[node]) for node in ids}
    ready = [node for node in ids if waiting[node] == 0]
    layer: Dict[str, int] = {}
    while ready:  # Kahn's order: every node after all its predecessors
        node = ready.pop()
        layer[node] = max((layer[p] + 1 for p in predecessors[node]), default=0)
        for child in successors[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    for node in ids:
        if not predecessors[node] and successors[node]:
            layer[node] = max(0, min(layer[child] for child in successors[node]) - 1)
    return layer


def _sweep(
    rows: List[List[str]], neighbours: Dict[str, List[str]], order: range
) -> List[List[str]]:
    """Reorder each row of ``order`` by the mean relative place of each node's neighbours."""
    place: Dict[str, float] = {}
    for row in rows:
        for index, node in enumerate(row):
            place[node] = (index + 0.5) / len(row)
    for row_index in order:
        row = rows[row_index]
        keys: Dict[str, float] = {}
        for node in row:
            known = [place[other] for other in neighbours[node]]
            keys[node] = sum(known) / len(known) if known else place[node]
        row.sort(key=lambda node: keys[node])
        for index, node in enumerate(row):
            place[node] = (index + 0.5) / len(row)
    return rows


@attrs.frozen
class Layout:
    """Where each node is drawn: ``rows`` holds each layer's nodes in drawing order, with a
    waypoint (an id starting with ``~``) wherever an edge crosses a layer; ``routes`` gives,
    for each edge that crosses layers, the waypoints it passes through."""

    rows: List[List[str]]
    routes: Dict[Tuple[str, str], List[str]]


def _with_waypoints(
    rows: List[List[str]], layer: Dict[str, int], edges: Sequence[Tuple[str, str]]
) -> Tuple[List[Tuple[str, str]], Dict[Tuple[str, str], List[str]]]:
    """Split each edge that spans several layers into a chain through waypoints, one per
    layer crossed, so that ordering keeps them clear of the nodes."""
    chained: List[Tuple[str, str]] = []
    routes: Dict[Tuple[str, str], List[str]] = {}
    for upstream, downstream in edges:
        previous, points = upstream, []
        for crossed in range(layer[upstream] + 1, layer[downstream]):
            point = f"~{sum(len(row) for row in rows)}"
            rows[crossed].append(point)
            layer[point] = crossed
            points.append(point)
            chained.append((previous, point))
            previous = point
        chained.append((previous, downstream))
        if points:
            routes[(upstream, downstream)] = points
    return chained, routes


def layered_layout(ids: Sequence[str], edges: Sequence[Tuple[str, str]]) -> Layout:
    """The layers of the drawing of ``ids`` (none may start with ``~``) and ``edges``."""
    if not ids:
        return Layout([], {})
    kept = _acyclic_edges(ids, edges)
    layer = _layers(ids, kept)
    rows: List[List[str]] = [[] for _ in range(max(layer.values()) + 1)]
    for node in ids:  # first reached first: roots and their inputs start near the top
        rows[layer[node]].append(node)
    chained, routes = _with_waypoints(rows, layer, kept)
    before: Dict[str, List[str]] = {node: [] for row in rows for node in row}
    after: Dict[str, List[str]] = {node: [] for row in rows for node in row}
    for upstream, downstream in chained:
        before[downstream].append(upstream)
        after[upstream].append(downstream)
    for sweep in range(_SWEEPS):
        if sweep % 2 == 0:
            rows = _sweep(rows, before, range(1, len(rows)))
        else:
            rows = _sweep(rows, after, range(len(rows) - 2, -1, -1))
    return Layout(rows, routes)
