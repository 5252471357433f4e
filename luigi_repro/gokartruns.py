"""How a checked ``gokart.TaskOnKart`` runs: gokart's ``rerun`` and its dump lock.

``class T(CheckingInputHashMixin, gokart.TaskOnKart)`` judges completeness by luigi_repro's
records, not by gokart's ``complete()`` (so ``strict_check`` and ``modification_time_check``,
weaker existence and time checks, change nothing). Two gokart settings still act:

``rerun=True``
    the task runs even when its records say it is up to date, with no early cutoff, and the run
    rewrites its record. gokart removes the outputs before such a run; luigi_repro does not (the
    new output replaces the old one, and a failed run leaves the old one). The request holds
    until a run has finished, like gokart's, so the check gokart makes again at the start of
    ``run()`` (``complete_check_at_run``) does not skip it.
``redis_host`` / ``redis_port``
    gokart's redis dump lock skips ``dump()`` when the output already exists, which would keep a
    stale output in place on every rerun. Inside a checked run luigi_repro's run lock already
    guards the outputs, so ``dump()`` goes unlocked there, exactly as gokart itself does under
    ``should_lock_run`` (its own run lock). Loads and dumps outside ``run()`` keep their locks.
``local_temporary_directory``
    where ``make_model_target()`` stages the files it zips: the run's own scratch, whose files
    are never counted as undeclared reads.

gokart is never imported here: a task is a gokart task only if gokart is already loaded.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator, List

import luigi

__all__ = ["dumps_under_run_lock", "rerun_done", "rerun_requested", "scratch_of"]


def _is_gokart_task(task: Any) -> bool:
    gokart = sys.modules.get("gokart")
    task_class = getattr(gokart, "TaskOnKart", None) if gokart is not None else None
    return task_class is not None and isinstance(task, task_class)


def rerun_requested(task: Any) -> bool:
    """Does ``task`` carry a gokart ``rerun`` request that no run has answered yet?"""
    return _is_gokart_task(task) and getattr(task, "_rerun_state", False) is True


def rerun_done(task: Any) -> None:
    """A run of ``task`` finished: its ``rerun`` request is answered (gokart's own flag)."""
    if rerun_requested(task):
        task._rerun_state = False


def scratch_of(task: Any) -> List[luigi.LocalTarget]:
    """The folder where a gokart task stages files while it runs (none for other tasks)."""
    folder = getattr(task, "local_temporary_directory", None) if _is_gokart_task(task) else None
    return [luigi.LocalTarget(os.path.abspath(folder))] if isinstance(folder, str) else []


@contextlib.contextmanager
def dumps_under_run_lock(task: Any) -> Iterator[None]:
    """While ``run()`` executes, a gokart task's ``dump()`` writes without gokart's dump lock."""
    if not _is_gokart_task(task) or not hasattr(task, "_lock_at_dump"):
        yield
        return
    saved = task._lock_at_dump
    task._lock_at_dump = False
    try:
        yield
    finally:
        task._lock_at_dump = saved
