"""Plain data that other code changed: values that count beside the source that binds them.

A statement shows a value only when nothing else changes it. ``config.MODE = "fast"`` in a
settings module, a setup function that sets ``global LIMIT``, ``Task.LIMIT = 5`` below a class, a
class made by ``type("T", (Base,), {"LIMIT": 5})`` or by a factory called with arguments: the
text of the statement that binds the name no longer says what the code will use. So:

* a module-level constant bound by a plain literal (``LIMIT = 1``, ``COLUMNS = ["a"]``) whose
  value now is other plain data counts by that value too. One bound by anything else
  (``int(os.environ["LIMIT"])``, ``time.time()``) is not followed by value: it would differ on
  every build, and its statement says where it comes from;
* a class counts by its public plain-data attributes whose value is not exactly a literal its
  ``class`` statement binds them to: attributes set after the class, by ``type(...)``, or by a
  class statement inside a factory function (``LIMIT = limit``), and every public plain-data
  attribute of a class without source.

Only plain data is described (see :func:`luigi_repro.codetext.describe_value`), so the text is
the same in every process that runs the same code.
"""

from __future__ import annotations

import ast
from typing import Any, Collection, Dict, Iterator, List, Mapping, Optional, Set, Tuple

from luigi_repro.codetext import describe_value, literal_value

__all__ = [
    "ClassLiterals",
    "UNDESCRIBABLE",
    "changed_constant",
    "class_literals",
    "class_values",
    "literal_matches",
]


#: What :func:`changed_constant` says of a value other code set that cannot be described.
UNDESCRIBABLE = "undescribable:"


def changed_constant(name: str, statements: Collection[ast.stmt], value: Any) -> Optional[str]:
    """The description of ``value`` when other code changed the literal ``statements`` bind.

    None when some statement binds ``name`` to anything but a literal, when the value is not
    plain data, or when it is one of the literals.
    """
    literals: Set[str] = set()
    for statement in statements:
        expression = _literal_assigned(statement, name)
        if expression is None:
            continue
        ok, literal = literal_value(expression)
        described = describe_value(literal) if ok else None
        if described is None:
            return None
        literals.add(described)
    if not literals:
        return None
    now = describe_value(value)
    if now is None:
        # Changed by other code to something that is not plain data (an object, a structure
        # holding itself): it cannot be followed by value, and the caller lists it.
        return UNDESCRIBABLE + type(value).__qualname__
    return None if now in literals else now


def _literal_assigned(statement: ast.stmt, name: str) -> Optional[ast.expr]:
    """The expression ``name = <expression>`` assigns; None for a mutation call (its text counts).

    Anything else that binds the name (``+=``, ``for``, ``def``, a subscript) is returned as a
    non-literal placeholder, so that the constant is not followed by value.
    """
    if isinstance(statement, ast.Expr):
        return None  # ``COLUMNS.append("b")``: its text is part of the constant already
    if isinstance(statement, ast.Assign) and all(
        isinstance(target, ast.Name) for target in statement.targets
    ):
        return statement.value
    if (
        isinstance(statement, ast.AnnAssign)
        and isinstance(statement.target, ast.Name)
        and statement.value is not None
    ):
        return statement.value
    return ast.Name(id=name, ctx=ast.Load())  # never a literal


#: What a ``class`` statement binds: literal values by name, and names bound otherwise.
ClassLiterals = Tuple[Mapping[str, Set[str]], Set[str]]


def class_literals(node: ast.ClassDef) -> ClassLiterals:
    """Names the class body binds to plain literals (with their descriptions), and the others."""
    literals: Dict[str, Set[str]] = {}
    other: Set[str] = set()
    for statement in _body_statements(node.body):
        if isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            value = statement.value
            ok, literal = literal_value(value) if value is not None else (False, None)
            described = describe_value(literal) if ok else None
            for name in names:
                if described is None:
                    other.add(name)
                else:
                    literals.setdefault(name, set()).add(described)
        else:
            other.update(_names_bound(statement))
    return literals, other


def _body_statements(body: List[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of a class body, looking inside ``if``/``for``/``try``/``with`` blocks.

    A ``for`` or ``with`` is yielded itself too (it binds its targets), not ``def``/``class``
    bodies (their names are their own).
    """
    stack = list(reversed(body))
    while stack:
        statement = stack.pop()
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield statement
            continue
        blocks: List[List[ast.stmt]] = []
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(statement, field, None)
            if isinstance(inner, list):
                blocks.append(inner)
        blocks.extend(handler.body for handler in getattr(statement, "handlers", []))
        blocks.extend(case.body for case in getattr(statement, "cases", []))
        if not blocks or isinstance(statement, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
            yield statement
        for block in reversed(blocks):
            stack.extend(reversed(block))


def _names_bound(statement: ast.stmt) -> Iterator[str]:
    """Names a statement of a class body binds itself (not inside its blocks)."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield statement.name
        return
    if isinstance(statement, (ast.For, ast.AsyncFor)):
        targets: List[ast.AST] = [statement.target]
    elif isinstance(statement, (ast.With, ast.AsyncWith)):
        targets = [item.optional_vars for item in statement.items if item.optional_vars]
    else:
        targets = [statement]
    for target in targets:
        for inner in ast.walk(target):
            if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                yield inner.id


def class_values(cls: type, literals: Optional[ClassLiterals], nested: bool) -> str:
    """The class's plain-data attributes that its statement does not show, as ``name=value;…``.

    ``literals`` is what the matched ``class`` statement binds (None for a class without
    source); ``nested`` says the statement runs inside a function, where what it binds comes
    from the call (``LIMIT = limit``). Private names (``_cache``) count only when the statement
    binds them: libraries keep their bookkeeping on classes under such names at run time
    (Luigi's ``_unconsumed_params``), which is no code.
    """
    bound, other = literals if literals is not None else ({}, set())
    items = []
    for name, value in _own_attributes(cls, bound):
        described = describe_value(value)
        if described is None or described in bound.get(name, ()):
            continue
        if name in other and not nested:
            continue  # bound by an expression at module level: like a constant, not by value
        items.append(f"{name}={described}")
    return ";".join(items)


def literal_matches(cls: type, literals: ClassLiterals) -> Tuple[int, int]:
    """How well a candidate ``class`` statement explains the class: (mismatches, matches)."""
    bound = literals[0]
    attributes = dict(_own_attributes(cls, bound))
    matches = mismatches = 0
    for name, described in bound.items():
        if name not in attributes:
            continue
        if describe_value(attributes[name]) in described:
            matches += 1
        else:
            mismatches += 1
    return mismatches, matches


def _own_attributes(cls: type, bound: Mapping[str, Any]) -> List[Tuple[str, Any]]:
    """The class's own public attributes (and private ones in ``bound``), in name order."""
    try:
        items = list(vars(cls).items())
    except Exception:  # noqa: BLE001 - a metaclass may refuse; the class counts by its source
        return []
    return sorted(
        (
            (name, value)
            for name, value in items
            if isinstance(name, str) and (not name.startswith("_") or name in bound)
        ),
        key=lambda item: item[0],
    )
