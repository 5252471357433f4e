"""``luigi-repro adopt``: record outputs that are already on disk as valid, without running.

For projects that start using luigi_repro with results in place, or records written before the
code fingerprint covered helper code. Only tasks whose outputs all exist and that have no
(usable) record, or such an earlier record whose classes are unchanged, are adopted; a task whose
record shows a real change is left alone, since adopting it would hide that change.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence, Set, Tuple

import luigi

from luigi_repro.cli.common import UsageError, load_task, split_own_options
from luigi_repro.cli.render import Style
from luigi_repro.config import load_settings
from luigi_repro.dag import requirements_of, static_inputs
from luigi_repro.judge import Judge
from luigi_repro.printable import printable
from luigi_repro.protocol import RunProtocol
from luigi_repro.rules import is_checked_task
from luigi_repro.statcache import flush_stat_caches
from luigi_repro.status import Reason, ReasonKind
from luigi_repro.task import runs_dynamically

__all__ = ["plan", "run"]

DESCRIPTION = """\
Record the outputs of a pipeline that are already on disk as up to date, without running it.

  luigi-repro adopt [--yes] --module M Task [--param v ...]

Only tasks whose outputs and inputs all exist, which have no record yet (--force: or an
unusable one), or a record written before code fingerprints covered helper code, and whose
upstream tasks are up to date or adopted too are adopted. Dynamic
dependencies cannot be known without running, so tasks that yield them are left to run.
"""

_ADOPTABLE = {ReasonKind.NO_RECORD}


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="luigi-repro adopt",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    result.add_argument(
        "--force",
        action="store_true",
        help="also adopt tasks whose record is unusable (unreadable, forged, from a newer version)",
    )
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
        for _, upstream in reversed(requirements_of(task)):
            if upstream.task_id not in done:
                stack.append((upstream, False))
    return order


def _predates_closure(reason: Reason) -> bool:
    """CODE_CHANGED only because the record predates fingerprints that cover helper code."""
    evidence = reason.evidence
    return (
        reason.kind is ReasonKind.CODE_CHANGED
        and evidence.get("record_covers_helpers") is False
        and evidence.get("classes_unchanged") is True
        and evidence.get("old_version") == evidence.get("new_version")
    )


def _why_not(task: luigi.Task, judge: Judge, force: bool, blocked: Set[str]) -> Optional[str]:
    """Why ``task`` must not be adopted, or None when it may be."""
    if any(upstream.task_id in blocked for _, upstream in requirements_of(task)):
        return "a task it requires is not up to date, so it must run after that one"
    if runs_dynamically(type(task)):
        return "its run() yields dynamic dependencies, which only a run can know"
    for ref in static_inputs(requirements_of(task)):
        if not ref.target.exists():
            return f"its input {ref.label} does not exist"
    reasons = judge.own(task).reasons
    kinds = {reason.kind for reason in reasons}
    if not reasons:
        return "already recorded and up to date"
    if ReasonKind.MISSING_OUTPUT in kinds:
        return "an output is missing, so it must run"
    adoptable = _ADOPTABLE | ({ReasonKind.BAD_RECORD} if force else set())
    blocking = [r for r in reasons if r.kind not in adoptable and not _predates_closure(r)]
    if blocking:
        first = blocking[0]
        if first.kind is ReasonKind.BAD_RECORD:
            return f"{first.message} (--force adopts it anyway)"
        return f"its record shows a change ({first.message}); run it instead"
    return None


def plan(
    root: luigi.Task, force: bool = False
) -> Tuple[List[luigi.Task], List[Tuple[luigi.Task, str]]]:
    """``(tasks to adopt, [(task, why it is left alone)])``, upstream tasks first.

    A task is adopted only when all its outputs and inputs exist, it has no record (or, with
    ``force``, an unusable one; or one written before code fingerprints covered helper code,
    whose classes are unchanged), its run() is not dynamic, and everything it requires is up to
    date or adopted too.
    """
    judge = Judge(load_settings(), exhaustive=True)
    adopt: List[luigi.Task] = []
    skipped: List[Tuple[luigi.Task, str]] = []
    blocked: Set[str] = set()
    for task in _upstream_first(root):
        if not is_checked_task(task):
            if not judge.plain_complete(task)[0]:
                blocked.add(task.task_id)
            continue
        why = _why_not(task, judge, force, blocked)
        if why is None:
            adopt.append(task)
            continue
        skipped.append((task, why))
        if why != "already recorded and up to date":
            blocked.add(task.task_id)
    flush_stat_caches()
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
        adopt, skipped = plan(root, force=options.force)
        for task, why in skipped:
            print(f"  {style.dim('skip')}   {printable(f'{task!r}: {why}')}")
        for task in adopt:
            print(f"  {style.good('adopt')}  {printable(repr(task))}")
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
