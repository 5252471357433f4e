"""What a task is, apart from its inputs: canonical parameters and a fingerprint of its code.

Parameters come from ``to_str_params(only_significant=True)``: insignificant parameters never make
a task stale. Luigi serializes ``DictParameter`` in insertion order and a set in hash order, so
JSON-valued parameters are parsed and kept as JSON (dumped later with sorted keys), and sets are
refused because no order of theirs is stable across processes.

The code fingerprint covers the normalized source (the AST, so comments, docstrings and formatting
do not count) of the task class and its user-defined base classes — not Luigi's, not ours, not the
standard library's. A class that sets ``code_version = "…"`` contributes that string instead of
its source, for explicit control.
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
import sysconfig
import textwrap
import threading
import types
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import luigi

from luigi_repro.errors import ParameterError
from luigi_repro.fingerprint import hash_bytes

__all__ = [
    "canonical_params",
    "class_params",
    "code_fingerprint",
    "code_version_of",
    "diff_params",
    "reject_sets",
]

_JSON_PARAMETERS: Tuple[type, ...] = (
    luigi.DictParameter,
    luigi.ListParameter,
    luigi.TupleParameter,
)

_OUR_PACKAGES = frozenset({"luigi", "luigi_repro", "builtins"})


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
        if isinstance(param, _JSON_PARAMETERS):
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


# --- code fingerprint ----------------------------------------------------------------------------


def code_version_of(task_cls: type) -> Optional[str]:
    """The explicit ``code_version`` in force for a class (its own or inherited), if any."""
    version = getattr(task_cls, "code_version", None)
    if version is None:
        return None
    return str(version)


def _own_code_version(cls: type) -> Optional[str]:
    version = cls.__dict__.get("code_version")
    return None if version is None else str(version)


_code_cache: Dict[Tuple[Any, ...], str] = {}
_code_lock = threading.Lock()


def code_fingerprint(task_cls: type, algorithm: str) -> str:
    """The fingerprint of a task class's code, cached per class and ``code_version`` values.

    Each user class contributes its own ``code_version`` when it sets one, else its normalized
    source: a subclass of a versioned base still has its own changes seen.
    """
    classes = list(_user_classes(task_cls))
    versions = tuple(_own_code_version(cls) for cls in classes)
    cache_key = (task_cls, algorithm, versions)
    with _code_lock:
        cached = _code_cache.get(cache_key)
    if cached is not None:
        return cached
    parts = [
        _class_signature(cls) if version is None else f"{cls.__qualname__}:code_version:{version}"
        for cls, version in zip(classes, versions)
    ]
    fingerprint = hash_bytes("\0".join(parts).encode(), algorithm)
    with _code_lock:
        _code_cache[cache_key] = fingerprint
    return fingerprint


def _stdlib_prefixes() -> Tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(p for p in (paths.get("stdlib"), paths.get("platstdlib")) if p)


def _is_user_class(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    top = module.split(".", 1)[0]
    if top in _OUR_PACKAGES:
        return False
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return top not in names
    # Python 3.9 has no stdlib_module_names: tell standard-library classes by where they live.
    if top in sys.builtin_module_names:  # pragma: no cover - Python 3.9 only
        return False
    filename = getattr(sys.modules.get(module), "__file__", None) or ""  # pragma: no cover
    in_stdlib = filename.startswith(_stdlib_prefixes()) and "-packages" not in filename
    return not in_stdlib  # pragma: no cover - Python 3.9 only


def _user_classes(task_cls: type) -> Iterator[type]:
    for cls in task_cls.__mro__:
        if _is_user_class(cls):
            yield cls


def _class_signature(cls: type) -> str:
    """The normalized AST of a class, or of its code objects when its source cannot be found."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return f"{cls.__qualname__}:bytecode:" + _bytecode_signature(cls)
    _strip_docstrings(tree)
    return f"{cls.__qualname__}:ast:" + ast.dump(
        tree, annotate_fields=False, include_attributes=False
    )


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


def _bytecode_signature(cls: type) -> str:
    """A deterministic description of the class's functions: bytecode, constants and names.

    Used only when the source is unavailable (a class made in a notebook cell or by ``exec``);
    line numbers are left out, docstrings are not.
    """
    parts = []
    for name, value in sorted(vars(cls).items()):
        func = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        if isinstance(func, property):
            func = func.fget
        code = getattr(func, "__code__", None)
        if isinstance(code, types.CodeType):
            parts.append(f"{name}=" + _describe_code(code))
    return ";".join(parts)


def _describe_code(code: types.CodeType) -> str:
    consts: Iterable[Any] = (
        _describe_code(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    )
    return f"{code.co_code.hex()}|{','.join(consts)}|{','.join(code.co_names)}"
