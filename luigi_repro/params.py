"""What a task is, apart from its inputs and code: its canonical parameters.

Parameters come from ``to_str_params(only_significant=True)``: insignificant parameters never make
a task stale. Luigi serializes ``DictParameter`` in insertion order and a set in hash order, so
JSON-valued parameters are parsed and kept as JSON (dumped later with sorted keys), and sets are
refused because no order of theirs is stable across processes. The task's code is fingerprinted
by :mod:`luigi_repro.codeclosure`.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import luigi
from luigi.parameter import ParameterVisibility

from luigi_repro.errors import ParameterError
from luigi_repro.fingerprint import hash_bytes

__all__ = [
    "canonical_params",
    "class_params",
    "diff_params",
    "reject_sets",
]

_JSON_PARAMETERS: Tuple[type, ...] = (
    luigi.DictParameter,
    luigi.ListParameter,
    luigi.TupleParameter,
)


def reject_sets(task_family: str, values: Mapping[str, Any]) -> None:
    """Raise :class:`ParameterError` if any parameter value holds a set, at any depth."""
    for name, value in values.items():
        if _holds_set(value):
            raise ParameterError(
                f"parameter {name!r} of {task_family} was given a set, whose order changes "
                "between processes; pass a sorted list or tuple instead."
            )


def _holds_set(value: Any) -> bool:
    if isinstance(value, (set, frozenset)):
        return True
    if isinstance(value, Mapping):
        return any(_holds_set(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_set(v) for v in value)
    return False


def class_params(
    cls: type, compute: Callable[[], List[Tuple[str, luigi.Parameter]]]
) -> List[Tuple[str, luigi.Parameter]]:
    """``cls.get_params()``, computed once per class.

    Luigi recomputes it on every call with ``dir()`` over the whole class (tens of
    microseconds), and calls it for every instantiation and every ``to_str_params()``.
    Parameters are class attributes, so the answer holds until a class namespace changes.
    """
    # Decorators such as luigi.util.inherits add parameters after the class is made: any change
    # to a class namespace in the MRO changes this shape and recomputes the answer.
    shape = tuple(len(klass.__dict__) for klass in cls.__mro__)
    cached = cls.__dict__.get("_luigi_repro_params")
    if cached is None or cached[0] != shape:
        params = tuple(compute())
        type.__setattr__(cls, "_luigi_repro_params", (None, params))  # the slot counts in shape
        cached = (tuple(len(klass.__dict__) for klass in cls.__mro__), params)
        type.__setattr__(cls, "_luigi_repro_params", cached)
    return list(cached[1])


def canonical_params(task: luigi.Task) -> Dict[str, Any]:
    """The task's significant parameters as JSON values, independent of insertion order.

    Kept on the instance: parameters never change after ``__init__``, so this is a property of
    the task, not a verdict that could go stale.
    """
    cached: Optional[Dict[str, Any]] = task.__dict__.get("_luigi_repro_canonical")
    if cached is None:
        cached = task.__dict__["_luigi_repro_canonical"] = _canonical_params(task)
    return cached


def _canonical_params(task: luigi.Task) -> Dict[str, Any]:
    params = dict(task.get_params())
    result: Dict[str, Any] = {}
    for name, text in task.to_str_params(only_significant=True).items():
        param = params.get(name)
        if getattr(param, "visibility", None) == ParameterVisibility.HIDDEN:
            # Hidden parameters often hold secrets: a record beside shared data keeps only a
            # digest, which still changes whenever the value does.
            result[name] = "hidden:" + hash_bytes(f"{name}={text}".encode(), "sha256")
        elif isinstance(param, _JSON_PARAMETERS):
            try:
                result[name] = json.loads(text)
            except ValueError:
                result[name] = text
        else:
            result[name] = text
    return result


def diff_params(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> Dict[str, Tuple[Optional[Any], Optional[Any]]]:
    """``{name: (old, new)}`` for every parameter that was added, removed or changed.

    Values are compared by their sorted-key JSON form, so ``{"a":1,"b":2}`` equals
    ``{"b":2,"a":1}``. A missing side is None.
    """
    changed: Dict[str, Tuple[Optional[Any], Optional[Any]]] = {}
    if old == new:  # JSON values: dict equality ignores key order already
        return changed
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if name not in old or name not in new or _canon(before) != _canon(after):
            changed[name] = (before, after)
    return changed


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
