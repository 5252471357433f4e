"""The ``luigi-repro`` command (also ``python -m luigi_repro``): verify, show, adopt, dag.

Exit status: 0 when everything is up to date, 1 when something is not, 2 for a usage or
environment error. Errors are one sentence; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from typing import Iterator, Optional, Sequence

from luigi_repro.cli.clock import CommandClock
from luigi_repro.cli.common import UsageError, check_once
from luigi_repro.cli.pipes import quiet_when_reader_leaves
from luigi_repro.log import LOGGER_NAME
from luigi_repro.printable import printable

__all__ = ["main"]

USAGE = """\
usage: luigi-repro {verify,show,adopt,invalidate,gc,dag,cache} ...

  verify [--format tree|json|tsv] [--full] [--changed] --module M Task [--param v ...]
  verify [--format tree|json|tsv] [--full] [--changed] PATH|DIR [PATH|DIR ...]
  show [--lineage] [--format tree|json] PATH
  adopt [--yes] --module M Task [--param v ...]
  invalidate [--task T ...] [--downstream] [--dry-run] [--yes] --module M Root [--param v ...]
  gc [--older-than 24h] [--format text|json] [--yes] PATH [PATH ...]
  dag [--format dot|mermaid|html] [-o FILE] --module M Task [--param v ...]
  dag [--format dot|mermaid|html] [-o FILE] PATH [PATH ...]
  cache stats [--cache LOCATION] [--format text|json]
  cache gc --max-size SIZE [--older-than AGE] [--grace 1h] [--yes] [--cache LOCATION]
           [--format text|json]

Run `luigi-repro COMMAND --help` for details.
"""


COMMANDS = ("verify", "show", "adopt", "invalidate", "gc", "dag", "cache")


def _run(name: str, args: Sequence[str], clock: CommandClock) -> int:
    """Run one subcommand; only its own module (and so its imports) is loaded."""
    if name == "verify":
        from luigi_repro.cli import verify

        return verify.run(args, clock=clock)  # a replayed audit needs no runtime at all
    if name == "dag":
        from luigi_repro.cli import dag

        return dag.run(args, clock=clock)  # like verify: replays audits
    if name == "cache":
        from luigi_repro.cli import cache

        return cache.run(args)  # the run cache's store only: no runtime
    check_once(clock)
    if name == "show":
        from luigi_repro.cli import show

        return show.run(args)
    if name == "invalidate":
        from luigi_repro.cli import invalidate

        return invalidate.run(args)
    if name == "gc":
        from luigi_repro.cli import leftovers

        return leftovers.run(args)
    from luigi_repro.cli import adopt

    return adopt.run(args)


@contextlib.contextmanager
def _logging(debug: bool) -> Iterator[None]:
    """Warnings of luigi_repro on stderr, Luigi's chatter off; restored afterwards."""
    ours, theirs = logging.getLogger(LOGGER_NAME), logging.getLogger("luigi-interface")
    saved = (ours.level, ours.propagate, theirs.level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    ours.addHandler(handler)
    ours.setLevel(logging.DEBUG if debug else logging.WARNING)
    ours.propagate = False
    theirs.setLevel(logging.DEBUG if debug else logging.ERROR)
    try:
        yield
    finally:
        ours.removeHandler(handler)
        ours.level, ours.propagate = saved[0], saved[1]
        theirs.setLevel(saved[2])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status (see :func:`_main`).

    Output piped into a reader that leaves early (``| head``) ends quietly.
    """
    with quiet_when_reader_leaves():
        return _main(argv)


def _main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status.

    Called without ``argv`` it is the ``luigi-repro`` command, and the summary line's time counts
    from the start of the process; with ``argv`` (from Python) it counts from this call.
    """
    clock = CommandClock(as_command=argv is None)
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    if args[0] == "--version":
        from luigi_repro.version import __version__

        print(f"luigi-repro {__version__}")
        return 0
    if args[0] not in COMMANDS:
        sys.stderr.write(f"luigi-repro: unknown command {printable(repr(args[0]))}\n\n{USAGE}")
        return 2
    try:
        with _logging(debug):
            return _run(args[0], args[1:], clock)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else 2
    except KeyboardInterrupt:
        sys.stderr.write("luigi-repro: interrupted\n")
        return 2
    except Exception as exc:  # noqa: BLE001 - every error becomes one sentence (exit 2)
        if debug:
            traceback.print_exc()
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, UsageError) and not debug:
            message += " (run with --debug for the traceback)"
        sys.stderr.write(f"luigi-repro: error: {printable(message)}\n")
        return 2
