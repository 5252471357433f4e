"""The parts of a code closure: one per class, module-level function or module-level constant.

Each part has a key that names it in reports (``function utils.preproc.impute``) and a
normalized text (its *material*) whose digest stands for it: a class or function by its AST (so
comments, docstrings, formatting and line numbers never count), a constant by the statements
that bind it with the ``if`` tests around them, code without source by its bytecode. Parts are
made once per piece of a module's source and shared by every closure that reaches them; what a
piece of code reaches directly is a :class:`Reach` (parts, and references that cannot be
followed).
"""

from __future__ import annotations

import ast
import collections
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import attrs

from luigi_repro.codeclasses import class_without_source, namespace_of_class, pick_class_node
from luigi_repro.codeprobe import (
    MISSING,
    ClassMemo,
    attribute_of,
    is_class,
    module_name_of,
    object_at,
)
from luigi_repro.coderefs import static_chain
from luigi_repro.codesource import (
    Binding,
    ModuleSource,
    Scope,
    mutation_receiver,
    on_reload,
    source_of_namespace,
)
from luigi_repro.codetext import dump
from luigi_repro.codevalues import changed_constant, class_literals, class_values

__all__ = [
    "NOTHING",
    "Node",
    "Part",
    "Reach",
    "bindings_of",
    "constant_part",
    "is_import",
    "joined",
    "part_for",
    "part_of_class",
    "parts_of_scope",
]

#: What a part is read from: a ``def``/``class``/``lambda``, the statements binding a constant,
#: or nothing (code without source, described by its material).
Node = Union[ast.AST, Tuple[Binding, ...], None]


class Part:
    """One class, module-level function or module-level constant of the user's code.

    ``expansion`` is what the part reaches directly, filled in once by the walk
    (:mod:`luigi_repro.codewalk`).
    """

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
        self.expansion: Optional[Reach] = None

    @property
    def module(self) -> str:
        return self.source.name

    @property
    def key(self) -> str:
        """How reports name the part (``function utils.preproc.impute``)."""
        return f"{self.kind} {self.module}.{self.name}"

    @property
    def material(self) -> str:
        """The normalized text whose digest stands for this part."""
        if self._material is None:
            self._material = _material_of(self)
        return self._material


def _material_of(part: Part) -> str:
    """A constant's statements, a ``class`` or ``def`` statement's AST, with values that differ."""
    node = part.node
    if isinstance(node, tuple):  # a constant: its statements, and its value if changed since
        text = "\n".join(_binding_text(binding) for binding in node)
        value = part.source.namespace.get(part.name, MISSING)
        changed = None
        if value is not MISSING:
            changed = changed_constant(part.name, [b.statement for b in node], value)
        return text if changed is None else f"{text}\nnow:{changed}"
    if node is None:
        return ""
    text = dump(node)
    if isinstance(node, ast.ClassDef) and is_class(part.obj):
        nested = _in_function(part.source, node)
        values = class_values(part.obj, class_literals(node), nested)
        if values:
            text += "\nvalues:" + values
    return text


def _binding_text(binding: Binding) -> str:
    """A statement that binds a constant, with the tests of the blocks it sits under."""
    headers = (f"{label}:{dump(expression)}" for label, expression in binding.headers)
    return " / ".join([*headers, dump(binding.statement)])


def _in_function(source: ModuleSource, node: ast.AST) -> bool:
    """Does this ``class`` statement run inside a function (a class factory)?"""
    index = source.index
    scope = index.scope_of(node) if index is not None else None
    return scope is not None and any(
        isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for parent in scope.parents
    )


@attrs.frozen
class Reach:
    """Parts something reaches directly, and what it uses that cannot be followed."""

    parts: Tuple[Part, ...] = ()
    unresolved: Tuple[str, ...] = ()


NOTHING = Reach()


def joined(reaches: Iterable[Reach]) -> Reach:
    """Everything several reaches reach."""
    parts: List[Part] = []
    unresolved: List[str] = []
    for reach in reaches:
        parts.extend(reach.parts)
        unresolved.extend(reach.unresolved)
    if not parts and not unresolved:
        return NOTHING
    return Reach(tuple(parts), tuple(unresolved))


def part_for(
    source: ModuleSource,
    kind: str,
    name: str,
    node: Node,
    obj: Any = None,
    material: Optional[str] = None,
) -> Part:
    """The one part for this piece of this module's source (parts are shared by all closures).

    A class statement run more than once (in a factory) makes several classes: each is a part
    of its own, described with its own values.
    """
    if kind == "class" and obj is None:
        found_object = object_at(source.namespace, name)
        obj = found_object if is_class(found_object) else None
    parts: Dict[Tuple[str, str, int, int], Part] = source.analyses.setdefault("parts", {})
    node_id = id(node) if isinstance(node, ast.AST) else 0
    cache_key = (kind, name, node_id, id(obj) if kind == "class" and obj is not None else 0)
    found = parts.get(cache_key)
    if found is None:
        found = parts.setdefault(cache_key, Part(kind, source, name, node, obj, material))
    if found.obj is None and obj is not None:
        found.obj = obj
    return found


_class_parts: ClassMemo[Part] = ClassMemo()
on_reload(_class_parts.clear)  # a module ran again: its classes may be described by others now


def part_of_class(cls: type) -> Part:
    """The part of a class: its ``class`` statement, or its bytecode without source."""
    found = _class_parts.get(cls)
    if found is not None:
        return found
    namespace = namespace_of_class(cls)
    if namespace is None:
        namespace = _detached(module_name_of(cls))
    source = source_of_namespace(namespace)
    index = source.index
    qualname = str(attribute_of(cls, "__qualname__"))
    node: Optional[ast.ClassDef] = None
    if index is not None:
        candidates = [
            scope.node
            for scope in index.by_qualname.get(qualname, ())
            if isinstance(scope.node, ast.ClassDef)
        ]
        node = pick_class_node(cls, candidates, source)
    if node is None:
        material = "bytecode:" + class_without_source(cls)
        part = part_for(source, "class", qualname, None, cls, material)
    else:
        part = part_for(source, "class", qualname, node, cls)
    return _class_parts.set(cls, part)


_detached_namespaces: Dict[str, Dict[str, Any]] = {}


def _detached(module: str) -> Dict[str, Any]:
    """A stand-in namespace for a class whose module cannot be found."""
    return _detached_namespaces.setdefault(module, {"__name__": module})


def parts_of_scope(source: ModuleSource, scope: Scope, obj: Any) -> List[Part]:
    """The part a ``def``/``class``/``lambda`` belongs to.

    A class is its own part; a method, or anything nested in a class, belongs to the innermost
    class around it; a function nested in a module-level function belongs to that function; a
    ``lambda`` bound at module level belongs to the constants it is bound to.
    """
    node = scope.node
    if isinstance(node, ast.ClassDef):
        return [part_for(source, "class", scope.qualname, node, obj)]
    index = source.index
    assert index is not None
    for parent in reversed(scope.parents):
        if isinstance(parent, ast.ClassDef):
            outer = index.scope_of(parent)
            if outer is not None:
                return [part_for(source, "class", outer.qualname, parent)]
    top = scope.parents[0] if scope.parents else node
    if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)) and top is scope.statement:
        return [part_for(source, "function", top.name, top, obj if top is node else None)]
    names = index.names_bound_by(scope.statement)
    if names:
        return [constant_part(source, name) for name in sorted(set(names))]
    return [part_for(source, "function", scope.qualname, scope.statement)]


def constant_part(source: ModuleSource, name: str) -> Part:
    """The part of a module-level name: every statement binding it but imports."""
    bindings = tuple(b for b in bindings_of(source, name) if not is_import(b.statement))
    return part_for(source, "constant", name, bindings)


def bindings_of(source: ModuleSource, name: str) -> List[Binding]:
    """The module-level statements that bind ``name`` or change its value.

    ``X.update(…)`` changes ``X`` only when ``X`` is a container: on a logger, a settings
    object or a library module it changes no constant.
    """
    index = source.index
    if index is None:
        return []
    return [b for b in index.bindings.get(name, []) if _changes_value(source, b.statement)]


#: Values that a module-level ``X.append(…)`` (or another mutator call) really changes.
_MUTABLE = (list, dict, set, bytearray, collections.deque)


def _changes_value(source: ModuleSource, statement: ast.stmt) -> bool:
    receiver = mutation_receiver(statement)
    chain = static_chain(receiver) if receiver is not None else None
    if receiver is None or chain is None:
        return True
    value = source.namespace.get(chain[0], MISSING)
    for attribute in chain[1]:
        if value is MISSING:
            break
        value = attribute_of(value, attribute)
    return value is MISSING or issubclass(type(value), _MUTABLE)


def is_import(statement: ast.stmt) -> bool:
    """Does the statement import (a name it binds is followed to where it is defined)?"""
    return isinstance(statement, (ast.Import, ast.ImportFrom))
