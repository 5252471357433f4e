"""Record-only audits: check outputs from their records alone, without the pipeline's code.

``luigi-repro verify PATH…`` starts from output files, reads the record beside each, checks that
every output it lists still has the recorded fingerprint, that every input still has the
fingerprint it had when it was read, and follows each input that has a record of its own upstream.
Parameters and code cannot be checked without the code; the report says so.

Each location is fingerprinted the way the run fingerprinted it: a record describes every input
and output it names (a Parquet file by its data, a plain file by its bytes), and the audit
rebuilds the same kind of target, starting with the one it was given a path to.

Records name absolute locations. When a results folder was moved or copied elsewhere (to an
auditor's machine), every local location a record names is looked for at the same place relative
to the record being read, and only there: a file missing from the copy is reported missing at the
copy's path, never replaced by the original, so the audit vouches for the copy's own files.
"""

from __future__ import annotations

import os
import time
from typing import Dict, List, Optional, Sequence, Set, Tuple

import attrs

from luigi_repro.config import Settings, load_settings
from luigi_repro.evidence import Missing
from luigi_repro.fingerprint import Counters, short, usable_algorithm
from luigi_repro.judge import Judge
from luigi_repro.localpath import physical_path, relocate, same_place
from luigi_repro.paramorder import params_label
from luigi_repro.reads import unwatched_call
from luigi_repro.reasons import listed_reads_reason, unresolved_code_note
from luigi_repro.record import Record
from luigi_repro.recordgraph import inputs_of, locate, own_entry
from luigi_repro.report import Report, TaskReport
from luigi_repro.statcache import flush_stat_caches
from luigi_repro.status import Reason, ReasonKind, status_from_reasons
from luigi_repro.targets.base import HashableTarget, probe_exists, target_from_uri
from luigi_repro.targets.local import HashableLocalTarget
from luigi_repro.writerrights import reading_for

__all__ = ["RECORD_ONLY_NOTE", "UNREPLAYABLE", "audit_paths", "target_for_path"]

#: Put in ``audit_paths``'s ``read`` when a verdict stands on more than local files.
UNREPLAYABLE = "<not a local file>"

RECORD_ONLY_NOTE = (
    "record-only audit: parameters and code are not checked (run verify with --module and a "
    "task to check them)"
)


def target_for_path(path: str, settings: Settings) -> Optional[HashableTarget]:
    """The target for an output path, a record path (``x.repro.json``) or a URL.

    It reads the location's raw content; the audit types it by its record (a Parquet output is
    then fingerprinted by its data).
    """
    location = (
        path[: -len(settings.record_suffix)] if path.endswith(settings.record_suffix) else path
    )
    target = target_from_uri(location)  # an absolute path, a URL or another known location
    if target is None and "://" not in location:
        target = target_from_uri(physical_path(location))
    return target


@attrs.define
class _Node:
    target: HashableTarget
    node_id: str
    record: Optional[Record]
    reasons: List[Reason] = attrs.field(factory=list)
    upstream: List[str] = attrs.field(factory=list)
    #: Inputs still to visit: (label, target, whether its producer keeps records).
    pending: Optional[List[Tuple[str, HashableTarget, bool]]] = None


#: Why a path given to audit has no record: a file, or a folder with no record under it.
_NO_RECORD_HERE = {
    False: "has no record to audit",
    True: "is a folder that holds no record at all (nothing in it was made by a task that "
    "keeps records)",
}


def _is_local(uri: str) -> bool:
    return os.path.isabs(uri)


class _Auditor:
    def __init__(self, judge: Judge, read: Optional[Set[str]] = None) -> None:
        self.judge = judge
        self.settings = judge.settings
        self.nodes: Dict[str, TaskReport] = {}
        self.active: Set[str] = set()
        #: Every local file the audit read (a folder, a remote object: ``UNREPLAYABLE``).
        self.read = read

    def _saw(self, target: HashableTarget, record: bool) -> None:
        """Note that the verdict stands on ``target`` (and on its record, with ``record``)."""
        if self.read is None:
            return
        if not isinstance(target, HashableLocalTarget):
            self.read.add(UNREPLAYABLE)
            return
        self.read.add(target.uri)
        if record:
            self.read.add(physical_path(self.judge.evidence.records.location(target)))

    def node_id(self, target: HashableTarget) -> str:
        """One node per recorded run *at one place*: a copy of the results is another node.

        A copy is named by where the run's first output is in it, the same from each of the
        run's outputs there.
        """
        self._saw(target, record=True)
        record, error = self.judge.record_of(target)
        if record is None:
            return ("bad-record:" if error is not None else "file:") + target.uri
        task_id = record.task.task_id
        own = own_entry(record, target.uri)
        if isinstance(own, Reason):
            return f"{task_id}@{target.uri}"
        if own.uri == target.uri or (
            _is_local(own.uri) and _is_local(target.uri) and same_place(own.uri, target.uri)
        ):
            return task_id  # the original (perhaps through a symlinked folder), not a copy
        if not (_is_local(own.uri) and _is_local(target.uri)):
            return f"{task_id}@{target.uri}"
        first = next(entry.uri for entry in record.outputs if _is_local(entry.uri))
        return f"{task_id}@{relocate(first, own.uri, target.uri)}"

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
                # An input whose producer keeps no records is a raw file to its reader, as for
                # complete(): a record that happens to sit beside it is not followed.
                child_id = self.node_id(target) if expect_record else "file:" + target.uri
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
        self._saw(target, record=expect_record)
        record, error = self.judge.record_of(target) if expect_record else (None, None)
        node = _Node(target, node_id, record, pending=[])
        if error is not None:
            node.reasons.append(
                Reason(ReasonKind.BAD_RECORD, str(error), {"record": error.location})
            )
        elif record is None:
            exists, problem = probe_exists(target)
            if not exists:
                # An output of a task that keeps records is missing; a raw input is changed.
                node.reasons.append(
                    Reason(
                        ReasonKind.MISSING_OUTPUT if expect_record else ReasonKind.INPUT_CHANGED,
                        f"{target.uri} {problem or 'does not exist'}",
                        {"uri": target.uri},
                    )
                )
            elif expect_record:
                why = (
                    _NO_RECORD_HERE[_is_local(target.uri) and os.path.isdir(target.uri)]
                    if is_root
                    else "has no record, though the task that makes it keeps one (a run that "
                    "did not finish?)"
                )
                node.reasons.append(
                    Reason(
                        ReasonKind.NO_RECORD,
                        f"{target.uri} {why}",
                        {"uri": target.uri, "record": self.judge.evidence.records.location(target)},
                    )
                )
        else:
            self._check_record(node, record)
        return node

    def _check_record(self, node: _Node, record: Record) -> None:
        target = node.target
        own = own_entry(record, target.uri)
        if isinstance(own, Reason):
            node.reasons.append(own)
            return
        for output_entry in record.outputs:
            location = (
                target.uri
                if output_entry is own
                else relocate(output_entry.uri, own.uri, target.uri)
            )
            output, unlocated = locate(location, output_entry.target, target, record)
            if output is not None:
                self._saw(output, record=False)
            if output_entry is own and output is not None:
                node.target = output  # typed by its record: a table is read as a table
            self._compare(node, output, location, output_entry.fingerprint, "output", unlocated)
        assert node.pending is not None
        found = inputs_of(record, target)
        assert not isinstance(found, Reason)  # the same own entry as above
        for edge in found[1]:
            input_entry, location = edge.entry, edge.location
            upstream, unlocated = edge.target, edge.unlocated
            if upstream is not None:
                self._saw(upstream, record=False)
            if input_entry.fingerprint is None:
                # Recorded as unverifiable: existence is all the run could vouch for.
                exists, failure = probe_exists(upstream)
                if upstream is not None and not exists:
                    node.reasons.append(
                        Reason(
                            ReasonKind.INPUT_CHANGED,
                            f"input {location} {failure or 'does not exist'}",
                            {"uri": location, "old": None, "new": None},
                        )
                    )
                continue
            self._compare(node, upstream, location, input_entry.fingerprint, "input", unlocated)
            if upstream is not None:
                # Visited even when missing: its own record says what became of it.
                node.pending.append((input_entry.uri, upstream, input_entry.recorded))
        if record.undeclared_reads and self.settings.undeclared_reads == "track":
            node.reasons.append(listed_reads_reason(record.undeclared_reads))
        node.pending.reverse()

    def _compare(
        self,
        node: _Node,
        target: Optional[HashableTarget],
        location: str,
        recorded: str,
        role: str,
        unlocated: Optional[str],
    ) -> None:
        """Compare one recorded fingerprint with the content now.

        ``unlocated`` says why ``target`` is None: the location cannot be read by this audit.
        """
        changed = ReasonKind.OUTPUT_MODIFIED if role == "output" else ReasonKind.INPUT_CHANGED
        missing = ReasonKind.MISSING_OUTPUT if role == "output" else ReasonKind.INPUT_CHANGED
        if target is None:
            why = unlocated or "cannot be located"
            node.reasons.append(
                Reason(
                    missing,
                    f"{role} {location} {why}",
                    {"uri": location, "problem": "cannot be located"},
                )
            )
            return
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
            return
        with reading_for(node.record.writer if node.record is not None else None):
            outcome = self.judge.observe(target, algorithm)
        if isinstance(outcome, Missing):
            node.reasons.append(
                Reason(
                    missing,
                    f"{role} {location} {outcome.problem}",
                    {"uri": location, "old": recorded, "new": None},
                )
            )
            return
        if outcome.fingerprint != recorded:
            verb = "was modified after it was written" if role == "output" else "changed"
            node.reasons.append(
                Reason(
                    changed,
                    f"{role} {location} {verb} ({short(recorded)} -> {short(outcome.fingerprint)})",
                    {"uri": location, "old": recorded, "new": outcome.fingerprint},
                )
            )

    def _close(self, node: _Node) -> None:
        self.active.discard(node.node_id)
        record = node.record
        reasons = tuple(node.reasons)
        outputs: Tuple[str, ...]
        if record is None:
            kind = "raw"
            ok = not reasons
            if not reasons:
                status = "EXISTS"
            elif all(reason.kind is ReasonKind.INPUT_CHANGED for reason in reasons):
                status = "MISSING"  # a raw input that is gone
            else:
                status = status_from_reasons(reasons).value
            label, family, outputs = node.target.uri, "", (node.target.uri,)
        else:
            kind, ok = "recorded", not reasons
            status = status_from_reasons(reasons).value
            label = params_label(record.task.family, record.task.params, record.task.param_order)
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


@unwatched_call
def audit_paths(
    paths: Sequence[str],
    *,
    full: bool = False,
    counters: Optional[Counters] = None,
    settings: Optional[Settings] = None,
    read: Optional[Set[str]] = None,
) -> Report:
    """Audit the outputs at ``paths`` (and everything upstream) from their records alone.

    ``read``, when given, receives every local file the verdicts stand on, records included
    (and ``UNREPLAYABLE`` when one stands on something else).
    """
    started = time.perf_counter()
    judge = Judge(settings or load_settings(), exhaustive=True, full=full, counters=counters)
    auditor = _Auditor(judge, read)
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
