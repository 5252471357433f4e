"""Output piped into a reader that leaves early (``luigi-repro verify … | head``) ends quietly.

Python reports the closed pipe as ``BrokenPipeError`` on the next write, and again when it
flushes standard output at exit. As Python's documentation recommends, standard output is then
pointed at ``os.devnull``: the command carries on to its end unheard and exits with the status
it would have had, whatever command it is, with no traceback and no error message.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator, TextIO, cast

__all__ = ["quiet_when_reader_leaves"]


class _QuietStream:
    """A text stream that stops writing, silently, once its reader has gone."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        """Later writes, and the flush at exit of what is still buffered, go nowhere."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def quiet_when_reader_leaves() -> Iterator[None]:
    """Standard output that goes quiet instead of failing when the reader of its pipe leaves."""
    original = sys.stdout
    if original is None:
        yield
        return
    quiet = _QuietStream(original)
    sys.stdout = cast(TextIO, quiet)
    try:
        yield
        quiet.flush()
    finally:
        sys.stdout = original
