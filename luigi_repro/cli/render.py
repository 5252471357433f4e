"""Rendering reports for people (a tree, coloured on a terminal) and for programs (JSON, TSV)."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Any, Callable, Dict, Iterator, List, Mapping, Optional, Set

from luigi_repro.fingerprint import Counters
from luigi_repro.printable import printable
from luigi_repro.reportmodel import Report
from luigi_repro.status import ReasonKind

__all__ = ["Progress", "Style", "human_bytes", "render", "summary_line"]

_GREEN, _RED, _YELLOW, _DIM, _BOLD, _RESET = (
    "\033[32m",
    "\033[31m",
    "\033[33m",
    "\033[2m",
    "\033[1m",
    "\033[0m",
)


class Style:
    """Colours and symbols: ANSI colour only on a terminal, Unicode only where it can be printed."""

    def __init__(self, stream: IO[str], color: Optional[bool] = None) -> None:
        self.color = stream.isatty() if color is None else color
        encoding = (getattr(stream, "encoding", None) or "ascii").lower()
        unicode = "utf" in encoding
        self.ok_mark = "✓" if unicode else "+"
        self.bad_mark = "✗" if unicode else "x"
        self.branch = "└─ " if unicode else "`- "
        self.arrow = "→" if unicode else "->"

    def paint(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.color else text

    def good(self, text: str) -> str:
        return self.paint(text, _GREEN)

    def bad(self, text: str) -> str:
        return self.paint(text, _RED)

    def note(self, text: str) -> str:
        return self.paint(text, _YELLOW)

    def dim(self, text: str) -> str:
        return self.paint(text, _DIM)

    def bold(self, text: str) -> str:
        return self.paint(text, _BOLD)


def human_bytes(count: float) -> str:
    """``1536`` → ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover - loop always returns


def summary_line(report: Report) -> str:
    """``5 tasks (2 not up to date), 12 files statted, 3 hashed (1.2 MiB), 0.04 s``."""
    bad = sum(1 for task in report.tasks.values() if not task.ok)
    counters = report.counters
    state = "all up to date" if bad == 0 else f"{bad} not up to date"
    return (
        f"{len(report.tasks)} tasks ({state}), {counters.files_statted} files statted, "
        f"{counters.files_hashed} hashed ({human_bytes(counters.bytes_hashed)}), "
        f"{report.seconds:.2f} s"
    )


def _tree_lines(report: Report, style: Style) -> Iterator[str]:
    shown: Set[str] = set()
    stack: List[tuple[str, int]] = [(root, 0) for root in reversed(report.roots)]
    while stack:
        task_id, depth = stack.pop()
        task = report.tasks.get(task_id)
        if task is None:
            continue
        prefix = "   " * (depth - 1) + style.branch if depth else ""
        label = printable(task.label)
        if task_id in shown:
            yield prefix + style.dim(f"{label} (shown above)")
            continue
        shown.add(task_id)
        mark = style.good(style.ok_mark) if task.ok else style.bad(style.bad_mark)
        status = style.good(task.status) if task.ok else style.bad(task.status)
        yield f"{prefix}{mark} {style.bold(label)}  {status}"
        detail = "   " * depth + "  "
        upstream = [r for r in task.reasons if r.kind is ReasonKind.UPSTREAM_NOT_UP_TO_DATE]
        for reason in task.reasons:
            if reason.kind is ReasonKind.UPSTREAM_NOT_UP_TO_DATE:
                continue  # summarised below: the tree shows those tasks and why
            yield f"{detail}{style.bad('-')} {reason.kind.value}: {printable(reason.message)}"
            for line in _file_changes(reason.evidence):
                yield f"{detail}    {line}"
        if upstream:
            names = ", ".join(_family_of(report, r.evidence.get("task_id", "")) for r in upstream)
            yield f"{detail}{style.bad('-')} UPSTREAM_NOT_UP_TO_DATE: {printable(names)}"
        for note in task.notes:
            yield f"{detail}{style.note('~')} {note.kind.value}: {printable(note.message)}"
        for child in reversed(task.upstream):
            stack.append((child, depth + 1))


def _family_of(report: Report, task_id: str) -> str:
    task = report.tasks.get(task_id)
    return task.family or task.label if task is not None else task_id


def _file_changes(evidence: Mapping[str, Any]) -> Iterator[str]:
    for key, word in (("added", "added"), ("removed", "removed"), ("changed", "changed")):
        for name in evidence.get(key) or ():
            yield f"{word}: {printable(str(name))}"


def render_tree(report: Report, stream: IO[str], style: Style) -> None:
    for line in _tree_lines(report, style):
        stream.write(line + "\n")
    for note in report.notes:
        stream.write(style.note(f"note: {printable(str(note))}") + "\n")
    summary = summary_line(report)
    stream.write((style.good(summary) if report.ok else style.bad(summary)) + "\n")


def render_json(report: Report, stream: IO[str], style: Style) -> None:
    json.dump(report.to_json(), stream, indent=2, sort_keys=False)
    stream.write("\n")


def _tsv_cell(text: str) -> str:
    return printable(text)  # a tab or newline in a name would make a new cell or row


def render_tsv(report: Report, stream: IO[str], style: Style) -> None:
    stream.write("task_id\tfamily\tkind\tstatus\tok\treasons\n")
    for task in report.tasks.values():
        reasons = "; ".join(f"{r.kind.value}: {r.message}" for r in task.reasons)
        row = [task.task_id, task.family, task.kind, task.status, str(task.ok).lower(), reasons]
        stream.write("\t".join(_tsv_cell(cell) for cell in row) + "\n")


RENDERERS: Dict[str, Callable[[Report, IO[str], Style], None]] = {
    "tree": render_tree,
    "json": render_json,
    "tsv": render_tsv,
}


def render(
    report: Report, fmt: str, stream: Optional[IO[str]] = None, color: Optional[bool] = None
) -> None:
    """Write ``report`` to ``stream`` (stdout) as ``tree``, ``json`` or ``tsv``."""
    out = stream if stream is not None else sys.stdout
    RENDERERS[fmt](report, out, Style(out, color))


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
