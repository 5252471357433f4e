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
import functools
import hashlib
import hmac
import inspect
import json
import linecache
import os
import sys
import sysconfig
import threading
import types
import weakref
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import luigi
from luigi.parameter import ParameterVisibility

from luigi_repro.errors import ParameterError
from luigi_repro.fingerprint import hash_bytes

__all__ = [
    "canonical_params",
    "capture_code",
    "class_params",
    "code_fingerprint",
    "code_version_of",
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
        _signature(cls) if version is None else f"{cls.__qualname__}:code_version:{version}"
        for cls, version in zip(classes, versions)
    ]
    fingerprint = hash_bytes("\0".join(parts).encode(), algorithm)
    with _code_lock:
        _code_cache[cache_key] = fingerprint
    return fingerprint


@functools.cache
def _stdlib_prefixes() -> Tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {
        os.path.realpath(p) + os.sep for p in (paths.get("stdlib"), paths.get("platstdlib")) if p
    }
    return tuple(found)


_user_class_cache: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def _is_user_class(cls: type) -> bool:
    """Is this class the user's code (fingerprinted) rather than Luigi's, ours or Python's?

    Decided by where its module lives, not by its name, so a pipeline module that happens to be
    called like a standard-library one (``profile.py``) is still the user's. Copies made by
    ``luigi.task.externalize`` (which carry ``__wrapped__``) stand for the class they copy.
    Cached per class: a class's module does not move (``complete()`` asks on every call).
    """
    known = _user_class_cache.get(cls)
    if known is None:
        known = _user_class_cache[cls] = _locate_user_class(cls)
    return known


def _locate_user_class(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    if module.split(".", 1)[0] in _OUR_PACKAGES or "__wrapped__" in cls.__dict__:
        return False
    filename = getattr(sys.modules.get(module), "__file__", None)
    if not filename:
        # No file: a built-in module (Python's), or code typed into __main__ (the user's).
        return module not in sys.builtin_module_names and module != "builtins"
    path = os.path.realpath(filename)
    in_packages = "site-packages" in path or "dist-packages" in path
    return in_packages or not path.startswith(_stdlib_prefixes())


def _user_classes(task_cls: type) -> Iterator[type]:
    for cls in task_cls.__mro__:
        if _is_user_class(cls):
            yield cls


_signatures: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def capture_code(task_cls: type) -> None:
    """Read the source of a task class and its user-defined bases now, at class creation.

    The fingerprint must describe the code that runs, not a file edited on disk since it was
    imported (a record written later would otherwise vouch for code that never ran).
    """
    for cls in _user_classes(task_cls):
        _signature(cls)


def _signature(cls: type) -> str:
    with _code_lock:
        cached = _signatures.get(cls)
    if cached is None:
        cached = _class_signature(cls)
        with _code_lock:
            _signatures.setdefault(cls, cached)
    return cached


def _class_signature(cls: type) -> str:
    """The normalized AST of a class, or of its code objects when its source cannot be found."""
    node = _class_node(cls)
    if node is None:
        return f"{cls.__qualname__}:bytecode:" + _bytecode_signature(cls)
    _strip_docstrings(node)
    return f"{cls.__qualname__}:ast:" + ast.dump(
        node, annotate_fields=False, include_attributes=False
    )


def _class_node(cls: type) -> Optional[ast.ClassDef]:
    """The ``class`` statement that made ``cls`` in its module's source, or None.

    Matched by qualified name; when a module defines the name more than once (``if fast: class
    T…  else: class T…``), the statement holding the class's own functions is the one.
    """
    try:
        filename = inspect.getsourcefile(cls)
        module = sys.modules.get(cls.__module__)
        if not filename:
            return None
        linecache.checkcache(filename)  # the file may have changed since it was last read
        lines = linecache.getlines(filename, getattr(module, "__dict__", None))
        tree = ast.parse("".join(lines))
    except (OSError, TypeError, SyntaxError, ValueError):
        return None
    candidates = [
        node for qualname, node in _class_defs(tree.body, "") if qualname == cls.__qualname__
    ]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    first = getattr(cls, "__firstlineno__", None)  # Python 3.13+
    if isinstance(first, int):
        for node in candidates:
            starts = [node.lineno, *(d.lineno for d in node.decorator_list)]
            if first in starts:
                return node
    lines_of_functions = [
        code.co_firstlineno
        for value in vars(cls).values()
        for code in [_code_of(value)]
        if code is not None and os.path.realpath(code.co_filename) == os.path.realpath(filename)
    ]
    if lines_of_functions:
        inside = min(lines_of_functions)
        for node in candidates:
            if node.lineno <= inside <= (node.end_lineno or node.lineno):
                return node
    return candidates[0]


def _class_defs(body: List[ast.stmt], prefix: str) -> Iterator[Tuple[str, ast.ClassDef]]:
    """Every class statement in ``body`` (at any depth) with its ``__qualname__``."""
    for node in body:
        if isinstance(node, ast.ClassDef):
            qualname = prefix + node.name
            yield qualname, node
            yield from _class_defs(node.body, qualname + ".")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _class_defs(node.body, prefix + node.name + ".<locals>.")
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    nested = [c for c in children if isinstance(c, ast.stmt)]
                    for handler in children:
                        if isinstance(handler, ast.ExceptHandler):
                            nested.extend(handler.body)
                    yield from _class_defs(nested, prefix)


def _code_of(value: Any) -> Optional[types.CodeType]:
    func = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
    if isinstance(func, property):
        func = func.fget
    if callable(func):
        func = inspect.unwrap(func)  # our run() wrapper, functools.wraps decorators
    code = getattr(func, "__code__", None)
    return code if isinstance(code, types.CodeType) else None


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
        code = _code_of(value)
        if code is not None:
            parts.append(f"{name}=" + _describe_code(code))
    return ";".join(parts)


def _describe_code(code: types.CodeType) -> str:
    consts: Iterable[Any] = (
        _describe_code(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    )
    return f"{code.co_code.hex()}|{','.join(consts)}|{','.join(code.co_names)}"
