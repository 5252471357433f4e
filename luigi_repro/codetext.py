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
import datetime
import decimal
import enum
import fractions
import pathlib
import types
import uuid
from typing import Any, Dict, List, Optional, Set, Tuple

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
                value = getattr(item, name, None)
                if value is None or (isinstance(value, list) and not value):
                    # Newer Pythons add optional fields (3.12: ``type_params=[]`` on every def
                    # and class): an empty one is left out, so that an upgrade is no code change.
                    continue
                stack.append((False, value))
                stack.append((True, name + "="))
        elif isinstance(item, list):
            out.append("[")
            stack.append((True, "]"))
            stack.extend((False, element) for element in reversed(item))
        else:
            out.append(_scalar(item) + ",")
    return "".join(out)


#: How many items a value may hold to be described (a bigger one is not plain configuration).
_VALUE_BUDGET = 20_000
#: How long its description may grow, in characters.
_TEXT_BUDGET = 4_000_000


def describe_value(value: Any) -> Optional[str]:
    """A deterministic text for plain data, else None.

    Plain data: numbers, strings, bytes, dates and times, decimals, paths, UUIDs, enum members,
    and lists, tuples, sets and dicts of them. A value that holds itself (a tree with parent
    links), nests deeper than 32 levels, holds more than 20,000 items or describes to more than
    4 million characters is not plain data; each shared object is described once per value, so
    the work stays linear.
    """
    return _Describer().describe(value, 0)


class _Describer:
    def __init__(self) -> None:
        self.budget = _VALUE_BUDGET
        self.characters = _TEXT_BUDGET
        self.path: Set[int] = set()
        self.done: Dict[int, Optional[str]] = {}

    def describe(self, value: Any, depth: int) -> Optional[str]:
        self.budget -= 1
        if self.budget < 0 or depth > 32:
            return None
        kind = type(value)
        if kind in _PLAIN_SCALARS:
            return f"{kind.__name__}:{_scalar(value)}"
        special = _describe_special(value)
        if special is not None:
            return special
        if kind not in (tuple, list, set, frozenset, dict):
            return None
        key = id(value)
        if key in self.done:
            return self._charged(self.done[key])
        if key in self.path:
            return None  # it holds itself
        self.path.add(key)
        try:
            text = self._container(value, kind, depth)
        finally:
            self.path.discard(key)
        self.done[key] = text
        return self._charged(text)

    def _charged(self, text: Optional[str]) -> Optional[str]:
        """``text``, unless the description has grown past its size limit (a value whose parts
        are shared over and over can describe to a text exponentially longer than itself)."""
        if text is None:
            return None
        self.characters -= len(text)
        return text if self.characters >= 0 else None

    def _container(self, value: Any, kind: type, depth: int) -> Optional[str]:
        if kind is dict:
            pairs = []
            for key, item in value.items():
                described = (self.describe(key, depth + 1), self.describe(item, depth + 1))
                if None in described:
                    return None
                pairs.append(f"{described[0]}:{described[1]}")
            return f"dict{{{','.join(sorted(pairs))}}}"
        items = [self.describe(item, depth + 1) for item in value]
        if any(item is None for item in items):
            return None
        texts = [str(item) for item in items]
        if kind in (set, frozenset):
            return f"{kind.__name__}{{{','.join(sorted(texts))}}}"
        return f"{kind.__name__}[{','.join(texts)}]"


def _describe_special(value: Any) -> Optional[str]:
    """Values of the standard library with one exact text of their own."""
    kind = type(value)
    if isinstance(value, enum.Enum):
        return f"enum:{kind.__module__}.{kind.__qualname__}.{value.name}"
    if kind in (datetime.date, datetime.datetime, datetime.time):
        return f"{kind.__name__}:{value.isoformat()}"
    if kind is datetime.timedelta:
        return f"timedelta:{value.days},{value.seconds},{value.microseconds}"
    if kind in (decimal.Decimal, fractions.Fraction, complex, uuid.UUID, range):
        return f"{kind.__name__}:{value!s}"
    if isinstance(value, pathlib.PurePath):
        return f"{kind.__name__}:{value}"
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
