"""The logger of luigi_repro: a child of Luigi's ``luigi-interface`` logger.

Its messages (early cutoffs, unusable records) therefore appear wherever a Luigi user already
reads Luigi's own, with the same level and format; filter on ``luigi-interface.luigi_repro``.

Messages often quote records and file names from shared folders, so each one is made
printable (control characters shown as escapes) before any handler formats it: a hostile record
cannot draw fake lines in a worker's log or move the cursor on a terminal.
"""

from __future__ import annotations

import logging

from luigi_repro.printable import printable

__all__ = ["LOGGER_NAME", "logger"]

LOGGER_NAME = "luigi-interface.luigi_repro"


class _Printable(logging.Filter):
    """Replaces each message by its printable form (it is formatted once, here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = printable(message)
        if shown is not message:
            record.msg, record.args = shown, None
        return True


logger = logging.getLogger(LOGGER_NAME)
if not any(isinstance(f, _Printable) for f in logger.filters):
    logger.addFilter(_Printable())
