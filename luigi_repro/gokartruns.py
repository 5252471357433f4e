"""How a checked ``gokart.TaskOnKart`` runs: gokart's ``rerun`` and its dump lock.

``class T(CheckingInputHashMixin, gokart.TaskOnKart)`` judges completeness by luigi_repro's
records, not by gokart's ``complete()`` (so ``strict_check`` and ``modification_time_check``,
weaker existence and time checks, change nothing). Two gokart settings still act:

``rerun=True``
    the task runs once per build even when its records say it is up to date, with no early
    cutoff, and the run rewrites its record. gokart removes the outputs before such a run;
    luigi_repro does not (the new output replaces the old one, and a failed run leaves the old
    one). As in gokart, the first ``complete()`` of the instance takes up the request; it stays
    open until a run has replaced the records the task had at that moment. That is seen in
    every process: with several workers the run happens in a forked child, and neither the
    parent nor a downstream task's child (Luigi checks dependencies again at run time) would
    learn of it from a flag on the instance. Until then the check gokart makes again at the
    start of ``run()`` (``complete_check_at_run``) does not skip the run.
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
import hashlib
import os
import sys
from typing import Any, Iterator, List, Optional, Tuple

import luigi

from luigi_repro.config import load_settings
from luigi_repro.dag import flatten_with_keys
from luigi_repro.targets.base import as_hashable

__all__ = ["dumps_under_run_lock", "rerun_done", "rerun_requested", "scratch_of"]


def _is_gokart_task(task: Any) -> bool:
    gokart = sys.modules.get("gokart")
    task_class = getattr(gokart, "TaskOnKart", None) if gokart is not None else None
    return task_class is not None and isinstance(task, task_class)


#: On a gokart task whose ``rerun`` request was taken up: the records its outputs had then.
_RECORDS_AT_REQUEST = "_luigi_repro_records_at_rerun_request"


def rerun_requested(task: Any) -> bool:
    """Must ``task`` still run to answer a gokart ``rerun`` request?

    The first call takes up the request (gokart's ``_rerun_state``, cleared as gokart's own
    ``complete()`` clears it) and notes the task's records; later calls, in this process or in
    a worker forked from it, say True until a run has replaced those records.
    """
    if not _is_gokart_task(task):
        return False
    if getattr(task, "_rerun_state", False) is True:
        task._rerun_state = False
        setattr(task, _RECORDS_AT_REQUEST, _records_now(task))
        return True
    at_request = getattr(task, _RECORDS_AT_REQUEST, None)
    if at_request is None:
        return False
    if _records_now(task) == at_request:
        return True
    rerun_done(task)  # another process ran it
    return False


def rerun_done(task: Any) -> None:
    """A run of ``task`` finished: its ``rerun`` request is answered."""
    if _is_gokart_task(task):
        task._rerun_state = False
        with contextlib.suppress(AttributeError):
            delattr(task, _RECORDS_AT_REQUEST)


def _records_now(task: Any) -> Tuple[Optional[str], ...]:
    """A digest of each output's record (None where there is none): a run changes it."""
    settings = load_settings()
    marks: List[Optional[str]] = []
    for _, target in flatten_with_keys(task.output()):
        hashable = as_hashable(target)
        try:
            data = hashable.read_record_bytes(settings) if hashable is not None else None
        except Exception as exc:  # noqa: BLE001 - unreadable now: the verdict will say why
            marks.append(f"unreadable: {type(exc).__name__}")
            continue
        marks.append(hashlib.sha256(data).hexdigest() if data is not None else None)
    return tuple(marks)


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
