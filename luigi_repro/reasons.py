"""The reasons a task is not up to date, worded in one place.

Task mode (``complete()``, ``verify --module``) and path mode (``verify PATH``) build their
reasons here, so one change reads the same whichever way it was found.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from luigi_repro.codeclosure import code_version_of, diff_parts, legacy_code_fingerprint
from luigi_repro.fingerprint import diff_manifests
from luigi_repro.paramorder import params_label
from luigi_repro.record import InputEntry, Record
from luigi_repro.status import Reason, ReasonKind

__all__ = [
    "code_changed",
    "listed_reads_reason",
    "manifest_evidence",
    "unresolved_code_note",
    "unresolved_dynamic",
    "unusable_algorithm",
]


def code_changed(
    family: str,
    cls: type,
    record: Record,
    fingerprint: str,
    parts: Mapping[str, str],
    algorithm: str,
) -> Reason:
    """CODE_CHANGED, naming what changed: the code_version, or each function, class, constant."""
    old_version, new_version = record.task.code_version, code_version_of(cls)
    evidence: Dict[str, Any] = {
        "old": record.task.code_fingerprint,
        "new": fingerprint,
        "old_version": old_version,
        "new_version": new_version,
    }
    message = f"the code of {family} changed since its outputs were made"
    if record.task.code_parts is None:
        # Written before the fingerprint covered helper code: it can only vouch for the classes.
        same = record.task.code_fingerprint == legacy_code_fingerprint(cls, algorithm)
        evidence.update({"record_covers_helpers": False, "classes_unchanged": same})
        if same and old_version == new_version:
            message = (
                f"the record of {family} predates code fingerprints that cover helper code "
                "(the functions, classes and constants the task uses); run `luigi-repro adopt` "
                "to accept the existing outputs, or let the task run again"
            )
    else:
        diff = diff_parts(record.task.code_parts, parts, record.task.module, cls.__module__)
        evidence.update(diff)
        items = [f"{key} {what}" for what in ("changed", "added", "removed") for key in diff[what]]
        if items:
            shown = ", ".join(items[:CODE_ITEMS_SHOWN])
            more = len(items) - CODE_ITEMS_SHOWN
            message = f"the code of {family} changed: {shown}" + (
                f" and {more} more" if more > 0 else ""
            )
    if old_version != new_version:
        message = f"code_version changed ({old_version!r} -> {new_version!r})"
    return Reason(ReasonKind.CODE_CHANGED, message, evidence)


#: How many changed functions, classes and constants a CODE_CHANGED message names.
CODE_ITEMS_SHOWN = 4


def unresolved_code_note(unresolved: Tuple[str, ...]) -> Reason:
    """A note for audits: references the code fingerprint cannot follow, so cannot vouch for."""
    shown = "; ".join(unresolved[:CODE_ITEMS_SHOWN])
    more = len(unresolved) - CODE_ITEMS_SHOWN
    return Reason(
        ReasonKind.CODE_UNRESOLVED,
        "the code fingerprint cannot follow "
        + shown
        + (f" and {more} more" if more > 0 else "")
        + " (code reached only through them is not checked)",
        {"unresolved": list(unresolved)},
    )


def unusable_algorithm(where: str, fingerprint: str) -> Reason:
    algorithm = fingerprint.partition(":")[0]
    return Reason(
        ReasonKind.BAD_RECORD,
        f"the record of {where} uses the hash algorithm {algorithm!r}, "
        "which is unknown or not installed here",
        {"uri": where, "problem": "unusable algorithm", "algorithm": algorithm},
    )


def listed_reads_reason(listed: Sequence[str]) -> Reason:
    """Under ``undeclared_reads = track``: a record that only lists the files ``run()`` read
    without declaring them (written under ``warn``) cannot vouch for their content."""
    return Reason(
        ReasonKind.INPUTS_ADDED,
        "files read without being declared are tracked now, but the record did not "
        "fingerprint them: " + ", ".join(listed),
        {"inputs": [{"input": "undeclared", "uri": uri} for uri in listed]},
    )


def unresolved_dynamic(label: str, entry: InputEntry, why: str) -> Reason:
    described = params_label(entry.task_family or "", entry.task_params or {})
    return Reason(
        ReasonKind.DYNAMIC_DEPENDENCY_UNRESOLVED,
        f"dynamic dependency {label} {described} cannot be rebuilt here, so its own inputs and "
        f"code cannot be checked: {why}",
        {
            "input": label,
            "task_id": entry.task_id,
            "family": entry.task_family,
            "module": entry.task_module,
            "uri": entry.uri,
            "why": why,
        },
    )


def manifest_evidence(old: Optional[Any], new: Optional[Any]) -> Dict[str, List[str]]:
    if old is None or new is None:
        return {}
    diff = diff_manifests(old, new)
    return {"added": list(diff.added), "removed": list(diff.removed), "changed": list(diff.changed)}
