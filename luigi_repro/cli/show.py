"""``luigi-repro show PATH``: where an output came from, from its record alone."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Sequence, Set, Tuple

from luigi_repro.audit import target_for_path
from luigi_repro.cli.common import UsageError, add_style_options
from luigi_repro.cli.render import Style, human_bytes
from luigi_repro.config import Settings, load_settings
from luigi_repro.errors import RecordError
from luigi_repro.fingerprint import short
from luigi_repro.printable import printable
from luigi_repro.record import Record, dump_record
from luigi_repro.recordgraph import Edge, inputs_of
from luigi_repro.status import Reason
from luigi_repro.targets.base import HashableTarget

__all__ = ["run"]


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="luigi-repro show",
        description="Show the provenance of one output: the task, its parameters, when, where, "
        "with which software and from which inputs (--lineage: the tree back to raw inputs).",
    )
    result.add_argument("path", help="an output (or its .repro.json record)")
    result.add_argument("--lineage", action="store_true", help="draw the tree down to raw inputs")
    result.add_argument("--format", choices=("tree", "json"), default="tree")
    add_style_options(result)
    return result


def _label(record: Record) -> str:
    return printable(record.task.label)


def _details(path: str, record: Record, style: Style) -> List[str]:
    """The readable view; every text from the record is escaped for the terminal."""
    run, task = record.run, record.task
    software = ", ".join(f"{k} {v}" for k, v in sorted(run.versions.items()))
    if run.packages:
        software += f" (+{len(run.packages)} packages)"
    made = f"{run.started} -> {run.ended} ({run.duration_s:.2f} s) on {run.host}, pid {run.pid}"
    if run.adopted:
        made += "  [adopted: recorded without a run]"
    if run.restored_from is not None:
        made += (
            f"  [restored from run cache: run {run.restored_from.get('run_id', '?')} on "
            f"{run.restored_from.get('host', '?')} at {run.restored_from.get('created', '?')}]"
        )
    code = short(task.code_fingerprint)
    if task.code_version:
        code += f"  (code_version {task.code_version})"
    where = f"{task.module}.{task.family}, id {task.task_id}"
    lines = [
        style.bold(printable(path)),
        f"  task      {_label(record)}  ({printable(where)})",
        f"  made      {printable(made)}",
        f"  software  {printable(software)}",
        f"  code      {printable(code)}",
        "  outputs",
    ]
    for entry in record.outputs:
        shown = f"{entry.uri}  {short(entry.fingerprint)}"
        lines.append(f"    {printable(shown)}  {human_bytes(entry.size)}")
    lines.append("  inputs" if record.inputs else "  inputs    none")
    for item in record.inputs:
        origin = f"  <- {item.task_id}" if item.task_id else ""
        kind = " (dynamic)" if item.dynamic else ""
        lines.append("    " + printable(f"{item.uri}  {short(item.fingerprint)}{kind}{origin}"))
    if record.signature:
        lines.append("  signed    " + printable(record.signature.split(":", 1)[0]))
    return lines


def _lineage(
    root: HashableTarget, settings: Settings
) -> Tuple[List[Tuple[int, str, str]], Dict[str, Any]]:
    """Walk records upstream: ``[(depth, files, label)]`` for the tree and a JSON description.

    Inputs that are outputs of one upstream run are drawn as one node listing its files.
    """
    lines: List[Tuple[int, str, str]] = []
    nodes: Dict[str, Any] = {}
    seen: Set[str] = set()
    stack: List[Tuple[int, HashableTarget, str]] = [(0, root, root.uri)]
    while stack:
        depth, target, files = stack.pop()
        try:
            record = target.read_record(settings)
        except RecordError as exc:
            lines.append((depth, files, printable(f"bad record: {exc.problem}")))
            nodes[target.uri] = {"uri": target.uri, "error": exc.problem, "inputs": []}
            continue
        if record is None:
            state = "raw input" if target.exists() else "missing"
            lines.append((depth, files, state))
            nodes[target.uri] = {"uri": target.uri, "raw": True, "exists": target.exists()}
            continue
        key = record.run.run_id
        if key in seen:
            lines.append((depth, files, _label(record) + " (shown above)"))
            continue
        seen.add(key)
        found = inputs_of(record, target)
        if isinstance(found, Reason):
            lines.append((depth, files, printable(f"bad record: {found.message}")))
            nodes[key] = {"uri": target.uri, "error": found.message, "inputs": []}
            continue
        lines.append((depth, files, _label(record)))
        nodes[key] = {
            "task_id": record.task.task_id,
            "label": _label(record),
            "outputs": [entry.uri for entry in record.outputs],
            "inputs": [edge.location for edge in found[1]],
        }
        # Where the inputs are from here: in a copied results folder, the copy's files.
        groups: Dict[str, List[Edge]] = {}
        for edge in found[1]:
            groups.setdefault(edge.entry.task_id or edge.location, []).append(edge)
        children: List[Tuple[int, HashableTarget, str]] = []
        for edges in groups.values():
            files_here = ", ".join(edge.location for edge in edges)
            child = edges[0].target
            if child is None:
                lines.append((depth + 1, files_here, printable(str(edges[0].unlocated))))
                continue
            children.append((depth + 1, child, files_here))
        stack.extend(reversed(children))
    return lines, nodes


def run(argv: Sequence[str]) -> int:
    options = parser().parse_args(list(argv))
    settings = load_settings()
    if "://" not in options.path and not os.path.lexists(options.path):
        raise UsageError(f"no such file: {options.path}")
    target = target_for_path(options.path, settings)
    if target is None:
        raise UsageError(f"{options.path} is not a location luigi_repro can read")
    try:
        record = target.read_record(settings)
    except RecordError as exc:
        print(printable(f"{exc} Nothing trustworthy can be shown."), file=sys.stderr)
        return 1
    if record is None:
        print(
            printable(
                f"{options.path} has no record ({target.record_location(settings)} does not "
                "exist): nothing vouches for where it came from."
            ),
            file=sys.stderr,
        )
        return 1
    style = Style(sys.stdout, options.color)
    lineage = _lineage(target, settings) if options.lineage else None
    if options.format == "json":
        document: Dict[str, Any] = {
            "schema": 1,
            "path": target.uri,
            "record": json.loads(dump_record(record)),
        }
        document["record"]["signature"] = record.signature
        if lineage is not None:
            document["lineage"] = list(lineage[1].values())
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for line in _details(options.path, record, style):
        print(line)
    if lineage is not None:
        print("  lineage")
        for depth, uri, label in lineage[0]:
            branch = ("   " * (depth - 1) + style.branch) if depth else ""
            print(f"    {branch}{style.bold(label)}  {style.dim(printable(uri))}")
    return 0
