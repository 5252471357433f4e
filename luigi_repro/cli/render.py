"""Rendering reports for people (a tree, coloured on a terminal) and for programs (JSON, TSV).

With ``changed``, every format shows only the tasks that are not up to date.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Callable, Dict, Optional

from luigi_repro.cli.style import Style, human_bytes, summary_line
from luigi_repro.cli.tree import render_tree
from luigi_repro.cli.upstream import upstream_summary
from luigi_repro.fingerprint import Counters
from luigi_repro.printable import printable
from luigi_repro.reportmodel import Report
from luigi_repro.status import ReasonKind

__all__ = ["Progress", "Style", "human_bytes", "render", "summary_line"]


def render_json(report: Report, stream: IO[str], style: Style, changed: bool = False) -> None:
    json.dump(report.to_json(changed_only=changed), stream, indent=2, sort_keys=False)
    stream.write("\n")


def _tsv_cell(text: str) -> str:
    return printable(text)  # a tab or newline in a name would make a new cell or row


def render_tsv(report: Report, stream: IO[str], style: Style, changed: bool = False) -> None:
    """One row per task; its upstream reasons are one phrase, as in the tree. ``restorable``
    is the run cache entry a build would restore the task from (empty when none)."""
    stream.write("task_id\tfamily\tkind\tstatus\tok\treasons\trestorable\n")
    for task in report.changed() if changed else report.tasks.values():
        own = [r for r in task.reasons if r.kind is not ReasonKind.UPSTREAM_NOT_UP_TO_DATE]
        described = [f"{r.kind.value}: {r.message}" for r in own]
        upstream = upstream_summary(report, task, "...")
        if upstream:
            described.append(f"{ReasonKind.UPSTREAM_NOT_UP_TO_DATE.value}: {upstream}")
        reasons = "; ".join(described)
        restorable = "" if task.restorable is None else task.restorable.action_key
        row = [task.task_id, task.family, task.kind, task.status, str(task.ok).lower(), reasons]
        row.append(restorable)
        stream.write("\t".join(_tsv_cell(cell) for cell in row) + "\n")


RENDERERS: Dict[str, Callable[[Report, IO[str], Style, bool], None]] = {
    "tree": render_tree,
    "json": render_json,
    "tsv": render_tsv,
}


def render(
    report: Report,
    fmt: str,
    stream: Optional[IO[str]] = None,
    color: Optional[bool] = None,
    changed: bool = False,
) -> None:
    """Write ``report`` to ``stream`` (stdout) as ``tree``, ``json`` or ``tsv``; with
    ``changed``, only the tasks that are not up to date."""
    out = stream if stream is not None else sys.stdout
    RENDERERS[fmt](report, out, Style(out, color), changed)


class Progress:
    """A progress line on stderr while hashing takes more than a moment (terminals only)."""

    def __init__(self, counters: Counters, stream: Optional[IO[str]] = None, delay: float = 1.0):
        self.counters = counters
        self.stream = stream if stream is not None else sys.stderr
        self.delay = delay
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._drawn = False

    def __enter__(self) -> Progress:
        if self.stream.isatty():
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        started = time.monotonic()
        if self._stop.wait(self.delay):
            return
        while not self._stop.is_set():
            elapsed = time.monotonic() - started
            c = self.counters
            line = (
                f"\rchecking: {c.files_statted} files statted, {c.files_hashed} hashed, "
                f"{human_bytes(c.bytes_hashed)} read ({elapsed:.0f} s)"
            )
            self.stream.write(line + "\033[K")
            self.stream.flush()
            self._drawn = True
            self._stop.wait(0.2)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
