"""What a task is, apart from its inputs and code: its canonical parameters.

Parameters come from ``to_str_params(only_significant=True)``: insignificant parameters never make
a task stale. Luigi serializes ``DictParameter`` in insertion order and a set in hash order, so
JSON-valued parameters are parsed and kept as JSON (dumped later with sorted keys), and sets are
refused because no order of theirs is stable across processes. The task's code is fingerprinted
by :mod:`luigi_repro.codeclosure`.
"""

from __future__ import annotations

import hashlib
import hmac
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
    "secret_digest",
]

_JSON_PARAMETERS: Tuple[type, ...] = (
    luigi.DictParameter,
    luigi.ListParameter,
    luigi.TupleParameter,
)

_SECRET_VISIBILITIES = (ParameterVisibility.HIDDEN, ParameterVisibility.PRIVATE)


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


def canonical_params(task: luigi.Task, signing_key: Optional[bytes] = None) -> Dict[str, Any]:
    """The task's significant parameters as JSON values, independent of insertion order.

    ``HIDDEN`` and ``PRIVATE`` values (which often hold secrets) are kept only as digests, keyed
    with ``signing_key`` when one is configured (see :func:`secret_digest`). ``PRIVATE`` ones
    count too: Luigi's ``to_str_params()`` drops them, but a significant one still changes what
    the task makes.

    Kept on the instance (per key): parameters never change after ``__init__``, so this is a
    property of the task, not a verdict that could go stale.
    """
    cached: Optional[Tuple[Optional[bytes], Dict[str, Any]]]
    cached = task.__dict__.get("_luigi_repro_canonical")
    if cached is None or cached[0] != signing_key:
        cached = (signing_key, _canonical_params(task, signing_key))
        task.__dict__["_luigi_repro_canonical"] = cached
    return cached[1]


def secret_digest(name: str, text: str, signing_key: Optional[bytes]) -> str:
    """What a record keeps of a hidden or private parameter value: a digest of it.

    With a signing key it is an HMAC, which nobody without the key can test guesses against;
    without one it is a plain SHA-256, which a dictionary of likely values can reverse (the
    README says so).
    """
    data = f"{name}={text}".encode("utf-8", "surrogatepass")
    if signing_key:
        return "hidden:hmac-sha256:" + hmac.new(signing_key, data, hashlib.sha256).hexdigest()
    return "hidden:" + hash_bytes(data, "sha256")


def _canonical_params(task: luigi.Task, signing_key: Optional[bytes]) -> Dict[str, Any]:
    params = dict(task.get_params())
    texts: Dict[str, str] = task.to_str_params(only_significant=True)
    for name, value in task.param_kwargs.items():
        param = params.get(name)
        private = getattr(param, "visibility", None) == ParameterVisibility.PRIVATE
        if private and param is not None and param.significant and name not in texts:
            texts[name] = param.serialize(value)
    result: Dict[str, Any] = {}
    for name in [name for name, _ in task.get_params() if name in texts]:
        text = texts[name]
        param = params.get(name)
        if getattr(param, "visibility", None) in _SECRET_VISIBILITIES:
            # A record beside shared data keeps only a digest, which still changes whenever
            # the value does.
            result[name] = secret_digest(name, text, signing_key)
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
