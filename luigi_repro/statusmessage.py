"""The status message a checked task shows in Luigi's scheduler: why it runs, or that it did not.

Luigi hands a running task a ``set_status_message`` callback (the worker's status reporter); the
central scheduler ``luigid`` keeps the last message per task and shows it in its web visualiser
and JSON API, so whoever watches a shared scheduler sees why each task reran without reading
worker logs. The reasons are those of the worker's log line, cut short: the first few, each
clipped, and how many more there are.

The text quotes file names and records from shared folders, so it is made printable (control
characters as escapes) and its ``&`` and ``<`` HTML-escaped: the visualiser refreshes an open
message with jQuery's ``.html()``, so a ``<`` or ``&`` in a file name would otherwise become
markup (or an entity hiding a control character) in the browser.

Sending must never fail a run: a scheduler that is down or refuses the call costs a warning in
the log, and the task runs (or is cut off) as it would without the message.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import luigi

from luigi_repro.log import logger
from luigi_repro.printable import printable
from luigi_repro.status import Reason, ReasonKind

__all__ = [
    "EARLY_CUTOFF_MESSAGE",
    "RESTORED_MESSAGE",
    "REASONS_SHOWN",
    "scheduler_listens",
    "tell_scheduler",
    "why_message",
]

#: How many reasons a message names before "… and N more".
REASONS_SHOWN = 3
#: The longest one reason may be in a message (a path can be long); longer ones end in "…".
REASON_CHARS = 300

EARLY_CUTOFF_MESSAGE = (
    "luigi_repro: early cutoff: inputs equal to the recorded ones; outputs kept (run() skipped)"
)
RESTORED_MESSAGE = (
    "luigi_repro: restored from run cache: this action was computed before (run() skipped)"
)

#: Reasons that only say nothing vouches for the outputs yet (a first build, or outputs that
#: are gone): the message then leads with "no record yet".
_NOTHING_RECORDED = frozenset({ReasonKind.MISSING_OUTPUT, ReasonKind.NO_RECORD})


def why_message(reasons: Sequence[Reason]) -> str:
    """The message of a task about to run for ``reasons`` (as the worker's log words them)."""
    if not reasons:
        return _safe("luigi_repro: runs: no record vouches for its outputs yet")
    first_build = all(reason.kind in _NOTHING_RECORDED for reason in reasons)
    lead = "luigi_repro: runs, no record yet: " if first_build else "luigi_repro: runs: "
    shown = [
        _clip(reason.message if first_build else f"{reason.kind.value} {reason.message}")
        for reason in reasons[:REASONS_SHOWN]
    ]
    more = len(reasons) - REASONS_SHOWN
    return _safe(lead + "; ".join(shown) + (f" … and {more} more" if more > 0 else ""))


def _clip(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def _safe(text: str) -> str:
    """Printable, and without markup: ``&`` and ``<`` are the only characters that start
    markup in element content (a lone ``>`` stays, so "old -> new" reads the same everywhere)."""
    return printable(text).replace("&", "&amp;").replace("<", "&lt;")


def _callback(task: luigi.Task) -> Optional[Callable[[str], Any]]:
    callback = getattr(task, "set_status_message", None)
    return callback if callable(callback) else None


def scheduler_listens(task: luigi.Task) -> bool:
    """Is ``task`` running under a Luigi worker, which forwards status messages? (Not when a
    test or a user calls ``run()`` directly.)"""
    return _callback(task) is not None


def tell_scheduler(task: luigi.Task, message: str) -> None:
    """Set ``task``'s status message; any failure to deliver it is logged, never raised."""
    callback = _callback(task)
    if callback is None:
        return
    try:
        callback(message)
    except Exception as exc:  # noqa: BLE001 - a message must never fail the run
        logger.warning(
            "luigi_repro: could not send the status message of %s to the scheduler (%s: %s); "
            "the task goes on without it.",
            task.task_id,
            type(exc).__name__,
            exc,
        )
