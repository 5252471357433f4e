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

This module is the public side: the closure of a class, its fingerprint and the cache, the
fingerprint earlier versions recorded, and how two closures differ. The walk itself is
:mod:`luigi_repro.codewalk`; what values and names reach, :mod:`luigi_repro.codereach`; the parts
and their text, :mod:`luigi_repro.codeparts`; the user's classes, :mod:`luigi_repro.codeclasses`;
the source it reads, :mod:`luigi_repro.codesource`.
"""

from __future__ import annotations

import ast
import threading
import types
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import attrs

from luigi_repro.codeclasses import namespace_of_class, own_code_version, user_classes
from luigi_repro.codeparts import part_of_class
from luigi_repro.codeprobe import ClassMemo, function_in, own_items
from luigi_repro.codesource import (
    ModuleSource,
    note_task_module,
    on_reload,
    snapshot_imported_modules,
    source_of_namespace,
)
from luigi_repro.codewalk import walk
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

#: Written first in every fingerprint: a change of how closures are described changes it.
_FORMAT = "luigi_repro code closure 2"


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


def code_version_of(task_cls: type) -> Optional[str]:
    """The explicit ``code_version`` in force for a class (its own or inherited), if any."""
    version = getattr(task_cls, "code_version", None)
    if version is None:
        return None
    return str(version)


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
        classes = user_classes(task_cls)
        cache_key = (id(task_cls), algorithm, tuple(own_code_version(c) for c in classes))
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
        namespace = namespace_of_class(task_cls)
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
        for cls in user_classes(task_cls):
            version = own_code_version(cls)
            if version is not None:
                signatures.append(f"{cls.__qualname__}:code_version:{version}")
                continue
            part = part_of_class(cls)
            if isinstance(part.node, ast.ClassDef):
                text = ast.dump(part.node, annotate_fields=False, include_attributes=False)
                signatures.append(f"{cls.__qualname__}:ast:{text}")
            else:
                signatures.append(f"{cls.__qualname__}:bytecode:{_legacy_bytecode(cls)}")
    except Exception as exc:  # noqa: BLE001 - then no earlier record can match
        return _unfingerprintable(algorithm, _one_line(exc))
    return hash_bytes("\0".join(signatures).encode(), algorithm)


def _legacy_bytecode(cls: type) -> str:
    """A class without source as earlier versions described it (``repr`` of the constants)."""
    parts = []
    for name, value in sorted(own_items(cls)):
        func = function_in(value)
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


_warned: ClassMemo[bool] = ClassMemo()
_failures: ClassMemo[bool] = ClassMemo()
_warned_lock = threading.Lock()


def _first_time(memo: ClassMemo[bool], task_cls: type) -> bool:
    """True once per class: each problem is logged once, not on every check."""
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
    """The error as one short line, for a log message and a fingerprint."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 200 else text[:199] + "…"


def _unfingerprintable(algorithm: str, error: str) -> str:
    """A fingerprint no record holds: digests are hex, this is words."""
    return f"{algorithm}:unfingerprintable ({error})"


def _computed(
    task_cls: type, classes: Tuple[type, ...], algorithm: str
) -> Tuple[CodeClosure, Tuple[ModuleSource, ...]]:
    """The closure and the modules it read; any failure gives a closure that matches nothing."""
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


def _compute(
    task_cls: type, classes: Tuple[type, ...], algorithm: str
) -> Tuple[CodeClosure, Tuple[ModuleSource, ...]]:
    """Walk the closure from the task's user classes; digest each part, then all of them.

    The parts of the task's own module are named without it in the fingerprint, so the same
    task run as ``__main__`` and as its module has the same fingerprint.
    """
    materials, unresolved = walk(part_of_class(cls) for cls in classes)
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


def _forget_closures() -> None:
    """A module ran again (``importlib.reload``): what was learned from it may be stale."""
    with _closures_lock:
        _closures.clear()


on_reload(_forget_closures)
