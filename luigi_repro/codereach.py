"""What a value held at run time, or a module-level name, stands for among the user's code.

The source of a part says which names it uses; this module says which parts those names reach:
a module-level name through the statements that bind it (``from x import y`` followed to the
module that defines ``y``, ``from x import *`` too), ``name.a.b`` through user modules down to the
name they define, a function through its ``def`` and what it holds at run time (closure cells,
default values, the function it wraps), a class through its ``class`` statement.

Values hold code too (a registry filled by a decorator, a table of backend modules, the
implementations registered on a ``functools.singledispatch`` function): containers are looked
into a few levels deep, and a user module held as a value counts whole.

What a function or a name reaches is learned once (per function, and per module snapshot for
names); a cycle of functions or names ends where it started.
"""

from __future__ import annotations

import ast
import builtins
import functools
import sys
import types
import weakref
from typing import Any, Dict, Iterable, List, Optional, Tuple

from luigi_repro.codeclasses import class_is_users, describe_function, is_task_class
from luigi_repro.codeimports import import_user_module
from luigi_repro.codekinds import (
    CONTAINER_DEPTH,
    CONTAINERS,
    MAPPINGS,
    SCALARS,
    assigns,
    imported_as,
    is_code,
    scope_of_code,
)
from luigi_repro.codeparts import (
    NOTHING,
    Reach,
    bindings_of,
    constant_part,
    is_import,
    joined,
    part_for,
    part_of_class,
    parts_of_scope,
)
from luigi_repro.codeprobe import MISSING, attribute_of, is_class
from luigi_repro.codesource import (
    ModuleSource,
    is_user_namespace,
    on_reload,
    source_of_namespace,
)
from luigi_repro.codetext import describe_value

__all__ = [
    "reach_in_module",
    "reach_of_chain",
    "reach_of_module",
    "reach_of_name",
    "reach_of_object",
    "reach_of_value",
    "runtime_reach",
]


def reach_of_object(obj: Any, depth: int = 0) -> Reach:
    """The parts a class, function or other callable object stands for (none if not user code)."""
    if depth > 16:
        return NOTHING
    kind = type(obj)
    if issubclass(kind, (staticmethod, classmethod)):
        return reach_of_object(obj.__func__, depth + 1)
    if issubclass(kind, property):
        return joined(
            reach_of_object(f, depth + 1) for f in (obj.fget, obj.fset, obj.fdel) if f is not None
        )
    if issubclass(kind, functools.cached_property):
        return reach_of_object(obj.func, depth + 1)
    if issubclass(kind, functools.singledispatchmethod):
        return reach_of_object(obj.dispatcher, depth + 1)
    if issubclass(kind, functools.partial):
        values = (*obj.args, *obj.keywords.values())
        return joined(
            [
                reach_of_object(obj.func, depth + 1),
                *(reach_of_value(v, modules=True) for v in values),
            ]
        )
    if issubclass(kind, types.MethodType):
        return joined([reach_of_object(obj.__func__, depth + 1), reach_of_value(obj.__self__)])
    if kind is types.FunctionType:
        return _reach_of_function(obj)
    if is_class(obj):
        if not class_is_users(obj):
            return NOTHING
        return Reach((part_of_class(obj),))
    wrapped = attribute_of(obj, "__wrapped__")
    if wrapped is not MISSING and wrapped is not None and not issubclass(kind, types.ModuleType):
        return reach_of_object(wrapped, depth + 1)
    return NOTHING


def reach_of_value(value: Any, depth: int = 0, modules: bool = False) -> Reach:
    """The parts a value held at run time reaches (a closure cell, a default argument…).

    Containers are looked into; a user module held as a value (``modules``) counts whole.
    """
    kind = type(value)
    if kind in SCALARS:
        return NOTHING
    if issubclass(kind, types.ModuleType):
        return _reach_of_module_value(value) if modules else NOTHING
    if issubclass(kind, CONTAINERS):
        return _reach_of_items(value, depth)
    if is_task_class(value):
        return NOTHING
    if is_code(value):
        return reach_of_object(value)
    if attribute_of(kind, "__module__") == "builtins" or is_task_class(kind):
        return NOTHING
    return Reach((part_of_class(kind),)) if class_is_users(kind) else NOTHING


def _reach_of_items(container: Any, depth: int) -> Reach:
    """The code a container holds: a registry of handlers, a table of backend modules."""
    if depth >= CONTAINER_DEPTH:
        return NOTHING
    try:
        if issubclass(type(container), MAPPINGS):
            items = [*container.keys(), *container.values()]
        else:
            items = list(container)
    except Exception:  # noqa: BLE001 - a container of the user's may refuse to be listed
        return NOTHING
    return joined(
        reach_of_value(item, depth + 1, modules=True) for item in items if type(item) not in SCALARS
    )


#: What each function reaches, learned once (dropped when a module runs again).
_function_reach: weakref.WeakKeyDictionary[types.FunctionType, Reach] = weakref.WeakKeyDictionary()
on_reload(_function_reach.clear)


def _reach_of_function(func: types.FunctionType) -> Reach:
    found = _function_reach.get(func)
    if found is None:
        _function_reach[func] = NOTHING  # functions holding each other end here
        try:
            found = _locate_function(func)
        except BaseException:
            del _function_reach[func]  # never leave the placeholder for a later walk
            raise
        _function_reach[func] = found
    return found


def _locate_function(func: types.FunctionType) -> Reach:
    own = vars(func)
    wrapped = own.get("__wrapped__")
    if not is_user_namespace(func.__globals__):
        # Luigi's or our wrappers (the run() protocol) stand for the user function inside;
        # ``functools.singledispatch`` for the implementations registered on it too.
        reaches = [reach_of_object(wrapped, 1)] if wrapped is not None else []
        registry = own.get("registry")
        if issubclass(type(registry), MAPPINGS) and callable(own.get("dispatch")):
            reaches.append(_reach_of_items(registry, 0))
        return joined(reaches)
    source = source_of_namespace(func.__globals__)
    code = func.__code__
    scope = scope_of_code(source, code)
    if scope is not None:
        parts = parts_of_scope(source, scope, func)
    else:
        name = getattr(code, "co_qualname", func.__qualname__)
        material = "bytecode:" + describe_function(func)
        parts = [part_for(source, "function", name, None, func, material)]
    return joined([Reach(tuple(parts)), runtime_reach(func)])


def runtime_reach(func: types.FunctionType) -> Reach:
    """What a function holds at run time: closure cells, default values, the function it wraps.

    A user module in a cell counts whole (a factory's argument), unless the cell is the name
    an ``import`` in the enclosing function binds: its source says which attributes are used.
    """
    reaches: List[Reach] = []
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        reaches.append(reach_of_value(value, modules=not imported_as(value, name)))
    values = [*(func.__defaults__ or ()), *(func.__kwdefaults__ or {}).values()]
    reaches.extend(reach_of_value(value, modules=True) for value in values)
    wrapped = vars(func).get("__wrapped__")
    if wrapped is not None:
        reaches.append(reach_of_object(wrapped, 1))
    return joined(reaches)


def reach_of_name(source: ModuleSource, name: str, bare: bool) -> Reach:
    """What a module-level name of ``source`` reaches, used bare or through attributes."""
    if not source.user:
        return NOTHING
    cache: Dict[Tuple[str, bool], Reach] = source.analyses.setdefault("names", {})
    found = cache.get((name, bare))
    if found is None:
        cache[(name, bare)] = NOTHING  # a module-level cycle ends here
        try:
            found = _resolve_name(source, name, bare)
        except BaseException:
            del cache[(name, bare)]  # never leave the placeholder for a later walk
            raise
        cache[(name, bare)] = found
    return found


def _resolve_name(source: ModuleSource, name: str, bare: bool) -> Reach:
    value = source.namespace.get(name, MISSING)
    if value is MISSING:
        if hasattr(builtins, name):
            return NOTHING
        return _from_star_imports(source, name, bare) or NOTHING
    bindings = bindings_of(source, name)
    if issubclass(type(value), types.ModuleType):
        # Its attributes are followed one by one; statements here that set them
        # (``config.MODE = "fast"``) count as this name's.
        if any(not is_import(b.statement) for b in bindings):
            return Reach((constant_part(source, name),))
        return NOTHING
    if is_code(value):
        if bare and is_task_class(value):
            return NOTHING
        reach = reach_of_object(value)
        assigned = any(assigns(b.statement) for b in bindings)
        if reach.parts and assigned:  # ``impute = cached(_impute)``: the statement counts too
            reach = joined([reach, Reach((constant_part(source, name),))])
        return reach
    reaches: List[Reach] = []
    for binding in bindings:
        statement = binding.statement
        if isinstance(statement, ast.ImportFrom):
            reaches.append(_through_import(source, statement, name, bare))
    if any(not is_import(b.statement) for b in bindings):
        reaches.append(Reach((constant_part(source, name),)))
        reaches.append(reach_of_value(value, modules=True))  # the code a registry holds
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
            return joined([Reach(unresolved=(unresolved,)), reach_of_value(value, modules=True)])
        material = "value:" + description
        reaches.append(Reach((part_for(source, "constant", name, None, None, material),)))
    return joined(reaches)


def _through_import(
    source: ModuleSource, statement: ast.ImportFrom, name: str, bare: bool
) -> Reach:
    """Follow ``from x import y as name`` to the module that defines ``y``."""
    module = sys.modules.get(source.absolute(statement.module, statement.level))
    if module is None or not is_user_namespace(vars(module)):
        return NOTHING
    for alias in statement.names:
        if (alias.asname or alias.name) == name:
            if issubclass(type(vars(module).get(alias.name)), types.ModuleType):
                return NOTHING
            return reach_of_name(source_of_namespace(vars(module)), alias.name, bare)
    return NOTHING


def _from_star_imports(source: ModuleSource, name: str, bare: bool) -> Optional[Reach]:
    index = source.index
    for statement in index.star_imports if index is not None else ():
        module = sys.modules.get(source.absolute(statement.module, statement.level))
        if module is not None and name in vars(module):
            if not is_user_namespace(vars(module)):
                return NOTHING
            return reach_of_name(source_of_namespace(vars(module)), name, bare)
    return None


def reach_of_chain(source: ModuleSource, name: str, chain: Tuple[str, ...]) -> Reach:
    """What ``name.a.b…`` reaches: through user modules down to the name they define."""
    value = source.namespace.get(name, MISSING)
    if issubclass(type(value), types.ModuleType):
        return joined([reach_in_module(value, chain), reach_of_name(source, name, False)])
    return reach_of_name(source, name, bare=False)


def reach_in_module(module: types.ModuleType, chain: Tuple[str, ...]) -> Reach:
    """What ``module.a.b…`` reaches: through user submodules down to the name one defines."""
    current = module
    for step, attribute in enumerate(chain):
        namespace = vars(current)
        if not is_user_namespace(namespace):
            return NOTHING
        value = namespace.get(attribute, MISSING)
        if value is MISSING:
            value = sys.modules.get(f"{current.__name__}.{attribute}", MISSING)
        if issubclass(type(value), types.ModuleType):
            current = value
            continue
        if value is MISSING:
            return Reach(
                unresolved=(f"{current.__name__}.{attribute} (not defined in the module)",)
            )
        return reach_of_name(source_of_namespace(namespace), attribute, bare=step == len(chain) - 1)
    return NOTHING


def reach_of_module(name: str, where: str) -> Reach:
    """Everything a user module defines: it is used by a name only known at run time."""
    module, problem = import_user_module(name)
    if problem is not None:
        return Reach(unresolved=(f"import {name} in {where} ({problem})",))
    if module is None:
        return NOTHING
    return _whole_module(source_of_namespace(vars(module)))


def _reach_of_module_value(module: types.ModuleType) -> Reach:
    """A user module held as a value: which of its attributes is used is not known."""
    namespace = getattr(module, "__dict__", None)
    if not isinstance(namespace, dict) or not is_user_namespace(namespace):
        return NOTHING
    return _whole_module(source_of_namespace(namespace))


def _whole_module(source: ModuleSource) -> Reach:
    """Every top-level function, class and constant of a user module."""
    cache: Dict[str, Reach] = source.analyses.setdefault("whole", {})
    found = cache.get("")
    if found is None:
        cache[""] = NOTHING  # a cycle of such modules ends here
        try:
            index = source.index
            names: Iterable[str] = (
                index.bindings
                if index is not None
                else (n for n in source.namespace if n[:2] != "__")
            )
            found = joined(reach_of_name(source, n, bare=True) for n in list(names))
        except BaseException:
            del cache[""]  # never leave the placeholder for a later walk
            raise
        cache[""] = found
    return found
