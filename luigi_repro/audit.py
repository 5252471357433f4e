"""Record-only audits: check outputs from their records alone, without the pipeline's code.

``luigi-repro verify PATH…`` starts from output files, reads the record beside each, checks that
every output it lists still has the recorded fingerprint, that every input still has the
fingerprint it had when it was read, and follows each input that has a record of its own upstream.
Parameters and code cannot be checked without the code; the report says so.

Records name absolute locations. When a results folder was moved or copied elsewhere (to an
auditor's machine), locations are looked for first at the same place relative to the record being
read, so the audit checks the copy's own files.
"""

from __future__ import annotations

import os
import time
from typing import Dict, List, Optional, Sequence, Set, Tuple

import attrs

from luigi_repro.config import Settings, load_settings
from luigi_repro.fingerprint import Counters, short, usable_algorithm
from luigi_repro.judge import Judge, Missing, unresolved_code_note
from luigi_repro.record import OutputEntry, Record
from luigi_repro.report import Report, TaskReport
from luigi_repro.statcache import flush_stat_caches
from luigi_repro.status import Reason, ReasonKind, status_from_reasons
from luigi_repro.targets.base import HashableTarget, probe_exists, target_from_uri

__all__ = ["RECORD_ONLY_NOTE", "audit_paths", "target_for_path"]

RECORD_ONLY_NOTE = (
    "record-only audit: parameters and code are not checked (run verify with --module and a "
    "task to check them)"
)


def target_for_path(path: str, settings: Settings) -> Optional[HashableTarget]:
    """The target for an output path, a record path (``x.repro.json``) or a URL."""
    location = (
        path[: -len(settings.record_suffix)] if path.endswith(settings.record_suffix) else path
    )
    if "://" not in location:
        location = os.path.abspath(location)
    return target_from_uri(location)


@attrs.define
class _Node:
    target: HashableTarget
    node_id: str
    record: Optional[Record]
    reasons: List[Reason] = attrs.field(factory=list)
    upstream: List[str] = attrs.field(factory=list)
    #: Inputs still to visit: (label, target, whether its producer keeps records).
    pending: Optional[List[Tuple[str, HashableTarget, bool]]] = None


def _own_entry(record: Record, target: HashableTarget) -> Optional[OutputEntry]:
    """The record's entry for ``target``: same location, or the same name after a move."""
    own = next((e for e in record.outputs if e.uri == target.uri), None)
    if own is None:
        name = os.path.basename(target.uri)
        own = next((e for e in record.outputs if os.path.basename(e.uri) == name), None)
    return own


class _Auditor:
    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.settings = judge.settings
        self.nodes: Dict[str, TaskReport] = {}
        self.active: Set[str] = set()

    def node_id(self, target: HashableTarget) -> str:
        """One node per recorded run *at one place*: a copy of the results is another node."""
        record, error = self.judge.record_of(target)
        if record is not None:
            own = _own_entry(record, target)
            if own is None or own.uri == target.uri or "://" in target.uri:
                return record.task.task_id
            moved = os.path.relpath(os.path.dirname(target.uri), os.path.dirname(own.uri))
            return f"{record.task.task_id}@{moved}"
        return ("bad-record:" if error is not None else "file:") + target.uri

    def visit(self, root: HashableTarget, is_root: bool) -> str:
        root_id = self.node_id(root)
        if root_id in self.nodes:
            return root_id
        stack: List[_Node] = [self._open(root, root_id, is_root, expect_record=is_root)]
        while stack:
            node = stack[-1]
            assert node.pending is not None
            child = None
            while node.pending:
                label, target, expect_record = node.pending[-1]
                child_id = self.node_id(target)
                if child_id not in self.nodes:
                    if child_id in self.active:
                        node.reasons.append(
                            Reason(
                                ReasonKind.BAD_RECORD,
                                f"the records form a cycle through {target.uri}",
                                {"uri": target.uri, "problem": "cycle"},
                            )
                        )
                        node.pending.pop()
                        continue
                    child = self._open(target, child_id, False, expect_record)
                    break
                node.pending.pop()
                if child_id in node.upstream:
                    continue  # another output of the same upstream run: judged once
                node.upstream.append(child_id)
                verdict = self.nodes[child_id]
                if not verdict.ok:
                    node.reasons.append(
                        Reason(
                            ReasonKind.UPSTREAM_NOT_UP_TO_DATE,
                            f"upstream {verdict.label} is {verdict.status}",
                            {"task_id": child_id, "status": verdict.status, "input": label},
                        )
                    )
            if child is not None:
                stack.append(child)
                continue
            self._close(node)
            stack.pop()
        return root_id

    def _open(
        self, target: HashableTarget, node_id: str, is_root: bool, expect_record: bool
    ) -> _Node:
        self.active.add(node_id)
        record, error = self.judge.record_of(target)
        node = _Node(target, node_id, record, pending=[])
        if error is not None:
            node.reasons.append(
                Reason(ReasonKind.BAD_RECORD, str(error), {"record": error.location})
            )
        elif record is None:
            exists, problem = probe_exists(target)
            if not exists:
                node.reasons.append(
                    Reason(
                        ReasonKind.MISSING_OUTPUT if is_root else ReasonKind.INPUT_CHANGED,
                        f"{target.uri} {problem or 'does not exist'}",
                        {"uri": target.uri},
                    )
                )
            elif expect_record:
                why = (
                    "has no record to audit"
                    if is_root
                    else "has no record, though the task that makes it keeps one (a run that "
                    "did not finish?)"
                )
                node.reasons.append(
                    Reason(
                        ReasonKind.NO_RECORD,
                        f"{target.uri} {why}",
                        {"uri": target.uri, "record": target.record_location(self.settings)},
                    )
                )
        else:
            self._check_record(node, record)
        return node

    @staticmethod
    def _relocate(uri: str, own: OutputEntry, target_uri: str) -> str:
        """Where ``uri`` is, given that the record being read now sits at ``target_uri``.

        If the record moved (a copied or moved results folder), a location at the same relative
        place is preferred when it exists: the copy's inputs are the copy's files.
        """
        if own.uri == target_uri or "://" in uri or "://" in own.uri:
            return uri
        offset = os.path.relpath(uri, os.path.dirname(own.uri))
        moved = os.path.normpath(os.path.join(os.path.dirname(target_uri), offset))
        return moved if os.path.lexists(moved) else uri

    def _check_record(self, node: _Node, record: Record) -> None:
        target = node.target
        own = _own_entry(record, target)
        if own is None:
            node.reasons.append(
                Reason(
                    ReasonKind.BAD_RECORD,
                    f"the record beside {target.uri} does not describe it",
                    {"uri": target.uri, "problem": "output not described"},
                )
            )
            return
        output: Optional[HashableTarget]
        for output_entry in record.outputs:
            if output_entry is own:
                location, output = target.uri, target
            else:
                location = self._relocate(output_entry.uri, own, target.uri)
                output = target_from_uri(location)
            self._compare(node, output, location, output_entry.fingerprint, "output")
        assert node.pending is not None
        for input_entry in record.inputs:
            location = self._relocate(input_entry.uri, own, target.uri)
            upstream = target_from_uri(location)
            if input_entry.fingerprint is None:
                # Recorded as unverifiable: existence is all the run could vouch for.
                exists, problem = probe_exists(upstream)
                if upstream is not None and not exists:
                    node.reasons.append(
                        Reason(
                            ReasonKind.INPUT_CHANGED,
                            f"input {location} {problem or 'does not exist'}",
                            {"uri": location, "old": None, "new": None},
                        )
                    )
                continue
            found = self._compare(node, upstream, location, input_entry.fingerprint, "input")
            if found and upstream is not None:
                node.pending.append((input_entry.uri, upstream, input_entry.recorded))
        assert node.pending is not None
        node.pending.reverse()

    def _compare(
        self,
        node: _Node,
        target: Optional[HashableTarget],
        location: str,
        recorded: str,
        role: str,
    ) -> bool:
        """Compare one recorded fingerprint with the content now; True if the content exists."""
        changed = ReasonKind.OUTPUT_MODIFIED if role == "output" else ReasonKind.INPUT_CHANGED
        missing = ReasonKind.MISSING_OUTPUT if role == "output" else ReasonKind.INPUT_CHANGED
        if target is None:
            node.reasons.append(
                Reason(missing, f"{role} {location} cannot be located", {"uri": location})
            )
            return False
        algorithm = usable_algorithm(recorded)
        if algorithm is None:
            node.reasons.append(
                Reason(
                    ReasonKind.BAD_RECORD,
                    f"{role} {location} was fingerprinted with an algorithm that is unknown or "
                    "not installed here",
                    {"uri": location, "problem": "unusable algorithm"},
                )
            )
            return False
        outcome = self.judge.observe(target, algorithm)
        if isinstance(outcome, Missing):
            node.reasons.append(
                Reason(
                    missing,
                    f"{role} {location} {outcome.problem}",
                    {"uri": location, "old": recorded, "new": None},
                )
            )
            return False
        if outcome.fingerprint != recorded:
            verb = "was modified after it was written" if role == "output" else "changed"
            node.reasons.append(
                Reason(
                    changed,
                    f"{role} {location} {verb} ({short(recorded)} -> {short(outcome.fingerprint)})",
                    {"uri": location, "old": recorded, "new": outcome.fingerprint},
                )
            )
        return True

    def _close(self, node: _Node) -> None:
        self.active.discard(node.node_id)
        record = node.record
        reasons = tuple(node.reasons)
        outputs: Tuple[str, ...]
        if record is None:
            kind = "raw"
            ok = not reasons
            status = status_from_reasons(reasons).value if reasons else "EXISTS"
            label, family, outputs = node.target.uri, "", (node.target.uri,)
        else:
            kind, ok = "recorded", not reasons
            status = status_from_reasons(reasons).value
            params = ", ".join(f"{k}={v}" for k, v in sorted(record.task.params.items()))
            label = f"{record.task.family}({params})"
            family = record.task.family
            outputs = tuple(e.uri for e in record.outputs)
        unresolved = record.task.code_unresolved if record is not None else ()
        self.nodes[node.node_id] = TaskReport(
            task_id=node.node_id,
            family=family,
            kind=kind,
            status=status,
            ok=ok,
            label=label,
            reasons=reasons,
            notes=(unresolved_code_note(unresolved),) if unresolved else (),
            upstream=tuple(node.upstream),
            outputs=outputs,
        )


def audit_paths(
    paths: Sequence[str],
    *,
    full: bool = False,
    counters: Optional[Counters] = None,
    settings: Optional[Settings] = None,
) -> Report:
    """Audit the outputs at ``paths`` (and everything upstream) from their records alone."""
    started = time.perf_counter()
    judge = Judge(settings or load_settings(), exhaustive=True, full=full, counters=counters)
    auditor = _Auditor(judge)
    roots: List[str] = []
    for path in paths:
        target = target_for_path(path, judge.settings)
        if target is None:
            raise ValueError(f"{path} is not a location luigi_repro can read")
        roots.append(auditor.visit(target, is_root=True))
    flush_stat_caches()
    return Report(
        mode="paths",
        roots=tuple(dict.fromkeys(roots)),
        tasks=auditor.nodes,
        counters=judge.counters,
        seconds=time.perf_counter() - started,
        notes=(RECORD_ONLY_NOTE,),
    )
