"""``luigi-repro verify``: audit a pipeline (Luigi's task syntax) or outputs (their records)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import List, Optional, Sequence, Set

import attrs

from luigi_repro.auditmemory import (
    audit_key,
    audit_store,
    config_state,
    remember_audit,
    replay_audit,
)
from luigi_repro.cli.clock import CommandClock
from luigi_repro.cli.common import (
    UsageError,
    add_style_options,
    check_once,
    load_task,
    report_arguments,
)
from luigi_repro.cli.render import Progress, render
from luigi_repro.fingerprint import Counters
from luigi_repro.fsclock import host_clock
from luigi_repro.recordsearch import expand_folders
from luigi_repro.reportmodel import Report

DESCRIPTION = """\
Check, without running anything, whether a pipeline's outputs still match their inputs,
parameters and code.

  luigi-repro verify [options] --module M Task [--param v ...]   judge a task and all it requires
  luigi-repro verify [options] PATH [PATH ...]                   audit outputs from their records

A PATH may be a folder: one with a record of its own is an output (a folder target); any other
stands for every record beneath it (symlinked folders are not followed). A folder that holds no
record at all is reported as NO_RECORD (exit 1).

With a run cache ([luigi_repro] run_cache), a task that is not up to date but whose run would
restore its outputs from the cache says so: STALE (restorable from run cache), with the run the
entry came from. Only with a task: records alone (PATH) cannot give the action key.

Exit status: 0 all up to date, 1 something is not, 2 usage or environment error.
"""


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("tree", "json", "tsv"), default="tree", help="output format"
    )
    add_style_options(parser)


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
    result.add_argument(
        "--changed",
        action="store_true",
        help="show only the tasks that are not up to date, and how many there are of each reason",
    )
    return result


def _names_a_task(name: str) -> bool:
    """Could ``name`` be Luigi's ``module.Task`` (found without ``--module``)? Only when that
    module can be found, so ``data.csv`` is a file, and no module is imported to tell."""
    module, dot, task = name.rpartition(".")
    if not dot or not task.isidentifier() or not all(p.isidentifier() for p in module.split(".")):
        return False
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # where load_task looks too
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def is_path_mode(rest: Sequence[str]) -> bool:
    """Paths, unless the arguments name a task: ``--module``, a Luigi flag, or ``module.Task``."""
    if not rest or "--module" in rest or any(t.startswith("--module=") for t in rest):
        return False
    first = rest[0]
    if "://" in first or os.path.lexists(first):
        return True
    return not first.startswith("-") and not _names_a_task(first)


def _no_such_file(path: str) -> UsageError:
    hint = f" (to verify a task, give its module: --module M {path})" if path.isidentifier() else ""
    return UsageError(f"no such file: {path}{hint}")


def _downstream_first(report: Report) -> Report:
    """A folder's records as roots: only those no other one reads (the rest is drawn beneath
    them), and any a cycle leaves unreached."""
    below = {child for task in report.tasks.values() for child in task.upstream}
    tips = [root for root in report.roots if root not in below]
    reached: Set[str] = set()
    pending = list(tips)
    while pending:
        task_id = pending.pop()
        if task_id not in reached and task_id in report.tasks:
            reached.add(task_id)
            pending.extend(report.tasks[task_id].upstream)
    tips += [root for root in report.roots if root not in reached and root not in tips]
    return attrs.evolve(report, roots=tuple(tips))


def _audit(
    paths: Sequence[str], full: bool, counters: Counters, clock: Optional[CommandClock]
) -> Report:
    """The record-only audit of ``paths``: replayed from an earlier process's when nothing it
    stood on changed (Luigi is then never imported), decided and remembered otherwise."""
    if not full:
        replayed = replay_audit(paths, counters)
        if replayed is not None:
            return replayed
    check_once(clock)
    from luigi_repro.audit import UNREPLAYABLE, audit_paths
    from luigi_repro.config import load_settings
    from luigi_repro.statcache import open_stat_cache

    started = host_clock()
    config_before = config_state()  # the settings below are read from these
    settings = load_settings()
    read: Set[str] = set()
    found = expand_folders(paths, settings.record_suffix)
    report = audit_paths(found.paths, full=full, counters=counters, settings=settings, read=read)
    if found.searched:
        report = _downstream_first(report)
    store = open_stat_cache(settings.stat_cache_path)
    # Kept only where a later process will look for it, and only when it can be replayed.
    findable = audit_store() == settings.stat_cache_path
    if store is not None and findable and not full and UNREPLAYABLE not in read:
        key = audit_key(paths)
        window = settings.racy_window_ns
        remember_audit(
            store, key, report, read, started, window, config_before, found.folders, found.absent
        )
    return report


def judged_report(
    rest: Sequence[str], path_mode: bool, full: bool, clock: Optional[CommandClock]
) -> Report:
    """The report ``verify`` prints for ``rest``: a task in Luigi's syntax, or output paths
    (``path_mode``) audited from their records; other commands show the very same verdicts."""
    counters = Counters()
    with Progress(counters):
        if path_mode:
            missing: List[str] = [p for p in rest if "://" not in p and not os.path.lexists(p)]
            if missing:
                raise _no_such_file(missing[0])
            return _audit(rest, full, counters, clock)
        from luigi_repro.report import verify

        with load_task(rest) as task:
            return verify(task, full=full, counters=counters)


def run(argv: Sequence[str], clock: Optional[CommandClock] = None) -> int:
    """Verify; the summary's seconds are ``clock``'s (the whole command) when given."""
    options, rest, path_mode = report_arguments(parser(), argv, clock, is_path_mode, "verify")
    report = judged_report(rest, path_mode, options.full, clock)
    if clock is not None:
        report = attrs.evolve(report, seconds=clock.seconds())
    render(report, options.format, color=options.color, changed=options.changed)
    return 0 if report.ok else 1
