"""What counts as a task's code: everything of the user's that its class can reach.

Real pipelines keep their logic in helper modules and constants, not in the task class, so the
code fingerprint is a *closure*: the task class, its user-defined base classes, and every
user-defined class, module-level function and module-level constant reachable from them, through
global names, attributes of imported user modules (``preproc.impute``, ``cfg.THRESHOLD``),
``from x import name`` (followed to the module that defines it), imports inside functions,
closure cells, default arguments, decorators (and ``__wrapped__`` chains), base classes and class
attributes, recursively. It stops at installed code (see :mod:`luigi_repro.codesource`), which
the environment check covers.

Each piece reached is one *part* with its own digest, so a report can name what changed
(``function utils.preproc.impute changed``):

* a class or module-level function: its normalized source (the AST, so comments, docstrings,
  formatting and line numbers never count); a method is part of its class, a nested function
  part of the function or class around it;
* a constant: the module-level statements that bind it (``THRESHOLD = 0.5``), with the ``if``
  tests around them, and whatever names they use in turn; a value bound where the source does
  not show it is described by its value when it is plain data (numbers, strings, and tuples,
  lists, dicts and sets of them);
* code without source (``exec``, a REPL) is described by its bytecode, constants and names.

Other task classes are pipeline steps with records of their own: code that merely instantiates
or names them (``requires()``, ``@requires(Clean)``, ``yield Clean(…)``) does not take in their
code, which reaches this task through their outputs; code that uses their attributes
(``Clean.normalize(x)``) does. ``luigi.Config`` classes are configuration and always count.

References that cannot be followed statically (``getattr(module, name)`` on a user module or
class, ``exec``, ``eval``, ``importlib.import_module(name)``, ``globals()[…]``) are listed as
*unresolved*, with where they are, and logged once per class: the fingerprint cannot vouch for
what they reach. A class that sets ``code_version = "…"`` contributes that string instead of its
source and of everything reached from it.

The closure is computed the first time it is needed (helpers defined below a class do not exist
when the class is created) and cached per class, algorithm and ``code_version`` values, so asking
again is a dictionary lookup: ``complete()`` asks on every check.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import importlib.util
import sys
import threading
import types
import weakref
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

import attrs
import luigi

from luigi_repro.coderefs import (
    References,
    Use,
    bound_names,
    bytecode_uses,
    definition_names,
)
from luigi_repro.codesource import (
    Binding,
    ModuleSource,
    Scope,
    first_line,
    is_stdlib_path,
    is_user_namespace,
    note_task_module,
    on_reload,
    snapshot_imported_modules,
    source_of_namespace,
)
from luigi_repro.fingerprint import hash_bytes
from luigi_repro.log import logger

__all__ = [
    "CodeClosure",
    "capture_code",
    "code_closure",
    "code_fingerprint",
    "code_version_of",
    "diff_parts",
    "legacy_code_fingerprint",
    "relative_part_key",
]

_OUR_PACKAGES = frozenset({"luigi", "luigi_repro", "builtins"})
_FORMAT = "luigi_repro code closure 1"
_MISSING = object()


@attrs.frozen
class CodeClosure:
    """The code a task class's outputs depend on.

    ``parts`` maps each piece (``"function utils.preproc.impute"``, ``"constant
    utils.config.THRESHOLD"``, ``"class pipeline.Train"``) to the digest of its normalized
    source; ``fingerprint`` covers them all; ``unresolved`` lists the references the closure
    could not follow, each with where it is.
    """

    fingerprint: str
    parts: Mapping[str, str]
    unresolved: Tuple[str, ...]


# --- public API ----------------------------------------------------------------------------------


def code_version_of(task_cls: type) -> Optional[str]:
    """The explicit ``code_version`` in force for a class (its own or inherited), if any."""
    version = getattr(task_cls, "code_version", None)
    if version is None:
        return None
    return str(version)


def _own_code_version(cls: type) -> Optional[str]:
    version = cls.__dict__.get("code_version")
    return None if version is None else str(version)


_closures: Dict[Tuple[type, str, Tuple[Optional[str], ...]], CodeClosure] = {}
_closures_lock = threading.Lock()
_compute_lock = threading.RLock()


def code_closure(task_cls: type, algorithm: str) -> CodeClosure:
    """The code closure of a task class, cached per class, algorithm and ``code_version`` values.

    Each user class of the task (the class and its user base classes) contributes its own
    ``code_version`` when it sets one, else its source and everything reached from it: a
    subclass of a versioned base still has its own changes seen.
    """
    classes = _user_classes(task_cls)
    cache_key = (task_cls, algorithm, tuple(_own_code_version(cls) for cls in classes))
    cached = _closures.get(cache_key)
    if cached is not None:
        return cached
    with _compute_lock:  # one walk at a time: a walk leaves half-built entries behind it
        closure = _closures.get(cache_key) or _compute(task_cls, classes, algorithm)
    with _closures_lock:
        closure = _closures.setdefault(cache_key, closure)
    if closure.unresolved:
        _warn_unresolved(task_cls, closure.unresolved)
    return closure


def code_fingerprint(task_cls: type, algorithm: str) -> str:
    """The fingerprint of a task class's code closure (see :func:`code_closure`)."""
    return code_closure(task_cls, algorithm).fingerprint


def capture_code(task_cls: type) -> None:
    """At class creation, keep the source of the class's module and of user modules imported.

    The fingerprint must describe the code that runs, not files edited on disk later. The
    closure itself is computed on first use, when the module has finished executing.
    """
    note_task_module(task_cls.__module__)
    namespace = _namespace_of_class(task_cls)
    if namespace is not None:
        source_of_namespace(namespace)
    snapshot_imported_modules()


def legacy_code_fingerprint(task_cls: type, algorithm: str) -> str:
    """The fingerprint earlier versions recorded: the task's user classes only, no helpers.

    It tells whether a record written before the closure existed saw the same classes, so
    that such a record can be told apart from a real change.
    """
    signatures = []
    for cls in _user_classes(task_cls):
        version = _own_code_version(cls)
        if version is not None:
            signatures.append(f"{cls.__qualname__}:code_version:{version}")
            continue
        part = _part_of_class(cls)
        if isinstance(part.node, ast.ClassDef):
            signatures.append(f"{cls.__qualname__}:ast:{_dump(part.node)}")
        else:
            signatures.append(f"{cls.__qualname__}:bytecode:{_bytecode_signature(cls)}")
    return hash_bytes("\0".join(signatures).encode(), algorithm)


def relative_part_key(key: str, module: str) -> str:
    """``key`` with the task's own module left out (``"class pipeline.T"`` -> ``"class .T"``).

    The same task run as ``python pipeline.py`` (module ``__main__``) and as ``luigi --module
    pipeline`` has the same code; only its module's name differs.
    """
    kind, _, rest = key.partition(" ")
    if rest.startswith(module + "."):
        return f"{kind} {rest[len(module) :]}"
    return key


def diff_parts(
    old: Mapping[str, str], new: Mapping[str, str], old_module: str, new_module: str
) -> Dict[str, List[str]]:
    """``{"changed": [...], "added": [...], "removed": [...]}``: part keys, sorted.

    When the task's module was known under another name (``__main__``), its own parts are
    matched whatever the name.
    """
    if old_module != new_module:
        old_names = {relative_part_key(key, old_module): key for key in old}
        new_names = {relative_part_key(key, new_module): key for key in new}
    else:
        old_names = {key: key for key in old}
        new_names = {key: key for key in new}
    return {
        "changed": sorted(
            new_names[k]
            for k in new_names
            if k in old_names and old[old_names[k]] != new[new_names[k]]
        ),
        "added": sorted(new_names[k] for k in new_names if k not in old_names),
        "removed": sorted(old_names[k] for k in old_names if k not in new_names),
    }


_warned: weakref.WeakSet[type] = weakref.WeakSet()
_warned_lock = threading.Lock()


def _warn_unresolved(task_cls: type, unresolved: Tuple[str, ...]) -> None:
    with _warned_lock:
        if task_cls in _warned:
            return
        _warned.add(task_cls)
    logger.warning(
        "luigi_repro: the code fingerprint of %s cannot follow %s; code reached only through "
        "them is not checked (set code_version on the class to decide yourself when it changes).",
        task_cls.__name__,
        "; ".join(unresolved),
    )


def _forget_everything() -> None:
    """A module ran again (``importlib.reload``): what was learned from it may be stale."""
    with _closures_lock:
        _closures.clear()
    _function_reach.clear()
    _class_reach.clear()


on_reload(_forget_everything)


# --- which classes are the task's own ------------------------------------------------------------


_user_class_cache: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def _is_user_class(cls: type) -> bool:
    """Is this class in the task's MRO the user's code rather than Luigi's, ours or Python's?

    Decided by where its module lives, not by its name. Copies made by
    ``luigi.task.externalize`` (which carry ``__wrapped__``) stand for the class they copy.
    Cached per class: ``complete()`` asks on every call.
    """
    known = _user_class_cache.get(cls)
    if known is None:
        known = _user_class_cache[cls] = _locate_user_class(cls)
    return known


def _locate_user_class(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    if module.split(".", 1)[0] in _OUR_PACKAGES or "__wrapped__" in cls.__dict__:
        return False
    namespace = _namespace_of_class(cls)
    if namespace is None:
        # No module: a class made by exec in a namespace of its own (the user's).
        return module not in sys.builtin_module_names
    filename = namespace.get("__file__")
    if not isinstance(filename, str) or not filename:
        return is_user_namespace(namespace)
    # A task base class from an installed package is fingerprinted too (as it always was);
    # only the standard library's are not.
    return not is_stdlib_path(filename)


_user_mro: weakref.WeakKeyDictionary[type, Tuple[type, ...]] = weakref.WeakKeyDictionary()


def _user_classes(task_cls: type) -> Tuple[type, ...]:
    """The user classes of a task's MRO, looked up once per class (``complete()`` asks often)."""
    found = _user_mro.get(task_cls)
    if found is None:
        found = _user_mro[task_cls] = tuple(c for c in task_cls.__mro__ if _is_user_class(c))
    return found


def _namespace_of_class(cls: type) -> Optional[Dict[str, Any]]:
    """The globals of the module that made ``cls``: its functions know them best."""
    module_name = getattr(cls, "__module__", None)
    for value in vars(cls).values():
        func = _function_in(value)
        if func is not None and func.__globals__.get("__name__") == module_name:
            return func.__globals__
    module = sys.modules.get(module_name or "")
    namespace = getattr(module, "__dict__", None)
    return namespace if isinstance(namespace, dict) else None


def _function_in(value: Any) -> Optional[types.FunctionType]:
    """The plain function behind a class attribute (method, static/class method, property)."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    elif isinstance(value, property):
        value = value.fget
    for _ in range(16):
        if isinstance(value, types.FunctionType) and "__wrapped__" not in vars(value):
            return value
        wrapped = getattr(value, "__wrapped__", None)
        if wrapped is None:
            break
        value = wrapped
    return value if isinstance(value, types.FunctionType) else None


def _is_task_class(value: Any) -> bool:
    """A pipeline step other than configuration: its code reaches others through its outputs."""
    return (
        isinstance(value, type)
        and issubclass(value, luigi.Task)
        and not issubclass(value, luigi.Config)
    )


# --- parts ---------------------------------------------------------------------------------------


Node = Union[ast.AST, Tuple[Binding, ...], None]


class _Part:
    """One class, module-level function or module-level constant of the user's code."""

    __slots__ = ("_material", "expansion", "kind", "name", "node", "obj", "source")

    def __init__(
        self,
        kind: str,
        source: ModuleSource,
        name: str,
        node: Node,
        obj: Any = None,
        material: Optional[str] = None,
    ) -> None:
        self.kind = kind
        self.source = source
        self.name = name
        self.node = node
        self.obj = obj
        self._material = material
        self.expansion: Optional[_Reach] = None

    @property
    def module(self) -> str:
        return self.source.name

    @property
    def key(self) -> str:
        return f"{self.kind} {self.module}.{self.name}"

    @property
    def material(self) -> str:
        """The normalized text whose digest stands for this part."""
        if self._material is None:
            node = self.node
            if isinstance(node, tuple):
                self._material = "\n".join(_binding_text(binding) for binding in node)
            elif node is not None:
                self._material = _dump(node)
            else:
                self._material = ""
        return self._material


@attrs.frozen
class _Reach:
    """Parts something reaches directly, and what it uses that cannot be followed."""

    parts: Tuple[_Part, ...] = ()
    unresolved: Tuple[str, ...] = ()


_NOTHING = _Reach()


def _joined(reaches: Iterable[_Reach]) -> _Reach:
    parts: List[_Part] = []
    unresolved: List[str] = []
    for reach in reaches:
        parts.extend(reach.parts)
        unresolved.extend(reach.unresolved)
    if not parts and not unresolved:
        return _NOTHING
    return _Reach(tuple(parts), tuple(unresolved))


def _part(
    source: ModuleSource,
    kind: str,
    name: str,
    node: Node,
    obj: Any = None,
    material: Optional[str] = None,
) -> _Part:
    """The one part for this piece of this module's source (parts are shared by all closures)."""
    parts: Dict[Tuple[str, str, int], _Part] = source.analyses.setdefault("parts", {})
    cache_key = (kind, name, id(node) if isinstance(node, ast.AST) else 0)
    found = parts.get(cache_key)
    if found is None:
        found = parts.setdefault(cache_key, _Part(kind, source, name, node, obj, material))
    if found.obj is None and obj is not None:
        found.obj = obj
    return found


# --- the walk ------------------------------------------------------------------------------------


def _compute(task_cls: type, classes: Tuple[type, ...], algorithm: str) -> CodeClosure:
    roots = [_part_of_class(cls) for cls in classes]
    materials: Dict[_Part, str] = {}
    unresolved: Dict[str, None] = {}
    stack = list(reversed(roots))
    while stack:
        part = stack.pop()
        if part in materials:
            continue
        version = _version_of(part)
        if version is not None:
            materials[part] = f"code_version:{version}"
            continue
        materials[part] = part.material
        reach = _expand(part)
        unresolved.update(dict.fromkeys(reach.unresolved))
        stack.extend(reversed(reach.parts))
    digests: Dict[str, str] = {}
    relative: Dict[str, str] = {}
    module = task_cls.__module__
    for part, material in materials.items():
        digest = hash_bytes(material.encode("utf-8", "backslashreplace"), algorithm)
        if part.key in digests:  # two definitions under one name (``if …: def f`` / ``else``)
            digest = hash_bytes("\0".join(sorted((digests[part.key], digest))).encode(), algorithm)
        digests[part.key] = digest
        own = part.module == module
        relative[part.key] = f"{part.kind} {'' if own else part.module}.{part.name}"
    lines = sorted(f"{relative[key]}={value}" for key, value in digests.items())
    fingerprint = hash_bytes("\n".join([_FORMAT, *lines]).encode(), algorithm)
    return CodeClosure(
        fingerprint=fingerprint,
        parts=dict(sorted(digests.items())),
        unresolved=tuple(sorted(unresolved)),
    )


def _version_of(part: _Part) -> Optional[str]:
    if part.kind != "class":
        return None
    cls = part.obj if part.obj is not None else _object_at(part.source, part.name)
    return _own_code_version(cls) if isinstance(cls, type) else None


def _expand(part: _Part) -> _Reach:
    """Everything ``part`` reaches directly (computed once per part)."""
    if part.expansion is None:
        part.expansion = _expansion(part) if part.source.user else _NOTHING
    return part.expansion


def _expansion(part: _Part) -> _Reach:
    source, node = part.source, part.node
    index = source.index
    if isinstance(node, tuple):  # a constant: its binding statements
        where = f"constant {part.module}.{part.name}"
        pieces = [h for binding in node for _, h in binding.headers]
        pieces.extend(binding.statement for binding in node)
        return _joined(_references(source, piece, where, None) for piece in pieces)
    if node is None:  # no source: its bytecode
        return _bytecode_expansion(part)
    reaches: List[_Reach] = []
    scope = index.scope_of(node) if index is not None else None
    if scope is not None:
        names = index.global_names(scope) if index is not None else None
        reaches.append(_references(source, node, _where_of(part), names))
        enclosing = next(
            (p for p in reversed(scope.parents) if not isinstance(p, ast.ClassDef)), None
        )
        if enclosing is not None and index is not None:
            outer = index.scope_of(enclosing)
            if outer is not None:  # a class made inside a function: the function counts
                reaches.append(_Reach(tuple(_parts_of_scope(source, outer, None))))
    else:
        assert isinstance(node, ast.AST)
        reaches.append(_references(source, node, _where_of(part), None))
    obj = part.obj if part.obj is not None else _object_at(source, part.name)
    if part.kind == "class" and isinstance(obj, type):
        reaches.extend(_reach_of_object(base) for base in obj.__bases__)
        reaches.extend(_reach_of_attributes(obj, source, node))
    elif part.kind == "function" and isinstance(obj, types.FunctionType):
        reaches.append(_runtime_reach(obj))
    return _joined(reaches)


def _reach_of_attributes(cls: type, source: ModuleSource, node: Node) -> Iterable[_Reach]:
    """Class attributes whose code is not in the class statement (``Task.run = helper``)."""
    for value in list(vars(cls).values()):
        func = _function_in(value)
        if func is not None and source.holds(func.__code__) and isinstance(node, ast.AST):
            line = func.__code__.co_firstlineno
            if first_line(node) <= line <= (getattr(node, "end_lineno", None) or line):
                continue  # a method written in the class: its source is part of the class's
        yield _reach_of_value(value)


def _where_of(part: _Part) -> str:
    return f"{part.kind} {part.module}.{part.name}"


# --- from objects to parts -----------------------------------------------------------------------


_function_reach: weakref.WeakKeyDictionary[types.FunctionType, _Reach] = weakref.WeakKeyDictionary()
_class_reach: weakref.WeakKeyDictionary[type, _Part] = weakref.WeakKeyDictionary()


def _reach_of_object(obj: Any, depth: int = 0) -> _Reach:
    """The parts a class, function or other callable object stands for (none if not user code)."""
    if depth > 16:
        return _NOTHING
    if isinstance(obj, (staticmethod, classmethod)):
        return _reach_of_object(obj.__func__, depth + 1)
    if isinstance(obj, property):
        return _joined(
            _reach_of_object(f, depth + 1) for f in (obj.fget, obj.fset, obj.fdel) if f is not None
        )
    if isinstance(obj, functools.cached_property):
        return _reach_of_object(obj.func, depth + 1)
    if isinstance(obj, functools.partial):
        values = (*obj.args, *obj.keywords.values())
        return _joined(
            [_reach_of_object(obj.func, depth + 1), *(_reach_of_value(v) for v in values)]
        )
    if isinstance(obj, types.MethodType):
        return _joined([_reach_of_object(obj.__func__, depth + 1), _reach_of_value(obj.__self__)])
    if isinstance(obj, types.FunctionType):
        return _reach_of_function(obj)
    if isinstance(obj, type):
        if not _class_is_users(obj):
            return _NOTHING
        return _Reach((_part_of_class(obj),))
    wrapped = getattr(obj, "__wrapped__", None)
    if wrapped is not None and not isinstance(obj, types.ModuleType):
        return _reach_of_object(wrapped, depth + 1)
    return _NOTHING


def _reach_of_value(value: Any) -> _Reach:
    """The parts a value held at run time reaches (a closure cell, a default argument…)."""
    if isinstance(value, types.ModuleType) or _is_task_class(value):
        return _NOTHING
    if _is_code(value):
        return _reach_of_object(value)
    kind = type(value)
    if kind.__module__ != "builtins" and not _is_task_class(kind) and _class_is_users(kind):
        return _Reach((_part_of_class(kind),))
    return _NOTHING


def _is_code(value: Any) -> bool:
    return isinstance(
        value,
        (
            type,
            types.FunctionType,
            types.MethodType,
            functools.partial,
            staticmethod,
            classmethod,
            property,
        ),
    ) or (callable(value) and hasattr(value, "__wrapped__"))


def _class_is_users(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    if module.partition(".")[0] in _OUR_PACKAGES:
        return False
    namespace = _namespace_of_class(cls)
    if namespace is None:
        return module not in sys.builtin_module_names
    return is_user_namespace(namespace)


def _part_of_class(cls: type) -> _Part:
    """The part of a class: its ``class`` statement, or its bytecode without source."""
    found = _class_reach.get(cls)
    if found is not None:
        return found
    namespace = _namespace_of_class(cls)
    source = source_of_namespace(namespace if namespace is not None else _detached(cls.__module__))
    index = source.index
    node: Optional[ast.ClassDef] = None
    if index is not None:
        candidates = [
            scope.node
            for scope in index.by_qualname.get(cls.__qualname__, ())
            if isinstance(scope.node, ast.ClassDef)
        ]
        node = _pick_class_node(cls, candidates, source)
    if node is None:
        part = _part(
            source,
            "class",
            cls.__qualname__,
            None,
            cls,
            "bytecode:" + _bytecode_signature(cls),
        )
    else:
        part = _part(source, "class", cls.__qualname__, node, cls)
    return _class_reach.setdefault(cls, part)


_detached_namespaces: Dict[str, Dict[str, Any]] = {}


def _detached(module: str) -> Dict[str, Any]:
    """A stand-in namespace for a class whose module cannot be found."""
    return _detached_namespaces.setdefault(module, {"__name__": module})


def _pick_class_node(
    cls: type, candidates: List[ast.ClassDef], source: ModuleSource
) -> Optional[ast.ClassDef]:
    """The ``class`` statement that made ``cls`` when its module has several of that name.

    With ``if fast: class T…  else: class T…``, the statement holding the class's own
    functions is the one.
    """
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    first = getattr(cls, "__firstlineno__", None)  # Python 3.13+
    if isinstance(first, int):
        for node in candidates:
            if first in (node.lineno, *(d.lineno for d in node.decorator_list)):
                return node
    lines = [
        func.__code__.co_firstlineno
        for value in vars(cls).values()
        for func in [_function_in(value)]
        if func is not None and source.holds(func.__code__)
    ]
    if lines:
        inside = min(lines)
        for node in candidates:
            if node.lineno <= inside <= (node.end_lineno or node.lineno):
                return node
    return candidates[0]


def _reach_of_function(func: types.FunctionType) -> _Reach:
    found = _function_reach.get(func)
    if found is None:
        _function_reach[func] = _NOTHING  # functions holding each other end here
        found = _function_reach[func] = _locate_function(func)
    return found


def _locate_function(func: types.FunctionType) -> _Reach:
    wrapped = vars(func).get("__wrapped__")
    if not is_user_namespace(func.__globals__):
        # Luigi's or our wrappers (the run() protocol) stand for the user function inside.
        return _reach_of_object(wrapped, 1) if wrapped is not None else _NOTHING
    source = source_of_namespace(func.__globals__)
    code = func.__code__
    scope = _scope_of_code(source, code)
    if scope is not None:
        parts = _parts_of_scope(source, scope, func)
    else:
        name = getattr(code, "co_qualname", func.__qualname__)
        material = "bytecode:" + _describe_code(code)
        parts = [_part(source, "function", name, None, func, material)]
    return _joined([_Reach(tuple(parts)), _runtime_reach(func)])


def _runtime_reach(func: types.FunctionType) -> _Reach:
    """What a function holds at run time: closure cells, default values, the function it wraps."""
    values: List[Any] = []
    for cell in func.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    values.extend(func.__defaults__ or ())
    values.extend((func.__kwdefaults__ or {}).values())
    reaches = [_reach_of_value(value) for value in values]
    wrapped = vars(func).get("__wrapped__")
    if wrapped is not None:
        reaches.append(_reach_of_object(wrapped, 1))
    return _joined(reaches)


def _scope_of_code(source: ModuleSource, code: types.CodeType) -> Optional[Scope]:
    """The ``def`` or ``lambda`` in the module's source that compiled to ``code``."""
    index = source.index
    if index is None or not source.holds(code):
        return None
    candidates = [
        scope
        for scope in index.by_first_line.get(code.co_firstlineno, ())
        if _name_of(scope.node) == code.co_name
    ]
    if len(candidates) > 1:
        qualname = getattr(code, "co_qualname", None)
        candidates = [s for s in candidates if s.qualname == qualname] or candidates
    return candidates[0] if candidates else None


def _name_of(node: ast.AST) -> str:
    return "<lambda>" if isinstance(node, ast.Lambda) else str(getattr(node, "name", ""))


def _parts_of_scope(source: ModuleSource, scope: Scope, obj: Any) -> List[_Part]:
    """The part a ``def``/``class``/``lambda`` belongs to.

    A class is its own part; a method, or anything nested in a class, belongs to the innermost
    class around it; a function nested in a module-level function belongs to that function; a
    ``lambda`` bound at module level belongs to the constants it is bound to.
    """
    node = scope.node
    if isinstance(node, ast.ClassDef):
        return [_part(source, "class", scope.qualname, node, obj)]
    index = source.index
    assert index is not None
    for parent in reversed(scope.parents):
        if isinstance(parent, ast.ClassDef):
            outer = index.scope_of(parent)
            if outer is not None:
                return [_part(source, "class", outer.qualname, parent)]
    top = scope.parents[0] if scope.parents else node
    if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)) and top is scope.statement:
        return [_part(source, "function", top.name, top, obj if top is node else None)]
    names = [
        name
        for name, bindings in index.bindings.items()
        if any(b.statement is scope.statement for b in bindings)
    ]
    if names:
        return [_constant_part(source, name) for name in sorted(names)]
    return [_part(source, "function", scope.qualname, scope.statement)]


def _object_at(source: ModuleSource, qualname: str) -> Any:
    """The object a module-level qualified name refers to now, or None."""
    if "<locals>" in qualname:
        return None
    value: Any = source.namespace
    for step, name in enumerate(qualname.split(".")):
        value = value.get(name) if step == 0 else getattr(value, name, None)
        if value is None:
            return None
    return value


# --- names and constants -------------------------------------------------------------------------


def _reach_of_name(source: ModuleSource, name: str, bare: bool) -> _Reach:
    """What a module-level name of ``source`` reaches, used bare or through attributes."""
    if not source.user:
        return _NOTHING
    cache: Dict[Tuple[str, bool], _Reach] = source.analyses.setdefault("names", {})
    found = cache.get((name, bare))
    if found is None:
        cache[(name, bare)] = _NOTHING  # a module-level cycle ends here
        found = cache[(name, bare)] = _resolve_name(source, name, bare)
    return found


def _resolve_name(source: ModuleSource, name: str, bare: bool) -> _Reach:
    value = source.namespace.get(name, _MISSING)
    if value is _MISSING:
        if hasattr(builtins, name):
            return _NOTHING
        return _from_star_imports(source, name, bare) or _NOTHING
    index = source.index
    bindings = index.bindings.get(name, []) if index is not None else []
    if isinstance(value, types.ModuleType):
        # Its attributes are followed one by one; statements here that set them
        # (``config.MODE = "fast"``) count as this name's.
        if any(not _imports(b.statement) for b in bindings):
            return _Reach((_constant_part(source, name),))
        return _NOTHING
    if _is_code(value):
        if bare and _is_task_class(value):
            return _NOTHING
        reach = _reach_of_object(value)
        assigned = any(_assigns(b.statement) for b in bindings)
        if reach.parts and assigned:  # ``impute = cached(_impute)``: the statement counts too
            reach = _joined([reach, _Reach((_constant_part(source, name),))])
        return reach
    reaches: List[_Reach] = []
    for binding in bindings:
        statement = binding.statement
        if isinstance(statement, ast.ImportFrom):
            reaches.append(_through_import(source, statement, name, bare))
    if any(not _imports(b.statement) for b in bindings):
        reaches.append(_Reach((_constant_part(source, name),)))
    if not bindings:
        star = _from_star_imports(source, name, bare)
        if star is not None:
            return star
        description = _describe_value(value)
        if description is None:
            return _Reach(
                unresolved=(
                    f"constant {source.name}.{name} (bound where the source does not show it, "
                    f"and not plain data: a {type(value).__name__})",
                )
            )
        material = "value:" + description
        reaches.append(_Reach((_part(source, "constant", name, None, None, material),)))
    return _joined(reaches)


def _assigns(statement: ast.stmt) -> bool:
    """Does the statement compute a value (rather than import or define one)?"""
    return not isinstance(
        statement,
        (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef),
    )


def _imports(statement: ast.stmt) -> bool:
    return isinstance(statement, (ast.Import, ast.ImportFrom))


def _constant_part(source: ModuleSource, name: str) -> _Part:
    """The part of a module-level name: every statement binding it but imports."""
    index = source.index
    bindings = index.bindings.get(name, []) if index is not None else []
    return _part(source, "constant", name, tuple(b for b in bindings if not _imports(b.statement)))


def _through_import(
    source: ModuleSource, statement: ast.ImportFrom, name: str, bare: bool
) -> _Reach:
    """Follow ``from x import y as name`` to the module that defines ``y``."""
    module = sys.modules.get(source.absolute(statement.module, statement.level))
    if module is None or not is_user_namespace(vars(module)):
        return _NOTHING
    for alias in statement.names:
        if (alias.asname or alias.name) == name:
            if isinstance(vars(module).get(alias.name), types.ModuleType):
                return _NOTHING
            return _reach_of_name(source_of_namespace(vars(module)), alias.name, bare)
    return _NOTHING


def _from_star_imports(source: ModuleSource, name: str, bare: bool) -> Optional[_Reach]:
    index = source.index
    for statement in index.star_imports if index is not None else ():
        module = sys.modules.get(source.absolute(statement.module, statement.level))
        if module is not None and name in vars(module):
            if not is_user_namespace(vars(module)):
                return _NOTHING
            return _reach_of_name(source_of_namespace(vars(module)), name, bare)
    return None


def _reach_of_chain(source: ModuleSource, name: str, chain: Tuple[str, ...]) -> _Reach:
    """What ``name.a.b…`` reaches: through user modules down to the name they define."""
    value = source.namespace.get(name, _MISSING)
    if isinstance(value, types.ModuleType):
        return _joined([_reach_in_module(value, chain), _reach_of_name(source, name, False)])
    return _reach_of_name(source, name, bare=False)


def _reach_in_module(module: types.ModuleType, chain: Tuple[str, ...]) -> _Reach:
    current = module
    for step, attribute in enumerate(chain):
        namespace = vars(current)
        if not is_user_namespace(namespace):
            return _NOTHING
        value = namespace.get(attribute, _MISSING)
        if value is _MISSING:
            value = sys.modules.get(f"{current.__name__}.{attribute}", _MISSING)
        if isinstance(value, types.ModuleType):
            current = value
            continue
        if value is _MISSING:
            return _Reach(
                unresolved=(f"{current.__name__}.{attribute} (not defined in the module)",)
            )
        return _reach_of_name(
            source_of_namespace(namespace), attribute, bare=step == len(chain) - 1
        )
    return _NOTHING


def _reach_of_module(name: str, where: str) -> _Reach:
    """Everything a user module defines: it is used by a name only known at run time."""
    module, problem = _import_user_module(name)
    if problem is not None:
        return _Reach(unresolved=(f"import {name} in {where} ({problem})",))
    if module is None:
        return _NOTHING
    source = source_of_namespace(vars(module))
    cache: Dict[str, _Reach] = source.analyses.setdefault("whole", {})
    found = cache.get("")
    if found is None:
        cache[""] = _NOTHING  # a cycle of such modules ends here
        index = source.index
        names: Iterable[str] = (
            index.bindings if index is not None else (n for n in vars(module) if n[:2] != "__")
        )
        found = cache[""] = _joined(_reach_of_name(source, n, bare=True) for n in list(names))
    return found


def _import_user_module(name: str) -> Tuple[Optional[types.ModuleType], Optional[str]]:
    """The user module called ``name``, imported now if it is not yet; None if installed.

    A module imported inside a function may not be imported yet when the fingerprint is
    taken; it is the code the function will run, so it is imported (as the function would).
    """
    module = sys.modules.get(name)
    if module is not None:
        return (module if is_user_namespace(vars(module)) else None), None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        spec = None
    if spec is None:
        return None, "it cannot be found"
    origin = spec.origin
    if spec.has_location and isinstance(origin, str):
        if not is_user_namespace({"__name__": name, "__file__": origin}):
            return None, None
    elif origin in ("built-in", "frozen"):
        return None, None
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - a fingerprint never crashes the scheduler
        return None, f"importing it failed: {type(exc).__name__}: {exc}"
    return (module if is_user_namespace(vars(module)) else None), None


# --- references in source ------------------------------------------------------------------------


def _references(
    source: ModuleSource, node: ast.AST, where: str, global_names: Optional[Set[str]]
) -> _Reach:
    """What a piece of source reaches through the names it uses.

    ``global_names`` are the names its code looks up among the module's globals (from the
    symbol tables); the expressions evaluated where it is defined (decorators, default values,
    base classes) are looked up there too. Without symbol tables, every name the piece uses and
    does not bind itself is taken as global.
    """
    visitor = References(source, where)
    visitor.visit(node)
    if global_names is None:
        global_names = set(visitor.uses) - bound_names(node)
    else:
        global_names = global_names | definition_names(node)
    # A base class is inherited, not merely named: followed even when it is another task.
    bases = {
        inner.id
        for base in (node.bases if isinstance(node, ast.ClassDef) else ())
        for inner in ast.walk(base)
        if isinstance(inner, ast.Name)
    }
    reaches: List[_Reach] = [_Reach(unresolved=tuple(visitor.unresolved))]
    for name, at in visitor.imported:
        problem = _import_user_module(name)[1]
        if problem is not None:
            reaches.append(_Reach(unresolved=(f"import {name} in {at} ({problem})",)))
    for name, use in sorted(visitor.uses.items()):
        alias = visitor.aliases.get(name)
        if alias is not None:
            reaches.append(_through_local_import(alias, use, where))
        if name in global_names:
            reaches.extend(_reach_of_chain(source, name, chain) for chain in sorted(use.chains))
            if use.bare:
                reaches.append(_reach_of_name(source, name, bare=name not in bases))
    for root, attributes, text, at in visitor.lookups:
        target = _static_value(source, visitor.aliases, root, attributes, root in global_names)
        if isinstance(target, types.ModuleType):
            if is_user_namespace(vars(target)):
                reaches.append(_Reach(unresolved=(f"{text} in {at}",)))
        elif isinstance(target, type) and _class_is_users(target):
            reaches.append(_Reach(unresolved=(f"{text} in {at}",)))
    reaches.extend(_reach_of_module(name, at) for name, at in visitor.whole_modules)
    return _joined(reaches)


def _through_local_import(alias: Tuple[str, Optional[str]], use: Use, where: str) -> _Reach:
    """Follow a name bound by an ``import`` inside a function."""
    module_name, attribute = alias
    module, problem = _import_user_module(module_name)
    if problem is not None:
        return _Reach(unresolved=(f"import {module_name} in {where} ({problem})",))
    if module is None:
        return _NOTHING
    if attribute is None:
        return _joined(_reach_in_module(module, chain) for chain in sorted(use.chains))
    value = vars(module).get(attribute, _MISSING)
    if value is _MISSING:  # ``from . import config``: a submodule, imported by the statement
        value, problem = _import_user_module(f"{module_name}.{attribute}")
        if problem is not None:
            return _Reach(unresolved=(f"import {module_name}.{attribute} in {where} ({problem})",))
    if isinstance(value, types.ModuleType):
        return _joined(_reach_in_module(value, chain) for chain in sorted(use.chains))
    source = source_of_namespace(vars(module))
    reaches = [_reach_of_name(source, attribute, bare=False)] if use.chains else []
    if use.bare:
        reaches.append(_reach_of_name(source, attribute, bare=True))
    return _joined(reaches)


def _static_value(
    source: ModuleSource,
    aliases: Mapping[str, Tuple[str, Optional[str]]],
    root: str,
    attributes: Tuple[str, ...],
    is_global: bool,
) -> Any:
    """The object ``root.a.b`` names now, when ``root`` is a global or a local import."""
    value: Any = _MISSING
    alias = aliases.get(root)
    if alias is not None:
        module = sys.modules.get(alias[0])
        value = module if alias[1] is None else getattr(module, alias[1], _MISSING)
    elif is_global:
        value = source.namespace.get(root, _MISSING)
    for attribute in attributes:
        if value is _MISSING:
            break
        value = getattr(value, attribute, _MISSING)
    return None if value is _MISSING else value


# --- code without source -------------------------------------------------------------------------


_DYNAMIC_BUILTINS = {
    "exec": "exec()",
    "eval": "eval()",
    "__import__": "__import__(...)",
    "globals": "globals()",
}


def _bytecode_expansion(part: _Part) -> _Reach:
    """What code without source reaches: the globals its bytecode loads, and its runtime values."""
    obj = part.obj
    functions: List[types.FunctionType] = []
    reaches: List[_Reach] = []
    if isinstance(obj, types.FunctionType):
        functions.append(obj)
    elif isinstance(obj, type):
        for value in vars(obj).values():
            func = _function_in(value)
            if func is not None and func.__globals__ is part.source.namespace:
                functions.append(func)  # made with the class: in the class's own description
            else:
                reaches.append(_reach_of_value(value))
        reaches.extend(_reach_of_object(base) for base in obj.__bases__)
    for func in functions:
        where = f"function {part.module}.{getattr(func.__code__, 'co_qualname', func.__name__)}"
        for name, use in sorted(bytecode_uses(func.__code__).items()):
            if name in _DYNAMIC_BUILTINS and name not in part.source.namespace:
                reaches.append(_Reach(unresolved=(f"{_DYNAMIC_BUILTINS[name]} in {where}",)))
                continue
            reaches.extend(_reach_of_chain(part.source, name, c) for c in sorted(use.chains))
            if use.bare:
                reaches.append(_reach_of_name(part.source, name, bare=True))
        if func is not obj:
            reaches.append(_runtime_reach(func))
    return _joined(reaches)


def _bytecode_signature(cls: type) -> str:
    """A deterministic description of a class's functions: bytecode, constants and names.

    Used only when the source is unavailable (a class made in a notebook cell or by ``exec``);
    line numbers are left out, docstrings are not.
    """
    parts = []
    for name, value in sorted(vars(cls).items()):
        func = _function_in(value)
        if func is not None:
            parts.append(f"{name}=" + _describe_code(func.__code__))
    return ";".join(parts)


def _describe_code(code: types.CodeType) -> str:
    consts: Iterable[Any] = (
        _describe_code(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    )
    return f"{code.co_code.hex()}|{','.join(consts)}|{','.join(code.co_names)}"


# --- normalized text -----------------------------------------------------------------------------


def _dump(node: ast.AST) -> str:
    """The AST without line numbers (docstrings were removed when the module was parsed)."""
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _binding_text(binding: Binding) -> str:
    headers = (f"{label}:{_dump(expression)}" for label, expression in binding.headers)
    return " / ".join([*headers, _dump(binding.statement)])


_PLAIN_SCALARS = (type(None), bool, int, float, str, bytes)


def _describe_value(value: Any, depth: int = 0) -> Optional[str]:
    """A deterministic text for plain data (numbers, strings, containers of them), else None."""
    if depth > 32:
        return None
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return f"{kind.__name__}:{value!r}"
    if kind in (tuple, list):
        items = [_describe_value(item, depth + 1) for item in value]
        if any(item is None for item in items):
            return None
        return f"{kind.__name__}[{','.join(str(item) for item in items)}]"
    if kind in (set, frozenset):
        members = [_describe_value(item, depth + 1) for item in value]
        if any(member is None for member in members):
            return None
        return f"{kind.__name__}{{{','.join(sorted(str(m) for m in members))}}}"
    if kind is dict:
        pairs = []
        for key, item in value.items():
            described = (_describe_value(key, depth + 1), _describe_value(item, depth + 1))
            if None in described:
                return None
            pairs.append(f"{described[0]}:{described[1]}")
        return f"dict{{{','.join(sorted(pairs))}}}"
    return None
