"""Tasks judged by their own ``complete()`` (plain Luigi tasks, external inputs), and wrappers.

Asked once per check. Their answer can stand across checks only when it is Luigi's own
``complete()`` (every output exists) over targets whose files are watched; any other
``complete()`` may read anything, so a status standing on it is checked again every time.

A wrapper whose ``complete()`` is only "everything it requires is complete" (Luigi's
``WrapperTask``, luigi_repro's) is not asked at all: the judge walks it like a checked task with
no evidence of its own, so its status is remembered and a status standing on it can be reused.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import luigi

from luigi_repro.config import Settings
from luigi_repro.dag import flatten_with_keys, is_wrapper
from luigi_repro.evidence import Evidence, watch_paths
from luigi_repro.findings import OwnVerdict
from luigi_repro.record import Key

__all__ = ["PlainTasks", "is_wrapper", "wrapper_verdict"]


def wrapper_verdict(task: luigi.Task, requirements: List[Tuple[Key, luigi.Task]]) -> OwnVerdict:
    """A wrapper's own verdict: nothing of its own, complete when what it wraps is."""
    return OwnVerdict((), (), None, tuple(upstream for _, upstream in requirements))


class PlainTasks:
    """``complete()`` of tasks judged by their own rules, once per check."""

    def __init__(self, evidence: Evidence, settings: Settings, seen: Dict[str, luigi.Task]) -> None:
        self.evidence = evidence
        self.settings = settings
        self.tasks = seen
        self._known: Dict[str, Tuple[bool, str, bool, Tuple[str, ...]]] = {}

    def complete(self, task: luigi.Task) -> Tuple[bool, str, bool, Tuple[str, ...]]:
        """``task.complete()`` once per judge, and whether a watch covers its answer.

        Only Luigi's own ``complete()`` (every output exists) over watchable targets can be
        covered; anything else is asked again on every check.
        """
        known = self._known.get(task.task_id)
        if known is None:
            self.tasks[task.task_id] = task
            watched, paths = self._watch_default_complete(task)
            try:
                ok = bool(task.complete())
                known = (ok, "complete" if ok else "not complete", watched, paths)
            except Exception as exc:  # noqa: BLE001 - a failing complete() means "not complete"
                known = (False, f"not checkable (complete() raised {exc!r})", False, ())
            self._known[task.task_id] = known
        return known

    def _watch_default_complete(self, task: luigi.Task) -> Tuple[bool, Tuple[str, ...]]:
        watch = self.evidence.watch
        if watch is None or type(task).complete is not luigi.Task.complete:
            return False, ()
        try:
            outputs = [target for _, target in flatten_with_keys(task.output())]
        except Exception:  # noqa: BLE001 - complete() will say so
            return False, ()
        paths: List[str] = []
        for target in outputs:
            found = watch_paths(target, self.settings)
            if found is None:
                return False, ()
            paths.extend(found)
        return bool(outputs) and watch.watch(paths), tuple(paths)
