"""``luigi-repro adopt``: show the adoption plan (:mod:`luigi_repro.adoption`), ask, adopt."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from luigi_repro.adoption import adopt as adopt_all
from luigi_repro.adoption import plan
from luigi_repro.cli.common import (
    add_style_options,
    confirm,
    load_task,
    task_arguments,
)
from luigi_repro.cli.render import Style
from luigi_repro.printable import printable

__all__ = ["plan", "run"]

DESCRIPTION = """\
Record the outputs of a pipeline that are already on disk as up to date, without running it.

  luigi-repro adopt [--yes] --module M Task [--param v ...]

Only tasks whose outputs and inputs all exist, which have no record yet (--force: or an
unusable one), or a record written before code fingerprints covered helper code, and whose
upstream tasks are up to date or adopted too are adopted. Dynamic
dependencies cannot be known without running, so tasks that yield them are left to run.
"""


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
    add_style_options(result)
    return result


def run(argv: Sequence[str]) -> int:
    options, rest = task_arguments(parser(), argv, "adopt")
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
        if not options.yes and not confirm(
            "adopt", f"Record {len(adopt)} task(s) as up to date without running them?"
        ):
            print("Nothing was recorded.")
            return 1
        adopt_all(adopt)
        print(f"Adopted {len(adopt)} task(s); `luigi-repro verify` now checks them like any run.")
    return 0
