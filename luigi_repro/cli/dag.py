"""``luigi-repro dag``: the dependency graph with each task's status, as DOT, Mermaid or HTML.

The verdicts are ``verify``'s own: the same loading (a task in Luigi's syntax, or output paths
audited from their records) and the same report, only drawn as a graph.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Callable, Dict, Optional, Sequence

from luigi_repro.cli.clock import CommandClock
from luigi_repro.cli.common import UsageError, report_arguments
from luigi_repro.cli.verify import is_path_mode, judged_report
from luigi_repro.graphhtml import render_html
from luigi_repro.graphtext import MARKER, render_dot, render_mermaid
from luigi_repro.graphview import DagGraph, graph_of

DESCRIPTION = """\
Draw the dependency graph of a pipeline, or of outputs audited from their records, with each
task's status (the very verdicts of `luigi-repro verify`).

  luigi-repro dag [options] --module M Task [--param v ...]
  luigi-repro dag [options] PATH [PATH ...]

Formats: dot (Graphviz), mermaid (a flowchart), html (one self-contained page: hover a task
for its reasons, click it for details; large graphs show one node per task family).

Exit status: 0 all up to date, 1 something is not, 2 usage or environment error.
"""

RENDERERS: Dict[str, Callable[[DagGraph], str]] = {
    "dot": render_dot,
    "mermaid": render_mermaid,
    "html": render_html,
}

#: How far into an existing file the marker of a file this command wrote is looked for.
_MARKER_WINDOW = 256


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="luigi-repro dag",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("--format", choices=tuple(RENDERERS), default="dot", help="output format")
    result.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE instead of standard output (replaces only a file this command wrote)",
    )
    result.add_argument(
        "--full", action="store_true", help="ignore every cache and read all content again"
    )
    result.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return result


def check_destination(path: str) -> None:
    """Refuse, before anything is judged, a destination that cannot be written or that holds
    something else: ``-o`` must never destroy a file this command did not write."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"cannot write {path}: it is a folder")
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isfile(path):
        raise UsageError(f"refusing to replace {path}: it is not a regular file")
    with open(path, "rb") as stream:
        head = stream.read(_MARKER_WINDOW)
    if head and MARKER.encode() not in head:
        raise UsageError(
            f"refusing to replace {path}: it was not written by luigi-repro dag "
            "(remove it or choose another name)"
        )


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place: an interrupted
    write leaves the previous file whole."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".luigi-repro-dag-", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _write_stdout(text: str) -> None:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (in tests, or an embedding program)
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    buffer.write(text.encode("utf-8"))
    buffer.flush()


def run(argv: Sequence[str], clock: Optional[CommandClock] = None) -> int:
    """Draw the graph; exit status as ``verify``'s."""
    options, rest, path_mode = report_arguments(parser(), argv, clock, is_path_mode, "draw")
    if options.output is not None:
        check_destination(options.output)
    report = judged_report(rest, path_mode, options.full, clock)
    text = RENDERERS[options.format](graph_of(report))
    if options.output is None:
        _write_stdout(text)
    else:
        check_destination(options.output)  # again: it may have appeared while judging
        write_atomically(options.output, text)
        bad = sum(1 for task in report.tasks.values() if not task.ok)
        state = "all up to date" if bad == 0 else f"{bad} not up to date"
        sys.stderr.write(f"wrote {options.output}: {len(report.tasks)} tasks ({state})\n")
    return 0 if report.ok else 1
