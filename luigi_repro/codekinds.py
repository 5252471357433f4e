"""How the reach walk sorts what it meets: code or data, a container to look into, an import.

These are the tests the walk applies to each value and statement before following it; they reach
nothing themselves, so they sit apart from the mutually recursive walk in codereach.
"""

from __future__ import annotations

import ast
import functools
import types
from typing import Any, Optional

from luigi_repro.codeprobe import MISSING, attribute_of
from luigi_repro.codesource import ModuleSource, Scope

#: Scalars never hold code: skipped at once when walking a container.
SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
#: Containers whose items are followed (``HANDLERS = {"scale": scale}``, ``BACKENDS = [mod]``).
CONTAINERS = (dict, list, tuple, set, frozenset, types.MappingProxyType)
MAPPINGS = (dict, types.MappingProxyType)
#: How deep into nested containers code is looked for.
CONTAINER_DEPTH = 4


def is_code(value: Any) -> bool:
    """Is the value a class, function or other callable whose code may be the user's?"""
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
    ) or (callable(value) and attribute_of(value, "__wrapped__") is not MISSING)


def imported_as(value: Any, name: str) -> bool:
    """Is ``name`` what ``import <module>`` binds for the module ``value``?"""
    if not issubclass(type(value), types.ModuleType):
        return False
    module = str(attribute_of(value, "__name__"))
    return name in (module.rpartition(".")[2], module.partition(".")[0])


def scope_of_code(source: ModuleSource, code: types.CodeType) -> Optional[Scope]:
    """The ``def`` or ``lambda`` in the module's source that compiled to ``code``."""
    index = source.index
    if index is None or not source.holds(code):
        return None
    candidates = [
        scope
        for scope in index.by_first_line.get(code.co_firstlineno, ())
        if scope.qualname.rpartition(".")[2] == code.co_name
    ]
    if len(candidates) > 1:
        qualname = getattr(code, "co_qualname", None)
        candidates = [s for s in candidates if s.qualname == qualname] or candidates
    return candidates[0] if candidates else None


def assigns(statement: ast.stmt) -> bool:
    """Does the statement compute a value (rather than import or define one)?"""
    return not isinstance(
        statement,
        (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef),
    )
