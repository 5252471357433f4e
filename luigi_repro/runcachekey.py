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
import sys
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
    code = code_closure(type(task), settings.hash_algorithm)
    if code.error is not None:
        return None  # a closure that matches no record must not match an entry either
    configuration = config_values(code.parts)
    if configuration is None:
        return None
    parts: Dict[str, Any] = {
        "version": ACTION_KEY_VERSION,
        "record_schema": SCHEMA_VERSION,
        "algorithm": settings.hash_algorithm,
        "family": task.get_task_family(),
        "params": canonical_params(task, signing_key),
        "code": code.fingerprint,
        "config": configuration,
        "inputs": entries,
    }
    if settings.on_env_change == "rerun":
        # What a record compares under this policy: the interpreter, Luigi and the versions of
        # every imported distribution (a key made in a process that imported less only misses).
        parts["environment"] = environment.current_versions()
        parts["packages"] = environment.imported_packages()
    return ActionKey(parts)


def config_values(code_parts: Mapping[str, str]) -> Optional[Dict[str, Dict[str, str]]]:
    """The values of the ``luigi.Config`` classes the task's code uses, by class name.

    Records compare a configuration class's source, not the values ``luigi.cfg`` gives it (the
    README says so). An entry would widen that: switching a parameter back would restore an
    output made under another value. So the values are part of the key. None when one cannot
    be read (the task then runs, and is not cached).
    """
    values: Dict[str, Dict[str, str]] = {}
    for part in code_parts:
        if not part.startswith("class "):
            continue
        cls = _class_named(part[len("class ") :])
        if cls is None or not issubclass(cls, luigi.Config):
            continue
        try:
            values[part] = dict(cls().to_str_params())
        except Exception:  # noqa: BLE001 - an unreadable configuration: no key, no restore
            return None
    return values


def _class_named(dotted: str) -> Optional[type]:
    """The class ``module.Qual.Name`` among the imported modules, or None."""
    pieces = dotted.split(".")
    for cut in range(len(pieces) - 1, 0, -1):
        module = sys.modules.get(".".join(pieces[:cut]))
        if module is None:
            continue
        found: Any = module
        for name in pieces[cut:]:
            found = getattr(found, name, None)
        return found if isinstance(found, type) else None
    return None
