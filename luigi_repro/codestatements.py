"""Module-level statements read as bindings: which statements bind or change each name.

Split from the source snapshots because it is pure syntax: it needs only an AST. The walks use
stacks of their own, so a long ``elif`` chain is no deeper for Python than a flat one.
"""

from __future__ import annotations

import ast
from typing import Iterator, List, Optional, Tuple


def first_line(node: ast.AST) -> int:
    """The line a node's code starts at: its first decorator, as ``co_firstlineno`` counts."""
    lines = [getattr(node, "lineno", 0)]
    lines.extend(d.lineno for d in getattr(node, "decorator_list", ()))
    return min(lines)


def is_compound(statement: ast.stmt) -> bool:
    """Does the statement hold statements of its own (``if``, ``for``, ``with``, ``try``…)?"""
    return isinstance(statement, _BLOCKS)


_BLOCKS: Tuple[type, ...] = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    *((ast.TryStar,) if hasattr(ast, "TryStar") else ()),
    *((ast.Match,) if hasattr(ast, "Match") else ()),
)


#: The tests of the blocks around a module-level statement (``("if", test)``…).
_Headers = Tuple[Tuple[str, ast.AST], ...]


def module_statements(
    body: List[ast.stmt], headers: _Headers
) -> Iterator[Tuple[_Headers, ast.stmt]]:
    """Every module-level statement, looking inside ``if``/``for``/``try``/``with`` blocks.

    Each comes with the headers of the blocks around it (``("if", test)`` for the body of an
    ``if``, ``("else", test)`` for its ``else``…), since they decide whether it runs. A ``for``
    or ``with`` is also yielded itself: it binds its targets. Walked with a stack of its own, so
    a long ``elif`` chain at module level is no deeper for Python than a flat one.
    """
    stack: List[Tuple[_Headers, Iterator[ast.stmt]]] = [(headers, iter(body))]
    while stack:
        around, statements = stack[-1]
        statement = next(statements, None)
        if statement is None:
            stack.pop()
            continue
        blocks: List[Tuple[_Headers, List[ast.stmt]]] = []
        if isinstance(statement, ast.If):
            blocks.append(((*around, ("if", statement.test)), statement.body))
            blocks.append(((*around, ("else", statement.test)), statement.orelse))
        elif isinstance(statement, (ast.For, ast.AsyncFor, ast.While)):
            if not isinstance(statement, ast.While):
                yield around, statement
            header = statement.test if isinstance(statement, ast.While) else statement.iter
            blocks.append(((*around, ("loop", header)), statement.body))
            blocks.append(((*around, ("loop-else", header)), statement.orelse))
        elif isinstance(statement, (ast.With, ast.AsyncWith)):
            yield around, statement
            items = ast.Tuple(elts=[item.context_expr for item in statement.items], ctx=ast.Load())
            blocks.append(((*around, ("with", items)), statement.body))
        elif isinstance(statement, _BLOCKS):  # try / match: every branch may run
            for field in ("body", "orelse", "finalbody"):
                blocks.append((around, getattr(statement, field, [])))
            for handler in getattr(statement, "handlers", []):
                caught = handler.type or ast.Constant(value=None)
                blocks.append(((*around, ("except", caught)), handler.body))
            for case in getattr(statement, "cases", []):
                blocks.append(((*around, ("case", case.pattern)), case.body))
        else:
            yield around, statement
        stack.extend((inner, iter(block)) for inner, block in reversed(blocks))


#: Methods that change a list, dict, set or deque in place: ``COLUMNS.append("x")`` at module
#: level changes ``COLUMNS``; ``log.info("…")`` or ``pd.set_option(…)`` changes no constant.
MUTATORS = frozenset(
    {
        "__setitem__",
        "__delitem__",
        "__iadd__",
        "add",
        "append",
        "appendleft",
        "clear",
        "discard",
        "extend",
        "extendleft",
        "insert",
        "pop",
        "popitem",
        "popleft",
        "remove",
        "reverse",
        "rotate",
        "setdefault",
        "sort",
        "update",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
    }
)


def mutation_receiver(statement: ast.stmt) -> Optional[ast.expr]:
    """``COLUMNS`` in a module-level ``COLUMNS.append(…)``: what a mutator call changes."""
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        func = statement.value.func
        if isinstance(func, ast.Attribute) and func.attr in MUTATORS:
            return func.value
    return None


def names_bound_by(statement: ast.stmt) -> Iterator[str]:
    """Module-level names a statement binds, or may mutate in place (``X.append(…)``, ``X[k] = v``).

    Whether a mutator call really changes a container is decided with the value at run time
    (:mod:`luigi_repro.codeparts`): ``parser.add(…)`` on an object that is no container
    changes no constant.
    """
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield statement.name
    elif isinstance(statement, ast.Import):
        for alias in statement.names:
            yield alias.asname or alias.name.partition(".")[0]
    elif isinstance(statement, ast.ImportFrom):
        for alias in statement.names:
            if alias.name != "*":
                yield alias.asname or alias.name
    elif isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
        targets: List[ast.expr]
        if isinstance(statement, (ast.Assign, ast.Delete)):
            targets = list(statement.targets)
        else:
            targets = [statement.target]
        for target in targets:
            yield from _target_roots(target)
    elif isinstance(statement, (ast.For, ast.AsyncFor)):
        yield from _target_roots(statement.target)
    elif isinstance(statement, (ast.With, ast.AsyncWith)):
        for item in statement.items:
            if item.optional_vars is not None:
                yield from _target_roots(item.optional_vars)
    else:
        receiver = mutation_receiver(statement)
        if receiver is not None:
            root = _chain_root(receiver)
            if root is not None:
                yield root


def _target_roots(target: ast.expr) -> Iterator[str]:
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _target_roots(element)
    elif isinstance(target, ast.Starred):
        yield from _target_roots(target.value)
    else:
        root = _chain_root(target)
        if root is not None:
            yield root


def _chain_root(node: ast.expr) -> Optional[str]:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def strip_docstrings(tree: ast.AST) -> None:
    """Remove docstrings in place: they never change what the code does."""
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
