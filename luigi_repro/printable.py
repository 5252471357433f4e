"""Text from records and file names, made safe to show on a terminal or in a TSV cell.

Records and file names come from shared folders, so they may hold anything: an escape sequence
that moves the cursor or recolours the screen, a newline followed by a fake "up to date" line, a
right-to-left override that reverses a name. Everything that is not printable is shown as a
Python-style escape (``\\n``, ``\\x1b``, ``\\u202e``), so what is drawn is what is there. JSON
output is left exact: programs read it, and JSON escapes control characters itself.
"""

from __future__ import annotations

__all__ = ["printable"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every character that is not printable (controls, format characters such
    as bidirectional overrides, line and paragraph separators, lone surrogates from undecodable
    file names) replaced by its escape; the ASCII space stays."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)
