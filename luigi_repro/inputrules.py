"""The rules about a task's inputs: each recorded input, undeclared read and dynamic dependency.

Part of the own verdict (:mod:`luigi_repro.rules`): the requirements now against the inputs the
record lists, every recorded fingerprint against the content there now, files ``run()`` read
without declaring them, and dependencies ``run()`` yielded, rebuilt from the record when their
class is imported here.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import luigi
from luigi.task_register import Register

from luigi_repro.config import Settings
from luigi_repro.dag import flatten_with_keys, format_key, static_inputs
from luigi_repro.evidence import Evidence, Missing, uri_of
from luigi_repro.findings import Findings, is_checked_task
from luigi_repro.fingerprint import short, usable_algorithm
from luigi_repro.localpath import relocate
from luigi_repro.reasons import (
    listed_reads_reason,
    manifest_evidence,
    unresolved_dynamic,
    unusable_algorithm,
)
from luigi_repro.record import InputEntry, Key, Record
from luigi_repro.status import Reason, ReasonKind
from luigi_repro.targets.base import as_hashable, locate_target, target_from_uri
from luigi_repro.writerrights import reading_for, writer_refusal

__all__ = ["InputRules"]


class InputRules:
    """Checks the inputs a record lists against what is there now."""

    def __init__(self, evidence: Evidence, settings: Settings) -> None:
        self.evidence = evidence
        self.settings = settings

    def check(
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
                self._check_one(ref.label, ref.target, entry, found, ref.task)
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
                    self._check_one(label, target, entry, found, upstream)
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
                    self._check_one("undeclared", target, entry, found, None)
            if found.done:
                return True
        return False

    def _check_one(
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
