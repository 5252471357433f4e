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
* code without source (``exec``, a REPL) is described by its bytecode, constants and names;
* plain data that other code changed counts by its value (see :mod:`luigi_repro.codevalues`).

Values hold code too: a registry ``HANDLERS = {}`` filled by a decorator, a table of backend
modules, a class attribute holding a module, the implementations registered on a
``functools.singledispatch`` function. What such containers hold is followed, a few levels deep;
a user module held as a value counts whole (which of its attributes is used is not known).
Methods that attrs, dataclasses or ``namedtuple`` write for a class are not parts of their own:
the class statement (its decorators included) and the library's recorded version decide them.

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
when the class is created) and cached per class, algorithm and ``code_version`` values, with the
``__spec__`` of every module it read (``importlib.reload`` replaces it), so asking again is a
dictionary lookup and a few identity checks: ``complete()`` asks on every check.

Computing a closure never raises: objects of the user's are probed defensively (a lazy proxy
whose every attribute raises is no code), a module imported for the walk may even exit, and any
other failure makes the fingerprint one that no record matches, logged once, so the task runs
again and ``verify`` says why, rather than a closure that is silently smaller.
"""

from __future__ import annotations

import ast
import builtins
import collections
import functools
import importlib
import importlib.util
import sys
import threading
import types
import weakref
from typing import (
    Any,
    Dict,
    Generic,
    Iterable,
    List,
    Mapping,
    Optional,
    Set,
    Tuple,
    TypeVar,
    Union,
)

import attrs
import luigi

from luigi_repro.coderefs import (
    References,
    Use,
    bound_names,
    bytecode_uses,
    definition_names,
    static_chain,
)
from luigi_repro.codesource import (
    Binding,
    ModuleSource,
    Scope,
    first_line,
    is_stdlib_path,
    is_user_namespace,
    mutation_receiver,
    note_task_module,
    on_reload,
    snapshot_imported_modules,
    source_of_namespace,
)
from luigi_repro.codetext import describe_code, describe_value, dump
from luigi_repro.codevalues import (
    changed_constant,
    class_literals,
    class_values,
    literal_matches,
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
_FORMAT = "luigi_repro code closure 2"
_MISSING: Any = object()


@attrs.frozen
class CodeClosure:
    """The code a task class's outputs depend on.

    ``parts`` maps each piece (``"function utils.preproc.impute"``, ``"constant
    utils.config.THRESHOLD"``, ``"class pipeline.Train"``) to the digest of its normalized
    source; ``fingerprint`` covers them all; ``unresolved`` lists the references the closure
    could not follow, each with where it is. ``error`` says why the closure could not be
    computed at all; the fingerprint then matches no record.
    """

    fingerprint: str
    parts: Mapping[str, str]
    unresolved: Tuple[str, ...]
    error: Optional[str] = None


# --- probing the user's objects ------------------------------------------------------------------


def _attribute(obj: Any, name: str) -> Any:
    """``getattr(obj, name)``, or ``_MISSING`` when it is absent or looking it up raises anything.

    Objects of the user's may refuse every attribute (a lazy proxy raises until configured).
    """
    try:
        return getattr(obj, name, _MISSING)
    except Exception:  # noqa: BLE001 - any error means "not something to follow"
        return _MISSING


def _is_class(value: Any) -> bool:
    """By the object's real type: a proxy that claims another ``__class__`` is not asked."""
    return issubclass(type(value), type)


def _own_items(cls: type) -> List[Tuple[str, Any]]:
    """``vars(cls).items()``; empty when the class will not say (a metaclass may refuse)."""
    try:
        return [(str(name), value) for name, value in vars(cls).items()]
    except Exception:  # noqa: BLE001
        return []


V = TypeVar("V")


class _ClassMemo(Generic[V]):
    """Something learned per class: weakly keyed, or by identity (keeping the class alive) for a
    class that cannot be hashed (its metaclass defines ``__eq__`` without ``__hash__``)."""

    def __init__(self) -> None:
        self._weak: weakref.WeakKeyDictionary[type, V] = weakref.WeakKeyDictionary()
        self._pinned: Dict[int, Tuple[type, V]] = {}

    def get(self, cls: type) -> Optional[V]:
        try:
            return self._weak.get(cls)
        except TypeError:
            entry = self._pinned.get(id(cls))
            return entry[1] if entry is not None and entry[0] is cls else None

    def set(self, cls: type, value: V) -> V:
        """Keep ``value`` for ``cls`` unless one is kept already; the one kept."""
        try:
            return self._weak.setdefault(cls, value)
        except TypeError:
            return self._pinned.setdefault(id(cls), (cls, value))[1]

    def clear(self) -> None:
        self._weak.clear()
        self._pinned.clear()


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


#: (id of the task class, algorithm, code versions) -> (the class, its closure, modules read).
_Entry = Tuple[type, CodeClosure, Tuple[ModuleSource, ...]]
_closures: Dict[Tuple[int, str, Tuple[Optional[str], ...]], _Entry] = {}
_closures_lock = threading.Lock()
_compute_lock = threading.RLock()


def code_closure(task_cls: type, algorithm: str) -> CodeClosure:
    """The code closure of a task class, cached per class, algorithm and ``code_version`` values.

    Each user class of the task (the class and its user base classes) contributes its own
    ``code_version`` when it sets one, else its source and everything reached from it: a
    subclass of a versioned base still has its own changes seen. The cached closure is used
    while every module it read is the one it read (not reloaded since).
    """
    try:
        classes = _user_classes(task_cls)
        cache_key = (id(task_cls), algorithm, tuple(_own_code_version(c) for c in classes))
    except Exception as exc:  # noqa: BLE001 - a check never crashes on the user's classes
        return _failed(task_cls, algorithm, exc)
    entry = _closures.get(cache_key)
    if entry is None or entry[0] is not task_cls or not _current(entry[2]):
        with _compute_lock:  # one walk at a time: a walk leaves half-built entries behind it
            entry = _closures.get(cache_key)
            if entry is None or entry[0] is not task_cls or not _current(entry[2]):
                if entry is not None:
                    _notice_reloads(entry[2])
                closure, sources = _computed(task_cls, classes, algorithm)
                entry = (task_cls, closure, sources)
                with _closures_lock:
                    _closures[cache_key] = entry
    closure = entry[1]
    if closure.unresolved:
        _warn_unresolved(task_cls, closure.unresolved)
    return closure


def _current(sources: Tuple[ModuleSource, ...]) -> bool:
    """Is every module a closure read still the one it read? (``reload`` replaces ``__spec__``)"""
    for source in sources:  # noqa: SIM110 - a loop is quicker than all() on this hot path
        if source.namespace.get("__spec__") is not source.spec:
            return False
    return True


def _notice_reloads(sources: Tuple[ModuleSource, ...]) -> None:
    """Take new snapshots of reloaded modules, which drops everything learned from old ones."""
    for source in sources:
        if source.namespace.get("__spec__") is not source.spec:
            source_of_namespace(source.namespace)


def code_fingerprint(task_cls: type, algorithm: str) -> str:
    """The fingerprint of a task class's code closure (see :func:`code_closure`)."""
    return code_closure(task_cls, algorithm).fingerprint


def capture_code(task_cls: type) -> None:
    """At class creation, keep the source of the class's module and of user modules imported.

    The fingerprint must describe the code that runs, not files edited on disk later. The
    closure itself is computed on first use, when the module has finished executing.
    """
    try:
        note_task_module(task_cls.__module__)
        namespace = _namespace_of_class(task_cls)
        if namespace is not None:
            source_of_namespace(namespace)
        snapshot_imported_modules()
    except Exception as exc:  # noqa: BLE001 - the text is then read when first needed
        logger.debug("luigi_repro: could not keep the source of %r: %s", task_cls, exc)


def legacy_code_fingerprint(task_cls: type, algorithm: str) -> str:
    """The fingerprint earlier versions recorded: the task's user classes only, no helpers.

    It tells whether a record written before the closure existed saw the same classes, so
    that such a record can be told apart from a real change. Written exactly as they wrote it.
    """
    try:
        signatures = []
        for cls in _user_classes(task_cls):
            version = _own_code_version(cls)
            if version is not None:
                signatures.append(f"{cls.__qualname__}:code_version:{version}")
                continue
            part = _part_of_class(cls)
            if isinstance(part.node, ast.ClassDef):
                text = ast.dump(part.node, annotate_fields=False, include_attributes=False)
                signatures.append(f"{cls.__qualname__}:ast:{text}")
            else:
                signatures.append(f"{cls.__qualname__}:bytecode:{_legacy_bytecode(cls)}")
    except Exception as exc:  # noqa: BLE001 - then no earlier record can match
        return _unfingerprintable(algorithm, _one_line(exc))
    return hash_bytes("\0".join(signatures).encode(), algorithm)


def _legacy_bytecode(cls: type) -> str:
    parts = []
    for name, value in sorted(_own_items(cls)):
        func = _function_in(value)
        if func is not None:
            parts.append(f"{name}=" + _legacy_describe_code(func.__code__))
    return ";".join(parts)


def _legacy_describe_code(code: types.CodeType) -> str:
    consts: Iterable[Any] = (
        _legacy_describe_code(c) if isinstance(c, types.CodeType) else repr(c)
        for c in code.co_consts
    )
    return f"{code.co_code.hex()}|{','.join(consts)}|{','.join(code.co_names)}"


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


_warned: _ClassMemo[bool] = _ClassMemo()
_failures: _ClassMemo[bool] = _ClassMemo()
_warned_lock = threading.Lock()


def _first_time(memo: _ClassMemo[bool], task_cls: type) -> bool:
    with _warned_lock:
        if memo.get(task_cls):
            return False
        memo.set(task_cls, True)
        return True


def _warn_unresolved(task_cls: type, unresolved: Tuple[str, ...]) -> None:
    if not _first_time(_warned, task_cls):
        return
    logger.warning(
        "luigi_repro: the code fingerprint of %s cannot follow %s; code reached only through "
        "them is not checked (set code_version on the class to decide yourself when it changes).",
        task_cls.__name__,
        "; ".join(unresolved),
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 200 else text[:199] + "…"


def _unfingerprintable(algorithm: str, error: str) -> str:
    """A fingerprint no record holds: digests are hex, this is words."""
    return f"{algorithm}:unfingerprintable ({error})"


def _computed(
    task_cls: type, classes: Tuple[type, ...], algorithm: str
) -> Tuple[CodeClosure, Tuple[ModuleSource, ...]]:
    try:
        return _compute(task_cls, classes, algorithm)
    except Exception as exc:  # noqa: BLE001 - a check never crashes: the task reruns instead
        return _failed(task_cls, algorithm, exc), ()


def _failed(task_cls: type, algorithm: str, exc: Exception) -> CodeClosure:
    """The closure of a class whose code could not be walked: it matches no record."""
    error = _one_line(exc)
    if _first_time(_failures, task_cls):
        logger.warning(
            "luigi_repro: the code fingerprint of %s cannot be computed (%s); the task runs "
            "again on every build until this is fixed (or set code_version on the class).",
            getattr(task_cls, "__name__", task_cls),
            error,
            exc_info=exc,
        )
    return CodeClosure(
        fingerprint=_unfingerprintable(algorithm, error), parts={}, unresolved=(), error=error
    )


def _forget_everything() -> None:
    """A module ran again (``importlib.reload``): what was learned from it may be stale."""
    with _closures_lock:
        _closures.clear()
    _function_reach.clear()
    _class_reach.clear()


on_reload(_forget_everything)


# --- which classes are the task's own ------------------------------------------------------------


_user_class_cache: _ClassMemo[bool] = _ClassMemo()


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
    module = _attribute(cls, "__module__")
    module = module if isinstance(module, str) else ""
    if module.split(".", 1)[0] in _OUR_PACKAGES or "__wrapped__" in dict(_own_items(cls)):
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


_user_mro: _ClassMemo[Tuple[type, ...]] = _ClassMemo()


def _user_classes(task_cls: type) -> Tuple[type, ...]:
    """The user classes of a task's MRO, looked up once per class (``complete()`` asks often)."""
    found = _user_mro.get(task_cls)
    if found is None:
        found = _user_mro.set(task_cls, tuple(c for c in task_cls.__mro__ if _is_user_class(c)))
    return found


def _namespace_of_class(cls: type) -> Optional[Dict[str, Any]]:
    """The globals of the module that made ``cls``: its functions know them best.

    Not the functions a library generated for the class (attrs gives them globals of their
    own), unless nothing else tells.
    """
    module_name = _attribute(cls, "__module__")
    fallback: Optional[Dict[str, Any]] = None
    for name, value in _own_items(cls):
        func = _function_in(value)
        if func is None or func.__globals__.get("__name__") != module_name:
            continue
        if _generated_method(cls, name, func, has_source=False):
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
    if not any(_attribute(meta, "__module__") == module_name for meta in _mro(type(cls))):
        return False
    value: Any = namespace
    for step, name in enumerate(str(_attribute(cls, "__qualname__")).split(".")):
        value = value.get(name, _MISSING) if step == 0 else _attribute(value, name)
    return value is not cls


def _function_in(value: Any) -> Optional[types.FunctionType]:
    """The plain function behind a class attribute (method, static/class method, property)."""
    kind = type(value)
    if issubclass(kind, (staticmethod, classmethod)):
        value = value.__func__
    elif issubclass(kind, property):
        value = value.fget
    for _ in range(16):
        if type(value) is types.FunctionType and "__wrapped__" not in vars(value):
            return value
        wrapped = _attribute(value, "__wrapped__")
        if wrapped is _MISSING or wrapped is None:
            break
        value = wrapped
    return value if type(value) is types.FunctionType else None


def _mro(cls: type) -> Tuple[type, ...]:
    try:
        return tuple(cls.__mro__)
    except Exception:  # noqa: BLE001 - a metaclass may refuse
        return ()


def _is_task_class(value: Any) -> bool:
    """A pipeline step other than configuration: its code reaches others through its outputs.

    Decided from the MRO by identity: ``issubclass`` against Luigi's ABC-based classes hashes
    the class, which some metaclasses forbid.
    """
    if not _is_class(value):
        return False
    mro = _mro(value)
    return any(c is luigi.Task for c in mro) and not any(c is luigi.Config for c in mro)


#: Where a library keeps what it generated a class's methods from.
_GENERATOR_MARKERS = ("__attrs_attrs__", "__dataclass_fields__", "_fields")


def _generated_method(cls: type, name: str, func: types.FunctionType, has_source: bool) -> bool:
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
        f"{_attribute(cls, '__qualname__')}.{name}",
        f"__create_fn__.<locals>.{name}",
    ):
        return False
    if has_source or filename.startswith("<attrs generated"):
        return True
    own = dict(_own_items(cls))
    return filename == "<string>" and any(marker in own for marker in _GENERATOR_MARKERS)


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
            self._material = _material_of(self)
        return self._material


def _material_of(part: _Part) -> str:
    node = part.node
    if isinstance(node, tuple):  # a constant: its statements, and its value if changed since
        text = "\n".join(_binding_text(binding) for binding in node)
        value = part.source.namespace.get(part.name, _MISSING)
        changed = None
        if value is not _MISSING:
            changed = changed_constant(part.name, [b.statement for b in node], value)
        return text if changed is None else f"{text}\nnow:{changed}"
    if node is None:
        return ""
    text = dump(node)
    if isinstance(node, ast.ClassDef) and _is_class(part.obj):
        nested = _in_function(part.source, node)
        values = class_values(part.obj, class_literals(node), nested)
        if values:
            text += "\nvalues:" + values
    return text


def _in_function(source: ModuleSource, node: ast.AST) -> bool:
    """Does this ``class`` statement run inside a function (a class factory)?"""
    index = source.index
    scope = index.scope_of(node) if index is not None else None
    return scope is not None and any(
        isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for parent in scope.parents
    )


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
    """The one part for this piece of this module's source (parts are shared by all closures).

    A class statement run more than once (in a factory) makes several classes: each is a part
    of its own, described with its own values.
    """
    if kind == "class" and obj is None:
        found_object = _object_at(source, name)
        obj = found_object if _is_class(found_object) else None
    parts: Dict[Tuple[str, str, int, int], _Part] = source.analyses.setdefault("parts", {})
    node_id = id(node) if isinstance(node, ast.AST) else 0
    cache_key = (kind, name, node_id, id(obj) if kind == "class" and obj is not None else 0)
    found = parts.get(cache_key)
    if found is None:
        found = parts.setdefault(cache_key, _Part(kind, source, name, node, obj, material))
    if found.obj is None and obj is not None:
        found.obj = obj
    return found


# --- the walk ------------------------------------------------------------------------------------


def _compute(
    task_cls: type, classes: Tuple[type, ...], algorithm: str
) -> Tuple[CodeClosure, Tuple[ModuleSource, ...]]:
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
    closure = CodeClosure(
        fingerprint=fingerprint,
        parts=dict(sorted(digests.items())),
        unresolved=tuple(sorted(unresolved)),
    )
    return closure, tuple(dict.fromkeys(part.source for part in materials))


def _version_of(part: _Part) -> Optional[str]:
    if part.kind != "class":
        return None
    cls = part.obj if part.obj is not None else _object_at(part.source, part.name)
    return _own_code_version(cls) if _is_class(cls) else None


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
    if part.kind == "class" and _is_class(obj):
        reaches.extend(_reach_of_object(base) for base in obj.__bases__)
        reaches.extend(_reach_of_attributes(obj, source, node))
    elif part.kind == "function" and type(obj) is types.FunctionType:
        reaches.append(_runtime_reach(obj))
    return _joined(reaches)


def _reach_of_attributes(cls: type, source: ModuleSource, node: Node) -> Iterable[_Reach]:
    """Class attributes whose code is not in the class statement (``Task.run = helper``), and
    the code that class attributes hold (a module, a table of handlers)."""
    for name, value in _own_items(cls):
        func = _function_in(value)
        if func is not None and isinstance(node, ast.AST):
            if _generated_method(cls, name, func, has_source=True):
                continue
            if source.holds(func.__code__):
                line = func.__code__.co_firstlineno
                if first_line(node) <= line <= (getattr(node, "end_lineno", None) or line):
                    continue  # a method written in the class: its source is part of the class's
        yield _reach_of_value(value, modules=True)


def _where_of(part: _Part) -> str:
    return f"{part.kind} {part.module}.{part.name}"


# --- from objects to parts -----------------------------------------------------------------------


_function_reach: weakref.WeakKeyDictionary[types.FunctionType, _Reach] = weakref.WeakKeyDictionary()
_class_reach: _ClassMemo[_Part] = _ClassMemo()

#: Scalars never hold code: skipped at once when walking a container.
_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
#: Containers whose items are followed (``HANDLERS = {"scale": scale}``, ``BACKENDS = [mod]``).
_CONTAINERS = (dict, list, tuple, set, frozenset, types.MappingProxyType)
_MAPPINGS = (dict, types.MappingProxyType)
#: How deep into nested containers code is looked for.
_CONTAINER_DEPTH = 4
#: Values that a module-level ``X.append(…)`` (or another mutator call) really changes.
_MUTABLE = (list, dict, set, bytearray, collections.deque)


def _reach_of_object(obj: Any, depth: int = 0) -> _Reach:
    """The parts a class, function or other callable object stands for (none if not user code)."""
    if depth > 16:
        return _NOTHING
    kind = type(obj)
    if issubclass(kind, (staticmethod, classmethod)):
        return _reach_of_object(obj.__func__, depth + 1)
    if issubclass(kind, property):
        return _joined(
            _reach_of_object(f, depth + 1) for f in (obj.fget, obj.fset, obj.fdel) if f is not None
        )
    if issubclass(kind, functools.cached_property):
        return _reach_of_object(obj.func, depth + 1)
    if issubclass(kind, functools.singledispatchmethod):
        return _reach_of_object(obj.dispatcher, depth + 1)
    if issubclass(kind, functools.partial):
        values = (*obj.args, *obj.keywords.values())
        return _joined(
            [
                _reach_of_object(obj.func, depth + 1),
                *(_reach_of_value(v, modules=True) for v in values),
            ]
        )
    if issubclass(kind, types.MethodType):
        return _joined([_reach_of_object(obj.__func__, depth + 1), _reach_of_value(obj.__self__)])
    if kind is types.FunctionType:
        return _reach_of_function(obj)
    if _is_class(obj):
        if not _class_is_users(obj):
            return _NOTHING
        return _Reach((_part_of_class(obj),))
    wrapped = _attribute(obj, "__wrapped__")
    if wrapped is not _MISSING and wrapped is not None and not issubclass(kind, types.ModuleType):
        return _reach_of_object(wrapped, depth + 1)
    return _NOTHING


def _reach_of_value(value: Any, depth: int = 0, modules: bool = False) -> _Reach:
    """The parts a value held at run time reaches (a closure cell, a default argument…).

    Containers are looked into; a user module held as a value (``modules``) counts whole.
    """
    kind = type(value)
    if kind in _SCALARS:
        return _NOTHING
    if issubclass(kind, types.ModuleType):
        return _reach_of_module_value(value) if modules else _NOTHING
    if issubclass(kind, _CONTAINERS):
        return _reach_of_items(value, depth)
    if _is_task_class(value):
        return _NOTHING
    if _is_code(value):
        return _reach_of_object(value)
    if _attribute(kind, "__module__") == "builtins" or _is_task_class(kind):
        return _NOTHING
    return _Reach((_part_of_class(kind),)) if _class_is_users(kind) else _NOTHING


def _reach_of_items(container: Any, depth: int) -> _Reach:
    """The code a container holds: a registry of handlers, a table of backend modules."""
    if depth >= _CONTAINER_DEPTH:
        return _NOTHING
    try:
        if issubclass(type(container), _MAPPINGS):
            items = [*container.keys(), *container.values()]
        else:
            items = list(container)
    except Exception:  # noqa: BLE001 - a container of the user's may refuse to be listed
        return _NOTHING
    return _joined(
        _reach_of_value(item, depth + 1, modules=True)
        for item in items
        if type(item) not in _SCALARS
    )


def _is_code(value: Any) -> bool:
    kind = type(value)
    return issubclass(
        kind,
        (
            type,
            types.FunctionType,
            types.MethodType,
            functools.partial,
            functools.singledispatchmethod,
            staticmethod,
            classmethod,
            property,
        ),
    ) or (callable(value) and _attribute(value, "__wrapped__") is not _MISSING)


def _class_is_users(cls: type) -> bool:
    module = _attribute(cls, "__module__")
    module = module if isinstance(module, str) else ""
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
    module = _attribute(cls, "__module__")
    if namespace is None:
        namespace = _detached(module if isinstance(module, str) else "")
    source = source_of_namespace(namespace)
    index = source.index
    qualname = str(_attribute(cls, "__qualname__"))
    node: Optional[ast.ClassDef] = None
    if index is not None:
        candidates = [
            scope.node
            for scope in index.by_qualname.get(qualname, ())
            if isinstance(scope.node, ast.ClassDef)
        ]
        node = _pick_class_node(cls, candidates, source)
    if node is None:
        material = "bytecode:" + _class_without_source(cls)
        part = _part(source, "class", qualname, None, cls, material)
    else:
        part = _part(source, "class", qualname, node, cls)
    return _class_reach.set(cls, part)


_detached_namespaces: Dict[str, Dict[str, Any]] = {}


def _detached(module: str) -> Dict[str, Any]:
    """A stand-in namespace for a class whose module cannot be found."""
    return _detached_namespaces.setdefault(module, {"__name__": module})


def _pick_class_node(
    cls: type, candidates: List[ast.ClassDef], source: ModuleSource
) -> Optional[ast.ClassDef]:
    """The ``class`` statement that made ``cls`` when its module has several of that name.

    With ``if fast: class T…  else: class T…``, the statement holding the class's own
    functions is the one; failing that, the one whose literal attributes (``LIMIT = 2``) are
    the class's values, the later one when they tie (a name bound twice keeps the last).
    """
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    first = _attribute(cls, "__firstlineno__")  # Python 3.13+
    if isinstance(first, int):
        for node in candidates:
            if first in (node.lineno, *(d.lineno for d in node.decorator_list)):
                return node
    lines = [
        func.__code__.co_firstlineno
        for name, value in _own_items(cls)
        for func in [_function_in(value)]
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


def _class_without_source(cls: type) -> str:
    """A class made by ``exec``, ``type(…)`` or in a notebook: its functions and plain values.

    Methods a library generated for it count by their plain default values only (their code
    is the library's, and may differ in every process).
    """
    described = []
    for name, value in sorted(_own_items(cls), key=lambda item: item[0]):
        func = _function_in(value)
        if func is None:
            continue
        if _generated_method(cls, name, func, has_source=False):
            described.append(f"{name}=generated:{_describe_defaults(func)}")
        else:
            described.append(f"{name}={_describe_function(func)}")
    values = class_values(cls, None, nested=True)
    return ";".join(described) + ("\nvalues:" + values if values else "")


def _describe_function(func: types.FunctionType) -> str:
    return describe_code(func.__code__) + "|" + _describe_defaults(func)


def _describe_defaults(func: types.FunctionType) -> str:
    """Plain default values, which code without source does not show ("" for other objects)."""
    defaults = describe_value(tuple(func.__defaults__ or ()))
    keywords = describe_value(dict(func.__kwdefaults__ or {}))
    return f"{defaults or ''}|{keywords or ''}"


def _reach_of_function(func: types.FunctionType) -> _Reach:
    found = _function_reach.get(func)
    if found is None:
        _function_reach[func] = _NOTHING  # functions holding each other end here
        try:
            found = _locate_function(func)
        except BaseException:
            del _function_reach[func]  # never leave the placeholder for a later walk
            raise
        _function_reach[func] = found
    return found


def _locate_function(func: types.FunctionType) -> _Reach:
    own = vars(func)
    wrapped = own.get("__wrapped__")
    if not is_user_namespace(func.__globals__):
        # Luigi's or our wrappers (the run() protocol) stand for the user function inside;
        # ``functools.singledispatch`` for the implementations registered on it too.
        reaches = [_reach_of_object(wrapped, 1)] if wrapped is not None else []
        registry = own.get("registry")
        if issubclass(type(registry), _MAPPINGS) and callable(own.get("dispatch")):
            reaches.append(_reach_of_items(registry, 0))
        return _joined(reaches)
    source = source_of_namespace(func.__globals__)
    code = func.__code__
    scope = _scope_of_code(source, code)
    if scope is not None:
        parts = _parts_of_scope(source, scope, func)
    else:
        name = getattr(code, "co_qualname", func.__qualname__)
        material = "bytecode:" + _describe_function(func)
        parts = [_part(source, "function", name, None, func, material)]
    return _joined([_Reach(tuple(parts)), _runtime_reach(func)])


def _runtime_reach(func: types.FunctionType) -> _Reach:
    """What a function holds at run time: closure cells, default values, the function it wraps.

    A user module in a cell counts whole (a factory's argument), unless the cell is the name
    an ``import`` in the enclosing function binds: its source says which attributes are used.
    """
    reaches: List[_Reach] = []
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        reaches.append(_reach_of_value(value, modules=not _imported_as(value, name)))
    values = [*(func.__defaults__ or ()), *(func.__kwdefaults__ or {}).values()]
    reaches.extend(_reach_of_value(value, modules=True) for value in values)
    wrapped = vars(func).get("__wrapped__")
    if wrapped is not None:
        reaches.append(_reach_of_object(wrapped, 1))
    return _joined(reaches)


def _imported_as(value: Any, name: str) -> bool:
    """Is ``name`` what ``import <module>`` binds for the module ``value``?"""
    if not issubclass(type(value), types.ModuleType):
        return False
    module = str(_attribute(value, "__name__"))
    return name in (module.rpartition(".")[2], module.partition(".")[0])


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
    names = index.names_bound_by(scope.statement)
    if names:
        return [_constant_part(source, name) for name in sorted(set(names))]
    return [_part(source, "function", scope.qualname, scope.statement)]


def _object_at(source: ModuleSource, qualname: str) -> Any:
    """The object a module-level qualified name refers to now, or None."""
    if "<locals>" in qualname:
        return None
    value: Any = source.namespace
    for step, name in enumerate(qualname.split(".")):
        value = value.get(name, _MISSING) if step == 0 else _attribute(value, name)
        if value is _MISSING or value is None:
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
        try:
            found = _resolve_name(source, name, bare)
        except BaseException:
            del cache[(name, bare)]  # never leave the placeholder for a later walk
            raise
        cache[(name, bare)] = found
    return found


def _resolve_name(source: ModuleSource, name: str, bare: bool) -> _Reach:
    value = source.namespace.get(name, _MISSING)
    if value is _MISSING:
        if hasattr(builtins, name):
            return _NOTHING
        return _from_star_imports(source, name, bare) or _NOTHING
    bindings = _bindings_of(source, name)
    if issubclass(type(value), types.ModuleType):
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
        reaches.append(_reach_of_value(value, modules=True))  # the code a registry holds
    if not bindings:
        star = _from_star_imports(source, name, bare)
        if star is not None:
            return star
        description = describe_value(value)
        if description is None:
            unresolved = (
                f"constant {source.name}.{name} (bound where the source does not show it, "
                f"and not plain data: a {type(value).__name__})"
            )
            return _joined([_Reach(unresolved=(unresolved,)), _reach_of_value(value, modules=True)])
        material = "value:" + description
        reaches.append(_Reach((_part(source, "constant", name, None, None, material),)))
    return _joined(reaches)


def _bindings_of(source: ModuleSource, name: str) -> List[Binding]:
    """The module-level statements that bind ``name`` or change its value.

    ``X.update(…)`` changes ``X`` only when ``X`` is a container: on a logger, a settings
    object or a library module it changes no constant.
    """
    index = source.index
    if index is None:
        return []
    return [b for b in index.bindings.get(name, []) if _changes_value(source, b.statement)]


def _changes_value(source: ModuleSource, statement: ast.stmt) -> bool:
    receiver = mutation_receiver(statement)
    chain = static_chain(receiver) if receiver is not None else None
    if receiver is None or chain is None:
        return True
    value = source.namespace.get(chain[0], _MISSING)
    for attribute in chain[1]:
        if value is _MISSING:
            break
        value = _attribute(value, attribute)
    return value is _MISSING or issubclass(type(value), _MUTABLE)


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
    bindings = tuple(b for b in _bindings_of(source, name) if not _imports(b.statement))
    return _part(source, "constant", name, bindings)


def _through_import(
    source: ModuleSource, statement: ast.ImportFrom, name: str, bare: bool
) -> _Reach:
    """Follow ``from x import y as name`` to the module that defines ``y``."""
    module = sys.modules.get(source.absolute(statement.module, statement.level))
    if module is None or not is_user_namespace(vars(module)):
        return _NOTHING
    for alias in statement.names:
        if (alias.asname or alias.name) == name:
            if issubclass(type(vars(module).get(alias.name)), types.ModuleType):
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
    if issubclass(type(value), types.ModuleType):
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
        if issubclass(type(value), types.ModuleType):
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
    return _whole_module(source_of_namespace(vars(module)))


def _reach_of_module_value(module: types.ModuleType) -> _Reach:
    """A user module held as a value: which of its attributes is used is not known."""
    namespace = getattr(module, "__dict__", None)
    if not isinstance(namespace, dict) or not is_user_namespace(namespace):
        return _NOTHING
    return _whole_module(source_of_namespace(namespace))


def _whole_module(source: ModuleSource) -> _Reach:
    """Every top-level function, class and constant of a user module."""
    cache: Dict[str, _Reach] = source.analyses.setdefault("whole", {})
    found = cache.get("")
    if found is None:
        cache[""] = _NOTHING  # a cycle of such modules ends here
        try:
            index = source.index
            names: Iterable[str] = (
                index.bindings
                if index is not None
                else (n for n in source.namespace if n[:2] != "__")
            )
            found = _joined(_reach_of_name(source, n, bare=True) for n in list(names))
        except BaseException:
            del cache[""]  # never leave the placeholder for a later walk
            raise
        cache[""] = found
    return found


def _import_user_module(name: str) -> Tuple[Optional[types.ModuleType], Optional[str]]:
    """The user module called ``name``, imported now if it is not yet; None if installed.

    A module imported inside a function may not be imported yet when the fingerprint is
    taken; it is the code the function will run, so it is imported (as the function would).
    Whether it is the user's is decided from its top-level package's location first: finding
    ``pkg.sub`` imports ``pkg``, and an installed package is never imported for a fingerprint.
    """
    module = sys.modules.get(name)
    if module is not None:
        return (module if is_user_namespace(vars(module)) else None), None
    top = name.partition(".")[0]
    if top != name:
        parent = sys.modules.get(top)
        if parent is not None:
            if not is_user_namespace(vars(parent)):
                return None, None
        else:
            users, problem = _spec_is_users(top)
            if not users:
                return None, problem
    users, problem = _spec_is_users(name)
    if not users:
        return None, problem
    try:
        module = importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - even sys.exit() at import must not end a check
        return None, f"importing it failed: {type(exc).__name__}: {exc}"
    return (module if is_user_namespace(vars(module)) else None), None


def _spec_is_users(name: str) -> Tuple[bool, Optional[str]]:
    """Is the module ``name`` (found, not imported) the user's? With why not, if it is missing."""
    try:
        spec = importlib.util.find_spec(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - finding ``a.b`` runs ``a``: it may fail
        return False, f"finding it failed: {type(exc).__name__}: {exc}"
    if spec is None:
        return False, "it cannot be found"
    origin = spec.origin
    if spec.has_location and isinstance(origin, str):
        return is_user_namespace({"__name__": name, "__file__": origin}), None
    if origin in ("built-in", "frozen"):
        return False, None
    folders = spec.submodule_search_locations
    if folders is not None:  # a namespace package: only folders
        return is_user_namespace({"__name__": name, "__path__": list(folders)}), None
    return True, None


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
        if issubclass(type(target), types.ModuleType):
            if is_user_namespace(vars(target)):
                reaches.append(_Reach(unresolved=(f"{text} in {at}",)))
        elif _is_class(target) and _class_is_users(target):
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
    if issubclass(type(value), types.ModuleType):
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
        value = module if alias[1] is None else _attribute(module, alias[1])
    elif is_global:
        value = source.namespace.get(root, _MISSING)
    for attribute in attributes:
        if value is _MISSING:
            break
        value = _attribute(value, attribute)
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
    if type(obj) is types.FunctionType:
        functions.append(obj)
    elif _is_class(obj):
        for name, value in _own_items(obj):
            func = _function_in(value)
            if func is not None and _generated_method(obj, name, func, has_source=False):
                continue  # the library's code, counted by the class's defaults
            if func is not None and func.__globals__ is part.source.namespace:
                functions.append(func)  # made with the class: in the class's own description
            else:
                reaches.append(_reach_of_value(value, modules=True))
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


# --- normalized text -----------------------------------------------------------------------------


def _binding_text(binding: Binding) -> str:
    headers = (f"{label}:{dump(expression)}" for label, expression in binding.headers)
    return " / ".join([*headers, dump(binding.statement)])
