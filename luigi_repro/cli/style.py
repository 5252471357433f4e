"""Colours, symbols and sizes shared by every command's output."""

from __future__ import annotations

from typing import IO, Optional

from luigi_repro.reportmodel import RESTORABLE, Report

__all__ = ["Style", "human_bytes", "summary_line"]

_GREEN, _RED, _YELLOW, _CYAN, _DIM, _BOLD, _RESET = (
    "\033[32m",
    "\033[31m",
    "\033[33m",
    "\033[36m",
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
        self.branch = "└─ " if unicode else "`- "  # the last child of a node
        self.tee = "├─ " if unicode else "|- "  # a child with more after it
        self.pipe = "│  " if unicode else "|  "  # the line down to later children
        self.ellipsis = "…" if unicode else "..."
        self.arrow = "→" if unicode else "->"

    def paint(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.color else text

    def good(self, text: str) -> str:
        return self.paint(text, _GREEN)

    def bad(self, text: str) -> str:
        return self.paint(text, _RED)

    def note(self, text: str) -> str:
        return self.paint(text, _YELLOW)

    def restorable(self, text: str) -> str:
        """A run the run cache would spare."""
        return self.paint(text, _CYAN)

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
    """``5 tasks (2 not up to date), 12 files statted, 3 hashed (1.2 MiB), 0.04 s``; with
    ``(2 not up to date, 1 restorable from run cache)`` when a build would restore some."""
    bad = sum(1 for task in report.tasks.values() if not task.ok)
    counters = report.counters
    state = "all up to date" if bad == 0 else f"{bad} not up to date"
    restorable = report.restorable()
    if restorable:
        state += f", {restorable} {RESTORABLE}"
    return (
        f"{len(report.tasks)} tasks ({state}), {counters.files_statted} files statted, "
        f"{counters.files_hashed} hashed ({human_bytes(counters.bytes_hashed)}), "
        f"{report.seconds:.2f} s"
    )
