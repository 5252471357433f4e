"""The classes of the user's code: which they are, and what describes each.

A task's MRO mixes the user's classes with Luigi's, ours and Python's; only the user's count,
decided by where their module lives, not by their name. A class also has to be matched with the
``class`` statement that made it (a module may hold several of one name, a class may have been
made by ``type(…)`` or ``exec`` with no statement at all), and the methods a library wrote for it
(attrs, dataclasses, ``namedtuple``) told apart from the user's: their code is the library's and
may differ in every process.
"""

from __future__ import annotations

import ast
import sys
import types
from typing import Any, Dict, List, Optional, Tuple

import luigi

from luigi_repro.codeprobe import (
    ClassMemo,
    attribute_of,
    function_in,
    is_class,
    module_name_of,
    mro_of,
    object_at,
    own_items,
)
from luigi_repro.codesource import (
    OUR_PACKAGES,
    ModuleSource,
    is_stdlib_path,
    is_user_namespace,
)
from luigi_repro.codetext import describe_code, describe_value
from luigi_repro.codevalues import class_literals, class_values, literal_matches

__all__ = [
    "class_is_users",
    "class_without_source",
    "describe_function",
    "generated_method",
    "is_task_class",
    "namespace_of_class",
    "own_code_version",
    "pick_class_node",
    "user_classes",
]


def own_code_version(cls: type) -> Optional[str]:
    """The ``code_version`` the class sets itself (not one it inherits), if any."""
    version = cls.__dict__.get("code_version")
    return None if version is None else str(version)


_user_class_cache: ClassMemo[bool] = ClassMemo()


def _is_user_class(cls: type) -> bool:
    """Is this class in the task's MRO the user's code rather than Luigi's, ours or Python's?

    Decided by where its module lives, not by its name. Copies made by
    ``luigi.task.externalize`` (which carry ``__wrapped__``) stand for the class they copy.
    Cached per class: ``complete()`` asks on every call.
    """
    known = _user_class_cache.get(cls)
    if known is None:
        known = _user_class_cache.set(cls, _locate_user_class(cls))
    return known


def _locate_user_class(cls: type) -> bool:
    module = module_name_of(cls)
    if module.partition(".")[0] in OUR_PACKAGES or "__wrapped__" in dict(own_items(cls)):
        return False
    namespace = namespace_of_class(cls)
    if namespace is None:
        # No module: a class made by exec in a namespace of its own (the user's).
        return module not in sys.builtin_module_names
    filename = namespace.get("__file__")
    if not isinstance(filename, str) or not filename:
        return is_user_namespace(namespace)
    # A task base class from an installed package is fingerprinted too (as it always was);
    # only the standard library's are not.
    return not is_stdlib_path(filename)


_user_mro: ClassMemo[Tuple[type, ...]] = ClassMemo()


def user_classes(task_cls: type) -> Tuple[type, ...]:
    """The user classes of a task's MRO, looked up once per class (``complete()`` asks often)."""
    found = _user_mro.get(task_cls)
    if found is None:
        found = _user_mro.set(task_cls, tuple(c for c in task_cls.__mro__ if _is_user_class(c)))
    return found


def class_is_users(cls: type) -> bool:
    """Is a class reached from the task's code the user's (and so a part of the closure)?

    Unlike the task's own classes, one from an installed package is not: the environment
    check covers it.
    """
    module = module_name_of(cls)
    if module.partition(".")[0] in OUR_PACKAGES:
        return False
    namespace = namespace_of_class(cls)
    if namespace is None:
        return module not in sys.builtin_module_names
    return is_user_namespace(namespace)


def is_task_class(value: Any) -> bool:
    """A pipeline step other than configuration: its code reaches others through its outputs.

    Decided from the MRO by identity: ``issubclass`` against Luigi's ABC-based classes hashes
    the class, which some metaclasses forbid.
    """
    if not is_class(value):
        return False
    mro = mro_of(value)
    return any(c is luigi.Task for c in mro) and not any(c is luigi.Config for c in mro)


def namespace_of_class(cls: type) -> Optional[Dict[str, Any]]:
    """The globals of the module that made ``cls``: its functions know them best.

    Not the functions a library generated for the class (attrs gives them globals of their
    own), unless nothing else tells.
    """
    module_name = attribute_of(cls, "__module__")
    fallback: Optional[Dict[str, Any]] = None
    for name, value in own_items(cls):
        func = function_in(value)
        if func is None or func.__globals__.get("__name__") != module_name:
            continue
        if generated_method(cls, name, func, has_source=False):
            fallback = fallback if fallback is not None else func.__globals__
            continue
        return func.__globals__
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    namespace = getattr(module, "__dict__", None)
    if not isinstance(namespace, dict) or _made_by_metaclass_call(cls, namespace):
        return fallback
    return namespace


def _made_by_metaclass_call(cls: type, namespace: Dict[str, Any]) -> bool:
    """Was ``cls`` made by calling its metaclass (``type("T", (Base,), {…})``)?

    Python then names the module whose code called ``type.__new__``: for a Luigi task that is
    ``abc`` (``ABCMeta.__new__``), a module that never defined the class. Where the class was
    made is not known; it is described by itself, as code without source.
    """
    module_name = namespace.get("__name__")
    if not any(attribute_of(meta, "__module__") == module_name for meta in mro_of(type(cls))):
        return False
    return object_at(namespace, str(attribute_of(cls, "__qualname__"))) is not cls


#: Where a library keeps what it generated a class's methods from.
_GENERATOR_MARKERS = ("__attrs_attrs__", "__dataclass_fields__", "_fields")


def generated_method(cls: type, name: str, func: types.FunctionType, has_source: bool) -> bool:
    """A method a library wrote for the class (attrs, dataclasses, ``namedtuple``).

    Its code has no file (``<attrs generated …>``, ``<string>``) and may hold values that
    differ in every process (attrs salts ``__hash__`` with a string hash). When the class has
    source, its statement (decorators included) and the library's version decide such methods;
    without source, only those a known library wrote are left to it.
    """
    filename = func.__code__.co_filename
    if not (filename.startswith("<") and filename.endswith(">")):
        return False
    qualname = getattr(func, "__qualname__", None)
    # dataclasses wraps ``__repr__`` around a function its ``__create_fn__`` made.
    if qualname not in (
        f"{attribute_of(cls, '__qualname__')}.{name}",
        f"__create_fn__.<locals>.{name}",
    ):
        return False
    if has_source or filename.startswith("<attrs generated"):
        return True
    own = dict(own_items(cls))
    return filename == "<string>" and any(marker in own for marker in _GENERATOR_MARKERS)


def pick_class_node(
    cls: type, candidates: List[ast.ClassDef], source: ModuleSource
) -> Optional[ast.ClassDef]:
    """The ``class`` statement that made ``cls`` when its module has several of that name.

    With ``if fast: class T…  else: class T…``, the statement holding the class's own
    functions is the one; failing that, the one whose literal attributes (``LIMIT = 2``) are
    the class's values, the later one when they tie (a name bound twice keeps the last).
    """
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    first = attribute_of(cls, "__firstlineno__")  # Python 3.13+
    if isinstance(first, int):
        for node in candidates:
            if first in (node.lineno, *(d.lineno for d in node.decorator_list)):
                return node
    lines = [
        func.__code__.co_firstlineno
        for name, value in own_items(cls)
        for func in [function_in(value)]
        if func is not None and source.holds(func.__code__)
    ]
    if lines:
        inside = min(lines)
        for node in candidates:
            if node.lineno <= inside <= (node.end_lineno or node.lineno):
                return node
    scores = [literal_matches(cls, class_literals(node)) for node in candidates]
    best = min(range(len(candidates)), key=lambda i: (scores[i][0], -scores[i][1], -i))
    return candidates[best]


def class_without_source(cls: type) -> str:
    """A class made by ``exec``, ``type(…)`` or in a notebook: its functions and plain values.

    Methods a library generated for it count by their plain default values only (their code
    is the library's, and may differ in every process).
    """
    described = []
    for name, value in sorted(own_items(cls), key=lambda item: item[0]):
        func = function_in(value)
        if func is None:
            continue
        if generated_method(cls, name, func, has_source=False):
            described.append(f"{name}=generated:{_describe_defaults(func)}")
        else:
            described.append(f"{name}={describe_function(func)}")
    values = class_values(cls, None, nested=True)
    return ";".join(described) + ("\nvalues:" + values if values else "")


def describe_function(func: types.FunctionType) -> str:
    """A function without source: its bytecode and its plain default values."""
    return describe_code(func.__code__) + "|" + _describe_defaults(func)


def _describe_defaults(func: types.FunctionType) -> str:
    """Plain default values, which code without source does not show ("" for other objects)."""
    defaults = describe_value(tuple(func.__defaults__ or ()))
    keywords = describe_value(dict(func.__kwdefaults__ or {}))
    return f"{defaults or ''}|{keywords or ''}"
