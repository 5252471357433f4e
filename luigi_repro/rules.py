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

import luigi

from luigi_repro.codeclosure import code_closure
from luigi_repro.config import Settings
from luigi_repro.dag import flatten_with_keys, format_key
from luigi_repro.environment import env_drift
from luigi_repro.evidence import Evidence, Missing, warn_once
from luigi_repro.findings import Findings, OwnVerdict, is_checked_task
from luigi_repro.fingerprint import short, usable_algorithm
from luigi_repro.inputrules import InputRules
from luigi_repro.params import canonical_params, diff_params
from luigi_repro.reasons import (
    code_changed,
    manifest_evidence,
    unresolved_code_note,
    unusable_algorithm,
)
from luigi_repro.record import Key, OutputEntry, Record
from luigi_repro.status import Reason, ReasonKind
from luigi_repro.targets.base import (
    HashableTarget,
    as_hashable,
)

__all__ = ["Findings", "OwnVerdict", "Rules", "is_checked_task"]


class Rules:
    """Decides own verdicts from one check's evidence."""

    def __init__(self, evidence: Evidence, settings: Settings, exhaustive: bool) -> None:
        self.evidence = evidence
        self.settings = settings
        self.exhaustive = exhaustive
        #: Read from the environment once per check (it keys the digests of secret parameters).
        self.signing_key = settings.signing_key
        self.inputs = InputRules(evidence, settings)

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
            dynamic = self.inputs.check(requirements, record, found, place)
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
            location = self.evidence.records.location(target)
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
