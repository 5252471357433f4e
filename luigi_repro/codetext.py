"""The normalized text a code digest is made of: the same code gives the same text everywhere.

A code fingerprint that differs between two processes running the same code reruns every task
on every build, so nothing here may depend on the process: not on the string hash seed (the
members of a ``frozenset`` constant are described in sorted order), not on memory addresses, not
on Python's limits (an ``int`` of 5,000 digits has no ``repr`` since Python 3.11; it is written in
hex), and not on how deeply the code nests (a 400-branch ``elif`` chain or a 1,000-term sum is
walked with a stack of its own, never by recursion).
"""

from __future__ import annotations

import ast
import types
from typing import Any, List, Optional, Tuple

__all__ = ["describe_code", "describe_value", "dump", "literal_value"]

_PLAIN_SCALARS = (type(None), bool, int, float, str, bytes)


def _scalar(value: Any) -> str:
    """A scalar of an AST or a code object's constants, without ``repr``'s limits on ints."""
    if type(value) is int:
        return hex(value)
    return repr(value)


def dump(root: ast.AST) -> str:
    """The AST without line numbers: node types, field names and values, in prefix order."""
    out: List[str] = []
    stack: List[Tuple[bool, Any]] = [(False, root)]
    while stack:
        is_text, item = stack.pop()
        if is_text:
            out.append(item)
        elif isinstance(item, ast.AST):
            out.append(type(item).__name__ + "(")
            stack.append((True, ")"))
            for name in reversed(item._fields):
                stack.append((False, getattr(item, name, None)))
                stack.append((True, name + "="))
        elif isinstance(item, list):
            out.append("[")
            stack.append((True, "]"))
            stack.extend((False, element) for element in reversed(item))
        else:
            out.append(_scalar(item) + ",")
    return "".join(out)


def describe_value(value: Any, depth: int = 0) -> Optional[str]:
    """A deterministic text for plain data (numbers, strings, containers of them), else None."""
    if depth > 32:
        return None
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return f"{kind.__name__}:{_scalar(value)}"
    if kind in (tuple, list):
        items = [describe_value(item, depth + 1) for item in value]
        if any(item is None for item in items):
            return None
        return f"{kind.__name__}[{','.join(str(item) for item in items)}]"
    if kind in (set, frozenset):
        members = [describe_value(item, depth + 1) for item in value]
        if any(member is None for member in members):
            return None
        return f"{kind.__name__}{{{','.join(sorted(str(m) for m in members))}}}"
    if kind is dict:
        pairs = []
        for key, item in value.items():
            described = (describe_value(key, depth + 1), describe_value(item, depth + 1))
            if None in described:
                return None
            pairs.append(f"{described[0]}:{described[1]}")
        return f"dict{{{','.join(sorted(pairs))}}}"
    return None


def describe_code(code: types.CodeType) -> str:
    """Code without source: its bytecode, constants and names (no line numbers)."""
    consts = ",".join(_describe_constant(constant) for constant in code.co_consts)
    return f"{code.co_code.hex()}|{consts}|{','.join(code.co_names)}"


def _describe_constant(constant: Any) -> str:
    if isinstance(constant, types.CodeType):
        return describe_code(constant)
    if type(constant) is tuple:
        return "(" + ",".join(_describe_constant(item) for item in constant) + ")"
    if type(constant) is frozenset:  # ``x in {"a", "b"}``: its order follows the hash seed
        return "frozenset{" + ",".join(sorted(_describe_constant(m) for m in constant)) + "}"
    return _scalar(constant)


def literal_value(expression: ast.expr) -> Tuple[bool, Any]:
    """``(True, value)`` when ``expression`` is a plain literal (``5``, ``["a"]``), else
    ``(False, None)``."""
    try:
        return True, ast.literal_eval(expression)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None
