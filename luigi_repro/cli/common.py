"""What the subcommands share: their own options, Luigi's task syntax, errors as one sentence."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Sequence, Tuple

from luigi_repro.cli.clock import CommandClock

if TYPE_CHECKING:  # Luigi is imported only by the commands that build tasks
    import luigi

__all__ = ["UsageError", "check_once", "load_task", "split_own_options"]


#: Options of the luigi-repro subcommands, recognised to give a better hint when misplaced.
OWN_FLAGS = frozenset(
    {
        "--format",
        "--full",
        "--changed",
        "--color",
        "--no-color",
        "--debug",
        "--yes",
        "-y",
        "--force",
        "-o",
    }
)


class UsageError(Exception):
    """A mistake on the command line or in the environment: exit status 2, one sentence."""


def check_once(clock: Optional[CommandClock]) -> None:
    """A command checks once and exits: nothing is worth watching for a later check."""
    if clock is not None and clock.as_command:
        from luigi_repro.runtime import runtime

        runtime().memory.watch.disable()


def add_style_options(parser: argparse.ArgumentParser) -> None:
    """``--color``/``--no-color`` (on a terminal by default) and ``--debug``, of every command."""
    parser.add_argument("--color", dest="color", action="store_true", default=None)
    parser.add_argument("--no-color", dest="color", action="store_false")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def task_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str], what: str
) -> Tuple[argparse.Namespace, List[str]]:
    """The options and the task (Luigi's syntax) of a command that acts on a root task."""
    own, rest = split_own_options(parser, argv)
    options = parser.parse_args(own)
    if not rest:
        raise UsageError(f"nothing to {what}: give a root task (--module M Task)")
    return options, list(rest)


def confirm(command: str, question: str) -> bool:
    """Ask ``question`` on the terminal (yes only for "y"/"yes"); refuse without a terminal,
    naming ``--yes``, rather than act on what nobody answered."""
    if not sys.stdin or not sys.stdin.isatty():
        raise UsageError(
            f"{command} asks for confirmation but standard input is not a terminal; pass --yes"
        )
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def report_arguments(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    clock: Optional[CommandClock],
    is_path_mode: Callable[[Sequence[str]], bool],
    what: str,
) -> Tuple[argparse.Namespace, List[str], bool]:
    """The options, the task or paths, and whether they are paths, of a command that reports
    on a pipeline (``verify``, ``dag``): in PATH mode options may follow the paths."""
    own, rest = split_own_options(parser, argv)
    path_mode = is_path_mode(rest)
    if path_mode:
        own, rest = split_own_options(parser, argv, anywhere=True)
    else:
        check_once(clock)
    options = parser.parse_args(own)
    if not rest:
        raise UsageError(f"nothing to {what}: give a task (--module M Task) or output paths")
    return options, list(rest), path_mode


def _takes_value(parser: argparse.ArgumentParser, option: str) -> bool:
    for action in parser._actions:
        if option in action.option_strings:
            return action.nargs != 0
    return False


def split_own_options(
    parser: argparse.ArgumentParser, argv: Sequence[str], anywhere: bool = False
) -> Tuple[List[str], List[str]]:
    """Split ``argv`` into our options and the rest (Luigi's task syntax, or paths).

    Our options are taken from the front until the first token that is not one of them, so a
    task parameter that happens to share a name (``--format``) still reaches the task. With
    ``anywhere`` (path mode) they are recognised at any position.
    """
    own_flags = {s for a in parser._actions for s in a.option_strings}
    ours: List[str] = []
    rest: List[str] = []
    tokens = list(argv)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        name = token.split("=", 1)[0]
        if name in own_flags and (anywhere or not rest):
            ours.append(token)
            if "=" not in token and _takes_value(parser, name) and index + 1 < len(tokens):
                index += 1
                ours.append(tokens[index])
        else:
            rest.append(token)
            if not anywhere:
                rest.extend(tokens[index + 1 :])
                break
        index += 1
    return ours, rest


def _argparse_error(printed: str) -> str:
    """The one-line error in what argparse printed (``...: error: unrecognized arguments: x``),
    without its usage text."""
    for line in reversed(printed.splitlines()):
        if ": error: " in line:
            return line.split(": error: ", 1)[1].strip()
    return "invalid task arguments"


@contextlib.contextmanager
def load_task(argv: Sequence[str]) -> Iterator[luigi.Task]:
    """Build the root task from Luigi's own syntax (``--module M Task --param v``).

    The parser stays active for the ``with`` block, so ``--Family-param`` overrides also reach
    tasks created later in ``requires()``.
    """
    from luigi.cmdline_parser import CmdlineParser
    from luigi.task_register import TaskClassException

    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # like `python -m`: modules beside you can be --module'd
    complaint = io.StringIO()  # argparse's usage text and error, made into one sentence below
    try:
        with contextlib.ExitStack() as active:
            with contextlib.redirect_stderr(complaint):
                parser = active.enter_context(
                    CmdlineParser.global_instance(list(argv), allow_override=True)
                )
                task = parser.get_task_obj()
            yield task
    except TaskClassException as exc:
        raise UsageError(f"{exc} (is the task's module given with --module?)") from None
    except ImportError as exc:
        raise UsageError(f"cannot import the pipeline: {exc}") from None
    except SystemExit as exc:
        if exc.code in (0, None):
            raise
        message = exc.code if isinstance(exc.code, str) else _argparse_error(complaint.getvalue())
        ours = [t for t in argv if t.split("=", 1)[0] in OWN_FLAGS]
        if ours:
            message += f" (put luigi-repro's own options such as {ours[0]} before --module)"
        raise UsageError(str(message)) from None
