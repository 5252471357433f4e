"""The rules: a task's own verdict, from the task, its requirements and the evidence.

Everything about the task itself — its outputs exist and match their records, the records agree
with each other, the parameters, code and (by policy) environment are the same, every recorded
input still has its recorded fingerprint, files read without being declared are unchanged,
dynamic dependencies can be rebuilt. Upstream tasks are only listed here: the walk
(:mod:`luigi_repro.judge`) combines their statuses, and the run protocol's early cutoff needs
exactly this part. Reads go through :class:`~luigi_repro.evidence.Evidence` (memoized, watched,
traced); nothing here is remembered across checks.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set, Tuple

import attrs
import luigi
from luigi.task_register import Register

from luigi_repro.codeclosure import code_closure
from luigi_repro.config import Settings
from luigi_repro.dag import flatten_with_keys, format_key, static_inputs
from luigi_repro.environment import env_drift
from luigi_repro.evidence import Evidence, Missing, uri_of, warn_once
from luigi_repro.fingerprint import short, usable_algorithm
from luigi_repro.localpath import relocate
from luigi_repro.params import canonical_params, diff_params
from luigi_repro.reasons import (
    code_changed,
    listed_reads_reason,
    manifest_evidence,
    unresolved_code_note,
    unresolved_dynamic,
    unusable_algorithm,
)
from luigi_repro.record import InputEntry, Key, OutputEntry, Record
from luigi_repro.status import Reason, ReasonKind
from luigi_repro.targets.base import (
    HashableTarget,
    as_hashable,
    locate_target,
    target_from_uri,
)
from luigi_repro.writerrights import reading_for, writer_refusal

__all__ = ["Findings", "OwnVerdict", "Rules", "is_checked_task"]


def is_checked_task(task: Any) -> bool:
    """Is ``task`` judged by luigi_repro's rules (a ``TaskWithCheckingInputHash``)?"""
    return bool(getattr(type(task), "_luigi_repro_checked", False))


@attrs.frozen
class OwnVerdict:
    """What a task's own state says, before its upstream tasks are looked at."""

    reasons: Tuple[Reason, ...]
    notes: Tuple[Reason, ...]
    record: Optional[Record]
    upstream: Tuple[luigi.Task, ...]


@attrs.define
class Findings:
    """Reasons and notes gathered about one task; ``done`` once a quick check has its answer."""

    exhaustive: bool
    reasons: List[Reason] = attrs.field(factory=list)
    notes: List[Reason] = attrs.field(factory=list)

    def add(self, reason: Reason) -> None:
        self.reasons.append(reason)

    def note(self, reason: Reason) -> None:
        self.notes.append(reason)

    @property
    def done(self) -> bool:
        """True when ``complete()`` already knows its answer (False) and may stop looking."""
        return bool(self.reasons) and not self.exhaustive


class Rules:
    """Decides own verdicts from one check's evidence."""

    def __init__(self, evidence: Evidence, settings: Settings, exhaustive: bool) -> None:
        self.evidence = evidence
        self.settings = settings
        self.exhaustive = exhaustive
        #: Read from the environment once per check (it keys the digests of secret parameters).
        self.signing_key = settings.signing_key

    def decide(self, task: luigi.Task, requirements: List[Tuple[Key, luigi.Task]]) -> OwnVerdict:
        """The task's own verdict; upstream tasks are only listed."""
        found = Findings(self.exhaustive)
        add = found.add
        family = task.get_task_family()
        upstream = tuple(t for _, t in requirements)

        outputs: List[Tuple[Key, HashableTarget]] = []
        declared = flatten_with_keys(task.output())
        if not declared:
            add(Reason(ReasonKind.MISSING_OUTPUT, f"{family} declares no outputs to vouch for"))
        for key, target in declared:
            hashable = as_hashable(target)
            if hashable is None or not hashable.supports_records:
                add(
                    Reason(
                        ReasonKind.NO_RECORD,
                        f"output(){format_key(key)} is a {type(target).__name__}, "
                        "which cannot carry a record",
                        {"output_key": list(key), "type": type(target).__name__},
                    )
                )
            else:
                exists, problem = self.evidence.exists(hashable)
                if exists:
                    outputs.append((key, hashable))
                    continue
                add(
                    Reason(
                        ReasonKind.MISSING_OUTPUT,
                        f"output {hashable.uri} {problem or 'does not exist'}",
                        {"output_key": list(key), "uri": hashable.uri},
                    )
                )
        record: Optional[Record] = None
        dynamic: Tuple[luigi.Task, ...] = ()
        if not found.done:
            record, entries = self._records_of(family, outputs, found)
            for _key, target, entry in entries:
                if not found.done:
                    self._check_output(target, entry, found)
        if record is not None and not found.done:
            self._check_identity(task, record, found)
        if record is not None and not found.done:
            self._check_environment(record, found)
        if record is not None and not found.done:
            # Where the record's output was written, and where it is read now.
            place = (entries[0][2].uri, entries[0][1].uri) if entries else None
            dynamic = self._check_inputs(requirements, record, found, place)
        return OwnVerdict(tuple(found.reasons), tuple(found.notes), record, upstream + dynamic)

    def _records_of(
        self,
        family: str,
        outputs: List[Tuple[Key, HashableTarget]],
        found: Findings,
    ) -> Tuple[Optional[Record], List[Tuple[Key, HashableTarget, OutputEntry]]]:
        add = found.add
        record: Optional[Record] = None
        run_ids: Set[str] = set()
        recorded_by: List[Tuple[str, Record]] = []
        entries: List[Tuple[Key, HashableTarget, OutputEntry]] = []
        for key, target in outputs:
            stored, error = self.evidence.record_of(target)
            trace = self.evidence.trace
            if trace is not None:
                if stored is None:
                    trace.reusable = False  # only verdicts backed by records are kept
                else:
                    trace.records.append((target, stored))
            location = target.record_location(self.settings)
            if error is not None:
                add(
                    Reason(
                        ReasonKind.BAD_RECORD,
                        str(error),
                        {"record": location, "problem": error.problem},
                    )
                )
            elif stored is None:
                add(
                    Reason(
                        ReasonKind.NO_RECORD,
                        f"output {target.uri} has no record ({location} does not exist)",
                        {"uri": target.uri, "record": location},
                    )
                )
            else:
                entry = stored.output(key)
                if entry is None:
                    add(
                        Reason(
                            ReasonKind.BAD_RECORD,
                            f"record {location} does not describe output(){format_key(key)} "
                            f"(recorded by {stored.task.label})",
                            {
                                "record": location,
                                "problem": "output not described",
                                "recorded_by": stored.task.task_id,
                            },
                        )
                    )
                    continue
                run_ids.add(stored.run.run_id)
                recorded_by.append((target.uri, stored))
                record = record or stored
                entries.append((key, target, entry))
        if len(run_ids) > 1:
            # Two tasks writing one path, or a run that died between writing its records.
            described = ", ".join(
                f"{uri} recorded by {stored.task.label} (run of {stored.run.started})"
                for uri, stored in recorded_by
            )
            add(
                Reason(
                    ReasonKind.BAD_RECORD,
                    f"the records of the outputs of {family} come from different runs: "
                    + described,
                    {
                        "problem": "runs differ",
                        "run_ids": sorted(run_ids),
                        "recorded_by": {uri: stored.task.task_id for uri, stored in recorded_by},
                    },
                )
            )
        return record, entries

    def _check_output(self, target: HashableTarget, entry: OutputEntry, found: Findings) -> None:
        add = found.add
        algorithm = usable_algorithm(entry.fingerprint)
        if algorithm is None:
            add(unusable_algorithm(target.uri, entry.fingerprint))
            return
        outcome = self.evidence.observe(target, algorithm)
        if isinstance(outcome, Missing):
            add(
                Reason(
                    ReasonKind.MISSING_OUTPUT,
                    f"output {target.uri} {outcome.problem}",
                    {"uri": target.uri, "problem": outcome.problem},
                )
            )
        elif outcome.fingerprint != entry.fingerprint:
            evidence: Dict[str, Any] = {
                "uri": target.uri,
                "old": entry.fingerprint,
                "new": outcome.fingerprint,
            }
            evidence.update(manifest_evidence(entry.manifest, outcome.manifest))
            add(
                Reason(
                    ReasonKind.OUTPUT_MODIFIED,
                    f"output {target.uri} was modified after it was written "
                    f"({short(entry.fingerprint)} -> {short(outcome.fingerprint)})",
                    evidence,
                )
            )

    def _check_identity(
        self,
        task: luigi.Task,
        record: Record,
        found: Findings,
    ) -> None:
        add = found.add
        changed = diff_params(record.task.params, canonical_params(task, self.signing_key))
        # Another task id made the output: parameters changed, or two tasks write one path.
        by = "" if record.task.task_id == task.task_id else f"; recorded by {record.task.label}"
        if changed:
            described = ", ".join(
                f"{name}: {old!r} -> {new!r}" for name, (old, new) in changed.items()
            )
            add(
                Reason(
                    ReasonKind.PARAMS_CHANGED,
                    f"parameters changed ({described}){by}",
                    {
                        "params": {n: {"old": o, "new": v} for n, (o, v) in changed.items()},
                        "recorded_by": record.task.task_id,
                    },
                )
            )
        family = task.get_task_family()
        if record.task.family != family:
            # Another task (or a renamed class) made this output: never the same result.
            add(
                Reason(
                    ReasonKind.CODE_CHANGED,
                    f"the output was recorded by {record.task.label}, not by {task!r}",
                    {
                        "task": {"old": record.task.family, "new": family},
                        "recorded_by": record.task.task_id,
                    },
                )
            )
            return
        policy = self.settings.on_code_change
        if policy == "ignore":
            return
        cls = type(task)
        algorithm = usable_algorithm(record.task.code_fingerprint)
        if algorithm is None:
            add(unusable_algorithm(task.task_id, record.task.code_fingerprint))
            return
        current = code_closure(cls, algorithm)
        if self.exhaustive and current.unresolved:
            found.note(unresolved_code_note(current.unresolved))
        if current.error is not None:  # no record can vouch for code that was not seen
            reason = Reason(
                ReasonKind.CODE_CHANGED,
                f"the code of {family} cannot be fingerprinted ({current.error})",
                {"old": record.task.code_fingerprint, "new": None, "error": current.error},
            )
        elif record.task.code_fingerprint == current.fingerprint:
            return
        else:
            reason = code_changed(
                family, cls, record, current.fingerprint, current.parts, algorithm
            )
        message = reason.message
        if policy == "rerun":
            add(reason)
        else:
            found.note(reason)
            warn_once(
                f"code:{task.task_id}",
                "luigi_repro: %s; kept because [luigi_repro] on_code_change = warn.",
                message,
            )

    def _check_environment(self, record: Record, found: Findings) -> None:
        policy = self.settings.on_env_change
        if policy == "ignore" or (policy == "warn" and not self.exhaustive):
            return  # under "warn" only an audit needs the (slower) comparison
        drift = env_drift(record.run.versions, record.run.packages)
        if not drift:
            return
        described = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in drift.items())
        reason = Reason(
            ReasonKind.ENV_CHANGED,
            f"software changed since the run ({described})",
            {"packages": {n: {"old": o, "new": v} for n, (o, v) in drift.items()}},
        )
        (found.add if policy == "rerun" else found.note)(reason)

    def _check_inputs(
        self,
        requirements: List[Tuple[Key, luigi.Task]],
        record: Record,
        found: Findings,
        place: Optional[Tuple[str, str]],
    ) -> Tuple[luigi.Task, ...]:
        add = found.add
        current = {(ref.key, ref.output_key): ref for ref in static_inputs(requirements)}
        recorded = {
            (e.key, e.output_key): e for e in record.inputs if not (e.dynamic or e.undeclared)
        }
        added = [current[k] for k in current if k not in recorded]
        removed = [recorded[k] for k in recorded if k not in current]
        if added:
            add(
                Reason(
                    ReasonKind.INPUTS_ADDED,
                    "new inputs: " + ", ".join(f"{r.label} ({uri_of(r.target)})" for r in added),
                    {"inputs": [{"input": r.label, "uri": uri_of(r.target)} for r in added]},
                )
            )
        if removed:
            add(
                Reason(
                    ReasonKind.INPUTS_REMOVED,
                    "inputs no longer required: " + ", ".join(e.uri for e in removed),
                    {
                        "inputs": [
                            {"key": list(e.key), "output_key": list(e.output_key), "uri": e.uri}
                            for e in removed
                        ]
                    },
                )
            )
        for key, entry in recorded.items():
            ref = current.get(key)
            if ref is not None:
                self._check_input(ref.label, ref.target, entry, found, ref.task)
                if found.done:
                    return ()
        if self._check_undeclared(record, found, place):
            return ()
        rebuilt: List[luigi.Task] = []
        for entry in record.inputs:
            if not entry.dynamic:
                continue
            upstream, target, why = self._rebuild_dynamic(entry)
            label = f"yield{format_key(entry.key)}"
            refused = None if upstream is not None else writer_refusal(entry.uri, record.writer)
            if refused is not None:
                target = None  # only its location is known, and its writer could not read it
            if upstream is not None:
                rebuilt.append(upstream)
            elif entry.task_family is not None:
                # Its content may still match, but its own inputs and code cannot be checked:
                # a changed upstream would hide behind an unchanged file.
                add(unresolved_dynamic(label, entry, why))
                if found.done:
                    break
            if target is None:
                unlocated = (
                    refused
                    or locate_target(entry.uri, entry.target)[1]
                    or "can no longer be located"
                )
                add(
                    Reason(
                        ReasonKind.INPUT_CHANGED,
                        f"dynamic input {label} ({entry.uri}) {unlocated}",
                        {"input": label, "uri": entry.uri, "old": entry.fingerprint, "new": None},
                    )
                )
            else:
                # Where it is comes from the record (its location, or parameters to rebuild the
                # task that made it): read it only as far as the record's writer could.
                with reading_for(record.writer):
                    self._check_input(label, target, entry, found, upstream)
            if found.done:
                break
        return tuple(rebuilt)

    def _check_undeclared(
        self, record: Record, found: Findings, place: Optional[Tuple[str, str]]
    ) -> bool:
        """Files ``run()`` read without declaring them: checked by their location, like raw files.

        ``place`` is (where an output was when the record was written, where it is now).

        Under ``undeclared_reads = track`` a record that only *lists* such files (written under
        ``warn``) cannot vouch for their content. True when the check already has its answer.
        """
        listed = record.undeclared_reads
        if listed and self.settings.undeclared_reads == "track":
            found.add(listed_reads_reason(listed))
            if found.done:
                return True
        for entry in record.inputs:
            if not entry.undeclared:
                continue
            # Recorded where the run read it; if the record moved with its folder (a copied
            # project), the file is the copy's, as for every other location a record names.
            uri = entry.uri if place is None else relocate(entry.uri, *place)
            why = writer_refusal(uri, record.writer)
            target, why = (None, why) if why is not None else locate_target(uri, entry.target)
            if target is None:
                found.add(
                    Reason(
                        ReasonKind.INPUT_CHANGED,
                        f"undeclared input {uri} {why or 'can no longer be located'}",
                        {"input": "undeclared", "uri": uri, "old": entry.fingerprint},
                    )
                )
            else:
                with reading_for(record.writer):
                    self._check_input("undeclared", target, entry, found, None)
            if found.done:
                return True
        return False

    def _check_input(
        self,
        label: str,
        target: Any,
        entry: InputEntry,
        found: Findings,
        producer: Optional[luigi.Task],
    ) -> None:
        add = found.add
        hashable = as_hashable(target)
        uri = uri_of(target)
        base = {"input": label, "uri": uri, "old": entry.fingerprint}
        named = f"undeclared input {uri}" if entry.undeclared else f"input {label} ({uri})"
        if entry.fingerprint is None or hashable is None:
            exists, failure = self.evidence.exists(target)
            if entry.fingerprint is None and hashable is None and exists:
                found.note(
                    Reason(
                        ReasonKind.INPUT_UNVERIFIABLE,
                        f"{named} can only be checked for existence",
                        {**base, "new": None},
                    )
                )
                return
            if not exists:
                problem = failure or "is missing"
            elif hashable is None:
                problem = "can no longer be fingerprinted"
            else:
                problem = "can now be fingerprinted, but the record could not vouch for its content"
            add(
                Reason(
                    ReasonKind.INPUT_CHANGED,
                    f"{named} {problem}",
                    {**base, "new": None},
                )
            )
            return
        algorithm = usable_algorithm(entry.fingerprint)
        if algorithm is None:
            add(unusable_algorithm(uri, entry.fingerprint))
            return
        # A file read without being declared is raw data: no record beside it is looked for.
        recorded = not entry.undeclared and (producer is None or is_checked_task(producer))
        outcome = self.evidence.observe(hashable, algorithm, recorded)
        if isinstance(outcome, Missing):
            add(
                Reason(
                    ReasonKind.INPUT_CHANGED,
                    f"{named} {outcome.problem}",
                    {**base, "new": None},
                )
            )
        elif outcome.fingerprint != entry.fingerprint:
            evidence: Dict[str, Any] = {**base, "new": outcome.fingerprint}
            evidence.update(manifest_evidence(entry.manifest, outcome.manifest))
            add(
                Reason(
                    ReasonKind.INPUT_CHANGED,
                    f"{named} changed ({short(entry.fingerprint)} -> {short(outcome.fingerprint)})",
                    evidence,
                )
            )

    def _rebuild_dynamic(self, entry: InputEntry) -> Tuple[Optional[luigi.Task], Any, str]:
        """The task and target behind a recorded dynamic input, from already-imported classes,
        or why the task cannot be rebuilt.

        Modules named in a record are never imported: a record is data, and importing would let
        whoever wrote it run code. Without the task, the content is still compared by URI, but
        the caller reports the dependency unresolved.
        """
        why = ""
        if entry.task_family is not None and entry.task_params is not None:
            try:
                cls = Register.get_task_cls(entry.task_family)
            except Exception:  # noqa: BLE001 - not registered (or ambiguous)
                cls = None
                why = (
                    f"its class is not imported here: import module {entry.task_module} where "
                    "the pipeline is defined, so that the class is known before run() yields it"
                )
            if cls is not None:
                try:
                    upstream = cls.from_str_params(dict(entry.task_params))
                except Exception as exc:  # noqa: BLE001 - any failure means "cannot rebuild"
                    upstream, why = None, f"its recorded parameters no longer fit it ({exc})"
                if upstream is not None and upstream.task_id != entry.task_id:
                    why = f"its parameters now make another task ({upstream.task_id})"
                elif upstream is not None:
                    for key, target in flatten_with_keys(upstream.output()):
                        if key == entry.output_key:
                            return upstream, target, ""
                    why = f"it no longer has the output(){format_key(entry.output_key)} it had"
            if self.evidence.trace is not None:
                # Its class may be imported later in this process, and then it can be judged.
                self.evidence.trace.reusable = False
        return None, target_from_uri(entry.uri, entry.target), why
