"""The action key: one digest naming everything a task's outputs are made from.

Two runs with equal keys are the same computation: the same task family with the same canonical
significant parameters, the same code fingerprint, and the same content at every input position
(``requires()`` key, upstream ``output()`` key, fingerprint). Where the inputs *are* (their paths)
is left out on purpose: a teammate's checkout in another folder computes the same thing. With
``on_env_change = rerun`` the Python and Luigi versions count too, as they do for the records.

SHA-256, whatever ``hash_algorithm`` says: the key names entries in a cache others write to,
so two different actions must not be made to share one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import luigi

from luigi_repro import environment
from luigi_repro.codeclosure import code_closure
from luigi_repro.config import Settings
from luigi_repro.dag import InputRef
from luigi_repro.params import canonical_params
from luigi_repro.recordmodel import SCHEMA_VERSION, Key
from luigi_repro.targets.base import Observation

__all__ = [
    "ACTION_KEY_VERSION",
    "ActionKey",
    "InputSlot",
    "action_key",
    "action_key_of",
    "input_slot",
]

#: Bumped whenever what the key covers changes, so old entries are simply never found.
ACTION_KEY_VERSION = 1


#: Where one input sits: its ``requires()`` key, the upstream ``output()`` key, and whether a
#: dynamic dependency (``yield``) brought it.
InputSlot = Tuple[Key, Key, bool]


def input_slot(ref: InputRef) -> InputSlot:
    """The slot of ``ref``, as the run protocol files its observations."""
    return (ref.key, ref.output_key, ref.dynamic)


class ActionKey(str):
    """``sha256:<hex>`` naming one action, with the parts it was made from for messages."""

    parts: Dict[str, Any]

    def __new__(cls, parts: Dict[str, Any]) -> ActionKey:
        text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        key = super().__new__(cls, "sha256:" + hashlib.sha256(text.encode()).hexdigest())
        key.parts = parts
        return key


def action_key(
    task: luigi.Task,
    settings: Settings,
    signing_key: Optional[bytes],
    inputs: Sequence[InputRef],
    seen: Mapping[InputSlot, Optional[Observation]],
) -> Optional[ActionKey]:
    """The key of ``task`` run on the inputs as fingerprinted in ``seen``; None when one input
    could not be fingerprinted (its content is unknown, so no entry can stand for it)."""
    fingerprints = {
        slot: None if observed is None else observed.fingerprint for slot, observed in seen.items()
    }
    return action_key_of(task, settings, signing_key, inputs, fingerprints)


def action_key_of(
    task: luigi.Task,
    settings: Settings,
    signing_key: Optional[bytes],
    inputs: Sequence[InputRef],
    fingerprints: Mapping[InputSlot, Optional[str]],
) -> Optional[ActionKey]:
    """The key of ``task`` run on inputs with these ``fingerprints`` (by input slot): what a
    run computes from its observations, and ``verify`` from the fingerprints an input will have
    once a stale upstream task is restored."""
    entries: List[Tuple[List[Any], List[Any], str]] = []
    for ref in inputs:
        fingerprint = fingerprints.get(input_slot(ref))
        if fingerprint is None:
            return None
        entries.append((list(ref.key), list(ref.output_key), fingerprint))
    entries.sort(key=lambda item: json.dumps(item[:2]))
    parts: Dict[str, Any] = {
        "version": ACTION_KEY_VERSION,
        "record_schema": SCHEMA_VERSION,
        "algorithm": settings.hash_algorithm,
        "family": task.get_task_family(),
        "params": canonical_params(task, signing_key),
        "code": code_closure(type(task), settings.hash_algorithm).fingerprint,
        "inputs": entries,
    }
    if settings.on_env_change == "rerun":
        parts["environment"] = environment.current_versions()
    return ActionKey(parts)
