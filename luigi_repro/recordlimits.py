"""Guards that refuse an oversized or pathologically shaped record before it is parsed.

A record is read from shared storage anyone may write to; these checks, made on the bytes alone,
keep a hostile record from costing more than a few times its size in memory.
"""

from __future__ import annotations

import re
from typing import Any, List, Optional

#: Parsing a record may cost at most this many times ``max_record_bytes`` in memory. The cost
#: is estimated from the bytes before parsing (see :func:`estimated_parse_bytes`), so a record
#: shaped to cost far more than its size (``[[],[],…]``, millions of tiny strings) is refused
#: before it is built, whatever its size, while any record of ordinary shape — and any small
#: record, however dense — is read.
PARSE_MEMORY_MULTIPLE = 20
#: Lead bytes of 4-byte UTF-8 sequences, or an escaped surrogate (\ud800-\udbff).
_RE_BEYOND_BMP = re.compile(rb"[\xf0-\xff]|\\u[dD][89abAB]")


def estimated_parse_bytes(data: bytes) -> int:
    """An upper estimate of the memory ``json.loads`` needs for ``data`` (CPython, 64 bits).

    Counted from the bytes alone, in C-speed passes: the bytes; their decoded text three times
    (the decoded document, the strings made from it and a string's growth while it is built),
    1, 2 or 4 bytes a character as the widest character (or ``\\u`` escape) requires; 80 bytes
    per string, 104 per list, 240 per object, 56 per ``,`` (a list slot or dict entry and the
    value it holds) and 32 per ``[`` or ``:`` (the first value of a list, an object's value).
    On ordinary records it is 2 to 3 times the real cost; on the costliest shapes within
    1.1 times (``python -m benchmarks records``).
    """
    width = 1
    if not data.isascii() or b"\\u" in data:  # C-speed tests; the regex scans far slower
        width = 4 if _RE_BEYOND_BMP.search(data) else 2
    strings = data.count(b'"') // 2
    lists = data.count(b"[")
    return (
        len(data) * (1 + 3 * width)
        + 80 * strings
        + (104 + 32) * lists
        + 240 * data.count(b"{")
        + 56 * data.count(b",")
        + 32 * data.count(b":")
    )


#: Deepest nesting a record may have (its own structure is 8 deep; parameters add some).
MAX_RECORD_DEPTH = 64


def size_text(size: int) -> str:
    """A byte count as people read it: ``83 MiB``, ``512 KiB``, ``900 bytes``."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            value = size / scale
            return (
                f"{value:.0f} {unit}"
                if value >= 10 or value == int(value)
                else f"{value:.1f} {unit}"
            )
    return f"{size} bytes"


def oversize(size: int, limit: int) -> str:
    """The problem of a record bigger than ``max_record_bytes``."""
    return f"it is {size_text(size)}, above max_record_bytes ({size_text(limit)})"


def shape_problem(data: bytes, limit: int) -> Optional[str]:
    """Why ``data`` cannot be a record, judged from its bytes alone (before any parsing)."""
    if len(data) > limit:
        return oversize(len(data), limit)
    cost = estimated_parse_bytes(data)
    if cost > PARSE_MEMORY_MULTIPLE * limit:
        return (
            f"parsing its {size_text(len(data))} would take about {size_text(cost)} of memory, "
            f"more than {PARSE_MEMORY_MULTIPLE} times max_record_bytes ({size_text(limit)}): "
            "far more lists, objects or strings than a record holds"
        )
    return None


def depth_exceeds(doc: Any, limit: int) -> bool:
    """Is ``doc`` nested more than ``limit`` deep? (Walked level by level, without recursion,
    holding one reference per list or object of a level.)"""
    level: List[Any] = [doc] if isinstance(doc, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: List[Any] = []
        for value in level:
            children = value.values() if isinstance(value, dict) else value
            below.extend(child for child in children if isinstance(child, (dict, list)))
        level = below
    return False
