"""``luigi-repro adopt``: record outputs that are already on disk as valid, without running.

For projects that start using luigi_repro with results in place. Only tasks whose outputs all
exist and that have no (usable) record are adopted; a task whose record shows a real change is
left alone, since adopting it would hide that change.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Sequence, Set, Tuple

import luigi

from luigi_repro.cli.common import UsageError, load_task, split_own_options
from luigi_repro.cli.render import Style
from luigi_repro.config import load_settings
from luigi_repro.dag import flatten_with_keys
from luigi_repro.judge import Judge, is_checked_task
from luigi_repro.protocol import RunProtocol
from luigi_repro.status import ReasonKind

__all__ = ["plan", "run"]

DESCRIPTION = """\
Record the outputs of a pipeline that are already on disk as up to date, without running it.

  luigi-repro adopt [--yes] --module M Task [--param v ...]

Only tasks whose outputs all exist and which have no record yet are adopted. Dynamic
dependencies cannot be known without running, so tasks that yield them are left to run.
"""

_ADOPTABLE = {ReasonKind.NO_RECORD, ReasonKind.BAD_RECORD}


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="luigi-repro adopt",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    result.add_argument("--color", dest="color", action="store_true", default=None)
    result.add_argument("--no-color", dest="color", action="store_false")
    result.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return result


def _upstream_first(root: luigi.Task) -> List[luigi.Task]:
    """Every task reachable through ``requires()``, each after everything it requires."""
    order: List[luigi.Task] = []
    done: Set[str] = set()
    stack: List[Tuple[luigi.Task, bool]] = [(root, False)]
    while stack:
        task, expanded = stack.pop()
        if task.task_id in done:
            continue
        if expanded:
            done.add(task.task_id)
            order.append(task)
            continue
        stack.append((task, True))
        for _, upstream in reversed(flatten_with_keys(task.requires())):
            if upstream.task_id not in done:
                stack.append((upstream, False))
    return order


def plan(root: luigi.Task) -> Tuple[List[luigi.Task], List[Tuple[luigi.Task, str]]]:
    """``(tasks to adopt, [(task, why it is left alone)])``, upstream tasks first."""
    judge = Judge(load_settings(), exhaustive=True)
    adopt: List[luigi.Task] = []
    skipped: List[Tuple[luigi.Task, str]] = []
    for task in _upstream_first(root):
        if not is_checked_task(task):
            continue
        reasons = judge.own(task).reasons
        kinds = {reason.kind for reason in reasons}
        if not reasons:
            skipped.append((task, "already recorded and up to date"))
        elif ReasonKind.MISSING_OUTPUT in kinds:
            skipped.append((task, "an output is missing, so it must run"))
        elif kinds <= _ADOPTABLE:
            adopt.append(task)
        else:
            first = next(r for r in reasons if r.kind not in _ADOPTABLE)
            skipped.append((task, f"its record shows a change ({first.message}); run it instead"))
    return adopt, skipped


def _confirm(count: int) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        raise UsageError(
            "adopt asks for confirmation but standard input is not a terminal; pass --yes"
        )
    answer = input(f"Record {count} task(s) as up to date without running them? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def run(argv: Sequence[str]) -> int:
    own_parser = parser()
    own, rest = split_own_options(own_parser, argv)
    options = own_parser.parse_args(own)
    if not rest:
        raise UsageError("nothing to adopt: give a task (--module M Task)")
    style = Style(sys.stdout, options.color)
    with load_task(rest) as root:
        adopt, skipped = plan(root)
        for task, why in skipped:
            print(f"  {style.dim('skip')}   {task!r}: {why}")
        for task in adopt:
            print(f"  {style.good('adopt')}  {task!r}")
        if not adopt:
            print("Nothing to adopt.")
            return 0
        if not options.yes and not _confirm(len(adopt)):
            print("Nothing was recorded.")
            return 1
        for task in adopt:
            RunProtocol(task).adopt()
        print(f"Adopted {len(adopt)} task(s); `luigi-repro verify` now checks them like any run.")
    return 0
