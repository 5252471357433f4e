"""The exceptions luigi_repro raises.

Every error is a :class:`ReproError`; where a builtin exception means the same thing, the
error inherits it too, so ``except ValueError`` or ``except TimeoutError`` keeps working::

    ReproError (Exception)
     +-- ConfigError (ValueError)         a [luigi_repro] option has a value we cannot use
     |    +-- SigningKeyError             the signing key is configured but empty, or required
     +-- ParameterError (TypeError)       a parameter has no canonical form (e.g. a set)
     +-- RecordError (ValueError)         a record is unreadable: JSON, shape, schema, signature
     +-- LockTimeout (TimeoutError)       a run lock was not acquired in time
     +-- LockError (OSError)              a run-lock file is a symlink or cannot be opened
     +-- TemporaryReplaced (OSError)      a temporary file was swapped for a symlink while written
     +-- TargetMissing (FileNotFoundError)  a target asked for its fingerprint has no content
     +-- LockServerUnavailable (ConnectionError)  the Redis lock server cannot be reached
     +-- MissingDependency (ImportError)  an optional backend is used but not installed
     +-- UnsupportedTarget (TypeError)    an output cannot carry a record
     +-- RunProtocolError (RuntimeError)  a run broke the protocol; no record was written
          +-- InputChangedDuringRun       an input's content changed while run() was running
          +-- OutputNotWritten            run() returned without (re)writing an output
          +-- OutputUnstable              an output kept changing while it was fingerprinted
          +-- RecordRefused               every reader would refuse the record (too large…)
          +-- LockLost                    the run lock was taken away while the task ran
          +-- UndeclaredRead              run() read files it does not declare (policy error)
"""

from __future__ import annotations

from typing import Optional, Sequence

from luigi_repro.printable import printable

__all__ = [
    "ConfigError",
    "InputChangedDuringRun",
    "LockError",
    "LockLost",
    "LockServerUnavailable",
    "LockTimeout",
    "MissingDependency",
    "OutputNotWritten",
    "OutputUnstable",
    "ParameterError",
    "RecordError",
    "RecordRefused",
    "ReproError",
    "RunProtocolError",
    "SigningKeyError",
    "TargetMissing",
    "TemporaryReplaced",
    "UndeclaredRead",
    "UnsupportedTarget",
]


class ReproError(Exception):
    """Root of every error raised by luigi_repro.

    Its text is shown printable (control characters as escapes): messages quote paths and
    records from shared folders, and Luigi logs them as they are.
    """

    def __str__(self) -> str:
        return printable(super().__str__())


class ConfigError(ReproError, ValueError):
    """An option of the ``[luigi_repro]`` section (or its environment override) is unusable."""

    def __init__(self, option: str, value: object, expected: str) -> None:
        self.option = option
        self.value = value
        self.expected = expected
        super().__init__(f"[luigi_repro] {option} = {value!r} is not valid: expected {expected}.")


class SigningKeyError(ConfigError):
    """The signing key is present but empty, or required (``require_signatures``) but absent.

    Signing fails closed: an empty variable is how a missing CI secret usually looks, and
    treating it as "no key" would silently accept unsigned (forged) records.
    """

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        ReproError.__init__(self, f"the signing key variable {variable} {problem}.")
        self.option = "hmac_key_env"
        self.value = variable
        self.expected = "a non-empty key"


class ParameterError(ReproError, TypeError):
    """A parameter value has no stable canonical form, so a record could not vouch for it."""


class RecordError(ReproError, ValueError):
    """A record exists but cannot be trusted: unreadable, malformed, from the future or forged."""

    def __init__(self, location: str, problem: str) -> None:
        self.location = location
        self.problem = problem
        super().__init__(f"record {location} is not usable: {problem}.")


class LockTimeout(ReproError, TimeoutError):
    """Another process held a run lock for longer than ``lock_timeout``."""

    def __init__(self, lock_name: str, timeout: float, task_id: Optional[str] = None) -> None:
        self.lock_name = lock_name
        self.timeout = timeout
        self.task_id = task_id
        who = f" for task {task_id}" if task_id else ""
        super().__init__(
            f"could not take the run lock {lock_name}{who} within {timeout:g} s; "
            "another process is probably running the same task (raise [luigi_repro] lock_timeout "
            "if it legitimately runs longer)."
        )


class LockError(ReproError, OSError):
    """A run-lock file cannot be used safely: it is a symlink, or it cannot be opened at all."""

    def __init__(self, lock_name: str, problem: str, remedy: str) -> None:
        self.lock_name = lock_name
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"cannot use the run lock {lock_name}: {problem}; {remedy}.")


class TemporaryReplaced(ReproError, OSError):
    """A temporary file or folder was replaced by a symlink while it was being written."""

    def __init__(self, temporary: str, output: str) -> None:
        self.temporary = temporary
        self.output = output
        super().__init__(
            f"the temporary {temporary} was replaced by a symlink while {output} was written, so "
            "the data went elsewhere; the output was left as it was (who else writes this folder?)."
        )


class TargetMissing(ReproError, FileNotFoundError):
    """A target was asked for its fingerprint, but its content does not exist."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(f"cannot fingerprint {uri}: it does not exist (has its task run?).")


class UntrustedPickle(ReproError, PermissionError):
    """A pickle that someone else could have written: loading it would run their code."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        super().__init__(
            f"refusing to load the pickle {path}: {why}, and loading a pickle runs code its "
            "writer chose (pass trust_writer=True if you trust whoever can write it)."
        )


class LockServerUnavailable(ReproError, ConnectionError):
    """The Redis server named by ``[luigi_repro] lock`` cannot be reached."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(f"cannot reach the Redis lock server {url}: {problem}.")


class MissingDependency(ReproError, ImportError):
    """An optional backend was used without its package installed."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"this feature needs the package {package!r}; install it with "
            f"pip install 'luigi-repro[{extra}]'."
        )


class UnsupportedTarget(ReproError, TypeError):
    """A task output is of a kind that cannot carry a record."""


class RunProtocolError(ReproError, RuntimeError):
    """The run of a task broke the protocol; its outputs were left without a record."""


class InputChangedDuringRun(RunProtocolError):
    """An input's content changed between the start and the end of ``run()``."""

    def __init__(
        self, task_id: str, input_uri: str, before: str, after: Optional[str], hint: str = ""
    ) -> None:
        self.task_id = task_id
        self.input_uri = input_uri
        self.before = before
        self.after = after
        now = after if after is not None else "missing"
        super().__init__(
            f"input {input_uri} of task {task_id} changed while the task was running "
            f"({before} -> {now}); no record was written, so the task will run again"
            + (f" ({hint})" if hint else "")
            + "."
        )


class OutputNotWritten(RunProtocolError):
    """``run()`` returned but some outputs do not exist, or were left from an earlier run."""

    def __init__(self, task_id: str, missing: Sequence[str], stale: Sequence[str] = ()) -> None:
        self.task_id = task_id
        self.missing = tuple(missing)
        self.stale = tuple(stale)
        if self.missing:
            problem = f"without writing its output(s): {', '.join(self.missing)}"
        else:
            problem = (
                f"without rewriting its output(s) {', '.join(self.stale)}, which are left from "
                "an earlier run; a run must write every output"
            )
        super().__init__(f"task {task_id} finished run() {problem}.")


class OutputUnstable(RunProtocolError):
    """An output kept changing while it was being fingerprinted."""

    def __init__(self, task_id: str, uri: str) -> None:
        self.task_id = task_id
        self.uri = uri
        super().__init__(
            f"output {uri} of task {task_id} kept changing while it was fingerprinted; "
            "is another process writing it?"
        )


class RecordRefused(RunProtocolError):
    """The record a run would write would be refused by every reader: larger than
    ``max_record_bytes``, or shaped (nesting, entries) beyond what readers accept.

    Writing it anyway would leave a task that is never complete, and its downstream failing with
    "unfulfilled dependencies"; the run fails here instead, saying what would do.
    """

    def __init__(self, task_id: str, uri: str, problem: str, needed: int) -> None:
        self.task_id = task_id
        self.uri = uri
        super().__init__(
            f"the record of output {uri} of task {task_id} would be refused by every reader "
            f"({problem}); raise max_record_bytes to at least {needed}, or split the output "
            "into smaller folders"
        )


class LockLost(RunProtocolError):
    """The run lock was lost while the task ran (its Redis connection dropped)."""

    def __init__(self, lock_name: str, task_id: Optional[str]) -> None:
        self.lock_name = lock_name
        self.task_id = task_id
        super().__init__(
            f"the run lock {lock_name} of task {task_id} was lost while the task ran, so another "
            "process may have run it too; no record was written, the task will run again."
        )


class UndeclaredRead(RunProtocolError):
    """``run()`` read files it does not declare, under ``undeclared_reads = error``."""

    def __init__(self, task_id: str, paths: Sequence[str]) -> None:
        self.task_id = task_id
        self.paths = tuple(paths)
        super().__init__(
            f"task {task_id} read file(s) it does not declare: {', '.join(self.paths)}; "
            "declare each in requires() with HashableExternalFile(path) (or set "
            "[luigi_repro] undeclared_reads = track); no record was written."
        )
