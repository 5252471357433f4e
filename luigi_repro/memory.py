"""What the judge remembers across ``complete()`` calls, and when it may be reused.

Luigi asks ``complete()`` of every task when it schedules a build and of every dependency before
each run; a verdict that stands on the whole upstream DAG, recomputed on every call, makes a build
quadratic. So two things are remembered per task (keyed by task id, class, settings, signing key
and whether the check looks for every reason):

- its *own verdict* — what its outputs, records, parameters, code and inputs say — with the
  evidence it was decided from (:class:`~luigi_repro.evidence.Trace`), and
- its *status* — the own verdict combined with the statuses of the tasks it requires.

An own verdict is reused without reading anything while none of its files changed: the files
are watched (:mod:`luigi_repro.watch`) before they are read, so any change raises an event that
marks the verdict *own-dirty*. Where a file cannot be watched, the evidence is replayed by stat
instead (O(the task's own files)). A status is reused without visiting the tasks upstream while
it is *clean*: nothing it stands on changed. Marking is pushed downstream along the remembered
edges when a file changes or a task runs, so a clean status implies clean statuses all the way
upstream, and revalidation costs O(what changed), never O(the upstream closure).

A status is never reused if it stands on something that cannot be watched (a remote object, a
plain task's own ``complete()``), nor a ``False`` status after any task ran in this process.
Entries are evicted least recently used first; evicting one marks the statuses that stood on it.
"""

from __future__ import annotations

import collections
import os
import threading
from typing import Any, Dict, Iterable, List, Optional, OrderedDict, Set, Tuple

import luigi.configuration

from luigi_repro.codeclosure import code_fingerprint
from luigi_repro.status import TaskStatus
from luigi_repro.verdictentry import (
    BUDGET_BYTES,
    CAPACITY,
    Counts,
    Entry,
    VerdictKey,
    weight_of,
)
from luigi_repro.watch import Changes, ChangeWatch

__all__ = ["BUDGET_BYTES", "CAPACITY", "Counts", "Entry", "VerdictKey", "VerdictMemory"]


class VerdictMemory:
    """Remembered verdicts of one process, with what makes them stale."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self.watch = ChangeWatch()
        self._lock = threading.RLock()
        self._entries: OrderedDict[VerdictKey, Entry] = collections.OrderedDict()
        self._by_path: Dict[str, Set[VerdictKey]] = {}
        self._by_folder: Dict[str, Set[str]] = {}
        self._by_task: Dict[str, Set[VerdictKey]] = {}
        self._code: Dict[Tuple[type, str], str] = {}
        self._world: Tuple[Any, ...] = ("",)
        #: Bumped by every check that took in a change. A check that remembers a verdict after
        #: another thread's check took changes in cannot tell whether one was about its files
        #: (read, but not yet indexed when the event came): it remembers the verdict as stale.
        self.generation = 0
        self.weight = 0
        self.budget = BUDGET_BYTES
        #: Counts runs in this process: a False status is never reused across one.
        self.runs = 0
        #: What the checks of this process did (tests and benchmarks read it).
        self.counts = Counts()

    # --- the start of each outermost check ------------------------------------------------------

    def begin(self) -> int:
        """Take in what changed since the last check: file events, the working folder, the
        environment and Luigi's configuration (which ``requires()`` and ``output()`` of tasks
        upstream may read), the code. Returns the generation a check starting now sees."""
        with self._lock:
            changes = self.watch.changes()
            world = _world()
            if world != self._world:
                if world[0] != self._world[0]:  # relative paths name other files now
                    changes.everything = changes.everything or bool(self._entries)
                self._world = world
                self._all_statuses_dirty()
            if self._code_changed():
                self._all_statuses_dirty()
            if changes:
                self.generation += 1
                self._apply(changes)
            return self.generation

    def _code_changed(self) -> bool:
        changed = False
        for (cls, algorithm), known in list(self._code.items()):
            now = code_fingerprint(cls, algorithm)
            if now != known:
                self._code[(cls, algorithm)] = now
                changed = True
        return changed

    def note_code(self, cls: type, algorithm: str, code: str) -> None:
        with self._lock:
            self._code.setdefault((cls, algorithm), code)

    def _apply(self, changes: Changes) -> None:
        if changes.everything:
            for entry in self._entries.values():
                entry.own_clean = False
            self._all_statuses_dirty()
            return
        hit: Set[VerdictKey] = set()
        for path in changes.paths:
            hit.update(self._by_path.get(path, ()))
        for tree in changes.trees:
            prefix = tree + os.sep
            for folder, paths in self._by_folder.items():
                if folder == tree or folder.startswith(prefix):
                    for path in paths:
                        hit.update(self._by_path.get(path, ()))
        self._own_dirty(hit)

    def _own_dirty(self, keys: Iterable[VerdictKey]) -> None:
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None:
                entry.own_clean = False
        self._status_dirty(keys)

    def _status_dirty(self, keys: Iterable[VerdictKey]) -> None:
        stack = list(keys)
        while stack:
            entry = self._entries.get(stack.pop())
            if entry is None or not entry.status_clean:
                continue  # its dependents were marked when it was
            entry.status_clean = False
            stack.extend(entry.dependents)

    def _all_statuses_dirty(self) -> None:
        for entry in self._entries.values():
            entry.status_clean = False

    # --- own verdicts ---------------------------------------------------------------------------

    def entry(self, key: VerdictKey) -> Optional[Entry]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def remember_own(
        self,
        key: VerdictKey,
        identity: Tuple[Any, ...],
        trace: Any,
        verdict: Any,
        watched: bool,
        paths: Iterable[str],
        since: int,
        wrapper: Any = None,
    ) -> None:
        """A newly decided own verdict (its status, if any, is no longer clean); ``since`` is
        the generation the deciding check began in; ``wrapper``: the task, for a wrapper."""
        with self._lock:
            old = self._entries.pop(key, None)
            dependents: Set[VerdictKey] = set()
            if old is not None:
                self._drop(old)
                dependents = old.dependents
                self._status_dirty(dependents)
            clean = watched and since == self.generation
            entry = Entry(key, identity, trace, verdict, clean, frozenset(paths), wrapper=wrapper)
            entry.weight = weight_of(trace)
            entry.dependents = dependents
            self._entries[key] = entry
            self.weight += entry.weight
            self._index(entry)
            self._evict()

    def revalidated_own(
        self, entry: Entry, watched: bool, paths: Iterable[str], since: int
    ) -> None:
        """The own evidence was replayed and still holds; watched from now on if ``watched``
        (and no other check took in changes meanwhile)."""
        with self._lock:
            if self._entries.get(entry.key) is not entry:
                return
            new_paths = frozenset(paths) - entry.paths
            if new_paths:
                self._unindex(entry)
                entry.paths = entry.paths | new_paths
                self._index(entry)
            entry.own_clean = watched and since == self.generation

    # --- statuses -------------------------------------------------------------------------------

    def trusted_status(self, key: VerdictKey, identity: Tuple[Any, ...]) -> Optional[TaskStatus]:
        """The remembered status, when nothing it stands on can have changed."""
        with self._lock:
            entry = self._entries.get(key)
            if (
                entry is None
                or entry.status is None
                or not entry.status_clean
                or not entry.own_clean
                or entry.identity != identity
                or not (entry.status.ok or entry.runs == self.runs)
            ):
                return None
            self._entries.move_to_end(key)
            self.counts.statuses_reused += 1
            return entry.status

    def remember_status(
        self,
        key: VerdictKey,
        status: TaskStatus,
        upstream: Iterable[VerdictKey],
        watched: bool,
        paths: Iterable[str],
        since: int,
    ) -> None:
        """The status just computed; clean (reusable) only if every part of it is watched,
        every upstream status it stands on is clean, and no other check took in changes since
        ``since``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            for old in entry.upstream:
                above = self._entries.get(old)
                if above is not None:
                    above.dependents.discard(key)
            upstream = tuple(upstream)
            clean = watched and entry.own_clean and since == self.generation
            wrappers = {key} if entry.wrapper is not None else set()
            for up in upstream:
                above = self._entries.get(up)
                if above is None:
                    clean = False
                    continue
                above.dependents.add(key)
                clean = clean and above.status_clean
                wrappers.update(above.wrappers)
            entry.wrappers = frozenset(wrappers)
            extra = frozenset(paths) - entry.paths
            if extra - entry.status_paths:
                self._unindex(entry)
                entry.status_paths = extra
                self._index(entry)
            entry.status = status
            entry.upstream = upstream
            entry.status_clean = clean
            entry.runs = self.runs

    def wrappers_under(self, key: VerdictKey) -> List[Tuple[VerdictKey, Any, Tuple[Any, ...]]]:
        """``(key, task, identity)`` of each wrapper the status of ``key`` stands on."""
        with self._lock:
            entry = self._entries.get(key)
            found = []
            for wrapper_key in () if entry is None else entry.wrappers:
                wrapper = self._entries.get(wrapper_key)
                if wrapper is not None and wrapper.wrapper is not None:
                    found.append((wrapper_key, wrapper.wrapper, wrapper.identity))
            return found

    def changed(self, key: VerdictKey) -> None:
        """What ``key``'s verdict stood on changed (a wrapper lists other tasks now)."""
        with self._lock:
            self._own_dirty([key])

    # --- runs -----------------------------------------------------------------------------------

    def task_ran(self, task_id: str) -> None:
        """A task ran (or is about to) in this process: its verdicts and those below it are
        stale, and no False status is reused from now on."""
        with self._lock:
            self.runs += 1
            self._own_dirty(list(self._by_task.get(task_id, ())))

    # --- bookkeeping ----------------------------------------------------------------------------

    def _index(self, entry: Entry) -> None:
        for path in entry.paths | entry.status_paths:
            keys = self._by_path.get(path)
            if keys is None:
                keys = self._by_path[path] = set()
                self._by_folder.setdefault(os.path.dirname(path), set()).add(path)
            keys.add(entry.key)
        self._by_task.setdefault(entry.key[0], set()).add(entry.key)

    def _unindex(self, entry: Entry) -> None:
        for path in entry.paths | entry.status_paths:
            keys = self._by_path.get(path)
            if keys is not None:
                keys.discard(entry.key)
                if not keys:
                    del self._by_path[path]
                    folder = os.path.dirname(path)
                    siblings = self._by_folder.get(folder)
                    if siblings is not None:
                        siblings.discard(path)
                        if not siblings:
                            del self._by_folder[folder]
        keys = self._by_task.get(entry.key[0])
        if keys is not None:
            keys.discard(entry.key)
            if not keys:
                del self._by_task[entry.key[0]]

    def _drop(self, entry: Entry) -> None:
        """Unlink an entry leaving the memory from the indexes and from what it stood on."""
        self._unindex(entry)
        self.weight -= entry.weight
        for up in entry.upstream:
            above = self._entries.get(up)
            if above is not None:
                above.dependents.discard(entry.key)

    def _evict(self) -> None:
        """Least recently used first, until both the count and the byte budget hold."""
        while len(self._entries) > 1 and (
            len(self._entries) > self.capacity or self.weight > self.budget
        ):
            _, entry = self._entries.popitem(last=False)
            self._drop(entry)
            self._status_dirty(entry.dependents)

    def __len__(self) -> int:
        return len(self._entries)

    # --- forks (see luigi_repro.forkhandoff) ---------------------------------------------------

    def hold_for_fork(self, timeout: float) -> bool:
        """In a parent about to fork: hold the memory and the watch still, with every event
        taken in, so the child starts from an exact picture. False (nothing held) when there is
        nothing a child could reuse, or another thread does not let go in time."""
        if not self._entries or not self.watch.available:
            return False
        if not self._lock.acquire(timeout=timeout):
            return False
        if not self.watch.hold(timeout):
            self._lock.release()
            return False
        self.take_in_held(self.watch.drain_held())
        return True

    def take_in_held(self, changes: Changes) -> None:
        """Mark what ``changes`` touched (the caller holds the lock)."""
        if changes:
            self.generation += 1
            self._apply(changes)

    def release_after_fork(self) -> None:
        """In the parent, once the child has its picture."""
        self.watch.release()
        self._lock.release()

    def after_fork(self, handed: bool = False) -> Changes:
        """In a forked child: keep what the parent knew. Without a hand-over from the parent
        nothing of it is trusted unreplayed; with one, every watch is made again here, and the
        result (what could not be watched again) is taken in with what the parent sends."""
        self._lock = threading.RLock()
        lost = self.watch.after_fork(rewatch=handed)
        if not handed:
            return lost
        self.take_in_held(lost)
        return lost

    def forget(self) -> None:
        """Drop everything (tests reset through :func:`luigi_repro.runtime.reset`)."""
        with self._lock:
            self._entries.clear()
            self.weight = 0
            self._by_path.clear()
            self._by_folder.clear()
            self._by_task.clear()
            self._code.clear()
            self.watch.forget()


def _world() -> Tuple[Any, ...]:
    """What ``requires()`` and ``output()`` may read besides parameters: the working folder,
    the environment and Luigi's configuration (raw values; another parser: its identity)."""
    config = luigi.configuration.get_config()
    sections = getattr(config, "_sections", None)
    if isinstance(sections, dict):
        described: Any = tuple(
            (name, tuple(sorted(values.items())) if isinstance(values, dict) else values)
            for name, values in sorted(sections.items())
        )
    else:
        described = id(config)
    # The environment's raw bytes where CPython keeps them (no decoding of every variable); a
    # plain copy, compared as a dict: cheaper than hashing every item at every check.
    raw: Any = getattr(os.environ, "_data", None)
    environment = dict(raw) if isinstance(raw, dict) else dict(os.environ)
    return os.getcwd(), environment, described
