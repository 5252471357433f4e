"""The walk of a code closure: from the task's classes, part by part, through what each uses.

Each part is expanded once (the expansion is kept on the part, shared by every closure that
reaches it): the names its source uses, read by :mod:`luigi_repro.coderefs` and followed by
:mod:`luigi_repro.codereach`, the globals its bytecode loads when it has no source, the base
classes and class attributes of a class, and what a function holds at run time. References
that cannot be followed statically (``getattr(module, name)`` on a user module or class,
``exec``, ``eval``, ``importlib.import_module(name)``, ``globals()[…]``) are collected with
where they are.
"""

from __future__ import annotations

import ast
import sys
import types
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from luigi_repro.codeclasses import class_is_users, generated_method, own_code_version
from luigi_repro.codeimports import import_user_module
from luigi_repro.codeparts import NOTHING, Node, Part, Reach, joined, parts_of_scope
from luigi_repro.codeprobe import MISSING, attribute_of, function_in, is_class, object_at, own_items
from luigi_repro.codereach import (
    reach_in_module,
    reach_of_chain,
    reach_of_module,
    reach_of_name,
    reach_of_object,
    reach_of_value,
    runtime_reach,
)
from luigi_repro.coderefs import References, Use, bound_names, bytecode_uses, definition_names
from luigi_repro.codesource import ModuleSource, first_line, is_user_namespace, source_of_namespace
from luigi_repro.codevalues import UNDESCRIBABLE, changed_constant

__all__ = ["walk"]


def walk(roots: Iterable[Part]) -> Tuple[Dict[Part, str], Tuple[str, ...]]:
    """Every part reached from ``roots`` with its material, and what could not be followed.

    A class that sets ``code_version`` stands for itself by that string: what it reaches is
    not walked.
    """
    materials: Dict[Part, str] = {}
    unresolved: Dict[str, None] = {}
    stack = list(reversed(list(roots)))
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
    return materials, tuple(unresolved)


def _version_of(part: Part) -> Optional[str]:
    """The ``code_version`` a class part sets itself, if any."""
    if part.kind != "class":
        return None
    cls = part.obj if part.obj is not None else object_at(part.source.namespace, part.name)
    return own_code_version(cls) if is_class(cls) else None


def _expand(part: Part) -> Reach:
    """Everything ``part`` reaches directly (computed once per part)."""
    if part.expansion is None:
        part.expansion = _expansion(part) if part.source.user else NOTHING
    return part.expansion


def _expansion(part: Part) -> Reach:
    """What the source of a part uses, and the code its class or function holds at run time."""
    source, node = part.source, part.node
    index = source.index
    if isinstance(node, tuple):  # a constant: its binding statements
        pieces = [h for binding in node for _, h in binding.headers]
        pieces.extend(binding.statement for binding in node)
        reach = joined(_references(source, piece, part.key, None) for piece in pieces)
        value = source.namespace.get(part.name, MISSING)
        changed = None
        if value is not MISSING:
            changed = changed_constant(part.name, [b.statement for b in node], value)
        if changed is not None and changed.startswith(UNDESCRIBABLE):
            unresolved = f"{part.key}: other code set it to a {changed[len(UNDESCRIBABLE) :]}"
            reach = joined([reach, Reach(unresolved=(unresolved,))])
        return reach
    if node is None:  # no source: its bytecode
        return _bytecode_expansion(part)
    reaches: List[Reach] = []
    scope = index.scope_of(node) if index is not None else None
    if scope is not None:
        names = index.global_names(scope) if index is not None else None
        reaches.append(_references(source, node, part.key, names))
        enclosing = next(
            (p for p in reversed(scope.parents) if not isinstance(p, ast.ClassDef)), None
        )
        if enclosing is not None and index is not None:
            outer = index.scope_of(enclosing)
            if outer is not None:  # a class made inside a function: the function counts
                reaches.append(Reach(tuple(parts_of_scope(source, outer, None))))
    else:
        assert isinstance(node, ast.AST)
        reaches.append(_references(source, node, part.key, None))
    obj = part.obj if part.obj is not None else object_at(source.namespace, part.name)
    if part.kind == "class" and is_class(obj):
        reaches.extend(reach_of_object(base) for base in obj.__bases__)
        reaches.extend(_reach_of_attributes(obj, source, node))
    elif part.kind == "function" and type(obj) is types.FunctionType:
        reaches.append(runtime_reach(obj))
    return joined(reaches)


def _reach_of_attributes(cls: type, source: ModuleSource, node: Node) -> Iterable[Reach]:
    """Class attributes whose code is not in the class statement (``Task.run = helper``), and
    the code that class attributes hold (a module, a table of handlers)."""
    for name, value in own_items(cls):
        func = function_in(value)
        if func is not None and isinstance(node, ast.AST):
            if generated_method(cls, name, func, has_source=True):
                continue
            if source.holds(func.__code__):
                line = func.__code__.co_firstlineno
                if first_line(node) <= line <= (getattr(node, "end_lineno", None) or line):
                    continue  # a method written in the class: its source is part of the class's
        yield reach_of_value(value, modules=True)


def _references(
    source: ModuleSource, node: ast.AST, where: str, global_names: Optional[Set[str]]
) -> Reach:
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
    reaches: List[Reach] = [Reach(unresolved=tuple(visitor.unresolved))]
    for name, at in visitor.imported:
        problem = import_user_module(name)[1]
        if problem is not None:
            reaches.append(Reach(unresolved=(f"import {name} in {at} ({problem})",)))
    for name, use in sorted(visitor.uses.items()):
        alias = visitor.aliases.get(name)
        if alias is not None:
            reaches.append(_through_local_import(alias, use, where))
        if name in global_names:
            reaches.extend(reach_of_chain(source, name, chain) for chain in sorted(use.chains))
            if use.bare:
                reaches.append(reach_of_name(source, name, bare=name not in bases))
    for root, attributes, text, at in visitor.lookups:
        target = _static_value(source, visitor.aliases, root, attributes, root in global_names)
        if issubclass(type(target), types.ModuleType):
            if is_user_namespace(vars(target)):
                reaches.append(Reach(unresolved=(f"{text} in {at}",)))
        elif is_class(target) and class_is_users(target):
            reaches.append(Reach(unresolved=(f"{text} in {at}",)))
    reaches.extend(reach_of_module(name, at) for name, at in visitor.whole_modules)
    return joined(reaches)


def _through_local_import(alias: Tuple[str, Optional[str]], use: Use, where: str) -> Reach:
    """Follow a name bound by an ``import`` inside a function."""
    module_name, attribute = alias
    module, problem = import_user_module(module_name)
    if problem is not None:
        return Reach(unresolved=(f"import {module_name} in {where} ({problem})",))
    if module is None:
        return NOTHING
    if attribute is None:
        return joined(reach_in_module(module, chain) for chain in sorted(use.chains))
    value = vars(module).get(attribute, MISSING)
    if value is MISSING:  # ``from . import config``: a submodule, imported by the statement
        value, problem = import_user_module(f"{module_name}.{attribute}")
        if problem is not None:
            return Reach(unresolved=(f"import {module_name}.{attribute} in {where} ({problem})",))
    if issubclass(type(value), types.ModuleType):
        return joined(reach_in_module(value, chain) for chain in sorted(use.chains))
    source = source_of_namespace(vars(module))
    reaches = [reach_of_name(source, attribute, bare=False)] if use.chains else []
    if use.bare:
        reaches.append(reach_of_name(source, attribute, bare=True))
    return joined(reaches)


def _static_value(
    source: ModuleSource,
    aliases: Mapping[str, Tuple[str, Optional[str]]],
    root: str,
    attributes: Tuple[str, ...],
    is_global: bool,
) -> Any:
    """The object ``root.a.b`` names now, when ``root`` is a global or a local import."""
    value: Any = MISSING
    alias = aliases.get(root)
    if alias is not None:
        module = sys.modules.get(alias[0])
        value = module if alias[1] is None else attribute_of(module, alias[1])
    elif is_global:
        value = source.namespace.get(root, MISSING)
    for attribute in attributes:
        if value is MISSING:
            break
        value = attribute_of(value, attribute)
    return None if value is MISSING else value


#: Builtins that run code only known at run time, as an unresolved reference names them.
_DYNAMIC_BUILTINS = {
    "exec": "exec()",
    "eval": "eval()",
    "__import__": "__import__(...)",
    "globals": "globals()",
}


def _bytecode_expansion(part: Part) -> Reach:
    """What code without source reaches: the globals its bytecode loads, and its runtime values."""
    obj = part.obj
    functions: List[types.FunctionType] = []
    reaches: List[Reach] = []
    if type(obj) is types.FunctionType:
        functions.append(obj)
    elif is_class(obj):
        for name, value in own_items(obj):
            func = function_in(value)
            if func is not None and generated_method(obj, name, func, has_source=False):
                continue  # the library's code, counted by the class's defaults
            if func is not None and func.__globals__ is part.source.namespace:
                functions.append(func)  # made with the class: in the class's own description
            else:
                reaches.append(reach_of_value(value, modules=True))
        reaches.extend(reach_of_object(base) for base in obj.__bases__)
    for func in functions:
        where = f"function {part.module}.{getattr(func.__code__, 'co_qualname', func.__name__)}"
        for name, use in sorted(bytecode_uses(func.__code__).items()):
            if name in _DYNAMIC_BUILTINS and name not in part.source.namespace:
                reaches.append(Reach(unresolved=(f"{_DYNAMIC_BUILTINS[name]} in {where}",)))
                continue
            reaches.extend(reach_of_chain(part.source, name, c) for c in sorted(use.chains))
            if use.bare:
                reaches.append(reach_of_name(part.source, name, bare=True))
        if func is not obj:
            reaches.append(runtime_reach(func))
    return joined(reaches)
