"""``luigi-repro invalidate``: list the records :mod:`luigi_repro.invalidation` would remove,
ask, remove them."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from luigi_repro.cli.common import (
    UsageError,
    add_style_options,
    confirm,
    load_task,
    task_arguments,
)
from luigi_repro.cli.render import Style
from luigi_repro.printable import printable

__all__ = ["run"]

DESCRIPTION = """\
Force tasks to rerun by removing luigi_repro's records of their outputs; outputs are never
touched.

  luigi-repro invalidate [--task T ...] [--downstream] [--dry-run] [--yes]
                         --module M Root [--param v ...]

Without --task, the root task itself is invalidated. --task T (repeatable) picks tasks of the
root's graph by family (every instance), task id or printed form, e.g. --task Clean or
--task 'Clean(name=a)'. --downstream also invalidates every task of the graph that requires a
picked one. Records are removed under the outputs' run locks, so a run in progress finishes
first. Exit status: 0 when done (or nothing to do), 1 when the question was answered no, 2 for
an error.
"""


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="luigi-repro invalidate",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="T",
        help="a task of the root's graph to invalidate (family, task id or printed form)",
    )
    result.add_argument(
        "--downstream",
        action="store_true",
        help="also invalidate every task that requires one invalidated",
    )
    result.add_argument(
        "--dry-run", action="store_true", help="list the records that would be removed, only"
    )
    result.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    add_style_options(result)
    return result


def run(argv: Sequence[str]) -> int:
    from luigi_repro.invalidation import NoSuchTask, invalidate, plan

    options, rest = task_arguments(parser(), argv, "invalidate")
    style = Style(sys.stdout, options.color)
    with load_task(rest) as root:
        try:
            chosen = plan(root, options.task, options.downstream)
        except NoSuchTask as exc:
            raise UsageError(str(exc)) from None
        having = {record.task.task_id for record in chosen.records}
        for task in chosen.tasks:
            if task.task_id not in having:
                print(f"  {style.dim('none')}    {printable(repr(task))}: has no record already")
        for record in chosen.records:
            print(f"  {style.bad('remove')}  {printable(record.location)}")
            print(f"          {style.dim(printable(repr(record.task)))}")
        count, tasks = len(chosen.records), chosen.task_count
        if not count:
            print("Nothing to invalidate.")
            return 0
        if options.dry_run:
            print(f"Would remove {count} record(s) of {tasks} task(s) (dry run).")
            return 0
        if not options.yes and not confirm(
            "invalidate", f"Remove {count} record(s) of {tasks} task(s)?"
        ):
            print("Nothing was removed.")
            return 1
        removed = invalidate(chosen)
        print(f"Removed {removed} record(s) of {tasks} task(s); the next build reruns them.")
    return 0
