"""``luigi-repro verify``: audit a pipeline (Luigi's task syntax) or outputs (their records)."""

from __future__ import annotations

import argparse
import os
from typing import List, Optional, Sequence

import attrs

from luigi_repro.audit import audit_paths
from luigi_repro.cli.clock import CommandClock
from luigi_repro.cli.common import UsageError, load_task, split_own_options
from luigi_repro.cli.render import Progress, render
from luigi_repro.fingerprint import Counters
from luigi_repro.report import Report, verify

DESCRIPTION = """\
Check, without running anything, whether a pipeline's outputs still match their inputs,
parameters and code.

  luigi-repro verify [options] --module M Task [--param v ...]   judge a task and all it requires
  luigi-repro verify [options] PATH [PATH ...]                   audit outputs from their records

Exit status: 0 all up to date, 1 something is not, 2 usage or environment error.
"""


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("tree", "json", "tsv"), default="tree", help="output format"
    )
    parser.add_argument("--color", dest="color", action="store_true", default=None)
    parser.add_argument("--no-color", dest="color", action="store_false")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="luigi-repro verify",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_output_options(result)
    result.add_argument(
        "--full", action="store_true", help="ignore every cache and read all content again"
    )
    return result


def _is_path_mode(rest: Sequence[str]) -> bool:
    if not rest or "--module" in rest or any(t.startswith("--module=") for t in rest):
        return False
    first = rest[0]
    return "://" in first or os.path.exists(first) or os.path.lexists(first)


def run(argv: Sequence[str], clock: Optional[CommandClock] = None) -> int:
    """Verify; the summary's seconds are ``clock``'s (the whole command) when given."""
    own_parser = parser()
    own, rest = split_own_options(own_parser, argv)
    path_mode = _is_path_mode(rest)
    if path_mode:
        own, rest = split_own_options(own_parser, argv, anywhere=True)
    options = own_parser.parse_args(own)
    if not rest:
        raise UsageError("nothing to verify: give a task (--module M Task) or output paths")
    counters = Counters()
    report: Report
    with Progress(counters):
        if path_mode:
            missing: List[str] = [p for p in rest if "://" not in p and not os.path.lexists(p)]
            if missing:
                raise UsageError(f"no such file: {missing[0]}")
            report = audit_paths(rest, full=options.full, counters=counters)
        else:
            with load_task(rest) as task:
                report = verify(task, full=options.full, counters=counters)
    if clock is not None:
        report = attrs.evolve(report, seconds=clock.seconds())
    render(report, options.format, color=options.color)
    return 0 if report.ok else 1
