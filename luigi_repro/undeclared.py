"""Files ``run()`` read without declaring them, handled as ``undeclared_reads`` says.

Separate from the run protocol because it is a policy applied to what the read watch saw: warn and
list the paths, refuse the run, or track each file as an implicit input fingerprinted as it was
read.
"""

from __future__ import annotations

import contextlib
import datetime
from typing import Optional, Tuple

import luigi

from luigi_repro.config import ReadPolicy
from luigi_repro.errors import (
    InputChangedDuringRun,
    UndeclaredRead,
)
from luigi_repro.evidence import Missing
from luigi_repro.judge import Judge
from luigi_repro.log import logger
from luigi_repro.reads import ReadWatch
from luigi_repro.record import (
    InputEntry,
)
from luigi_repro.statcache import StatKey
from luigi_repro.targets.local import HashableLocalTarget


def _describe(stat: Optional[StatKey]) -> str:
    """A file's stat, as a change message shows it."""
    if stat is None:
        return "changing"
    modified = datetime.datetime.fromtimestamp(stat.mtime_ns / 1e9, datetime.timezone.utc)
    return f"{stat.size} bytes modified {modified.isoformat(timespec='microseconds')}"


def undeclared_inputs(
    task: luigi.Task, policy: ReadPolicy, reads: Optional[ReadWatch], judge: Judge
) -> Tuple[Tuple[InputEntry, ...], Tuple[str, ...]]:
    """Apply ``undeclared_reads`` to what run() read: (entries to track, paths to list).

    ``error`` raises :class:`UndeclaredRead`; ``track`` fingerprints each file now and fails
    like a declared input if it changed since ``run()`` first opened it.
    """
    read = reads.undeclared() if reads is not None else {}
    if not read:
        return (), ()
    paths = tuple(read)
    if policy == "error":
        raise UndeclaredRead(task.task_id, paths)
    if policy == "warn":
        logger.warning(
            "luigi_repro: %r read file(s) it does not declare: %s. A change to them will not "
            "make it run again: declare each in requires() with HashableExternalFile(path), "
            "or set [luigi_repro] undeclared_reads = track.",
            task,
            ", ".join(paths),
        )
        return (), paths
    return tuple(_track(task.task_id, judge, path, stat) for path, stat in read.items()), ()


def _track(task_id: str, judge: Judge, path: str, first: StatKey) -> InputEntry:
    """An implicit input for a file run() read, fingerprinted as it was when it was read."""
    outcome = judge.observe(HashableLocalTarget(path), recorded=False)
    now = None
    if not isinstance(outcome, Missing):
        with contextlib.suppress(ValueError):
            now = StatKey.from_json(outcome.state.get("stat"))
    if isinstance(outcome, Missing) or now != first:
        # Fingerprinted under another stat than the one it was read with: not what was read.
        after = None if isinstance(outcome, Missing) else _describe(now)
        raise InputChangedDuringRun(
            task_id,
            path,
            _describe(first),
            after,
            "it was read without being declared; if the task writes it itself, it is an "
            "output: declare it in output()",
        )
    return InputEntry(
        key=(f"undeclared:{path}",),
        output_key=(),
        uri=path,
        fingerprint=outcome.fingerprint,
        undeclared=True,
    )
