"""What one check has seen: records, fingerprints and existence answers, each read once.

The rules (:mod:`luigi_repro.rules`) decide from evidence; the audit and the run protocol read
it directly. Everything read is memoized for the duration of one outermost check, so a target
that is the output of one task and the input of three others is fingerprinted once. Every local
file is watched (:mod:`luigi_repro.watch`) *before* it is read, so that a verdict decided from
it can later stand until an event says the file changed.

While a task's own verdict is decided, a :class:`Trace` collects the evidence it was decided
from (what :mod:`luigi_repro.memory` keeps to reuse or replay it).
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import attrs
import luigi

from luigi_repro.config import Settings
from luigi_repro.dag import flatten_with_keys
from luigi_repro.errors import RecordError
from luigi_repro.fingerprint import Counters
from luigi_repro.log import logger
from luigi_repro.record import Key, Record
from luigi_repro.runtime import runtime
from luigi_repro.statcache import open_stat_cache
from luigi_repro.targets.base import (
    FingerprintContext,
    HashableTarget,
    Observation,
    as_hashable,
    probe_exists,
)
from luigi_repro.watch import ChangeWatch
from luigi_repro.writerrights import current_reader

__all__ = ["Evidence", "Missing", "Outcome", "Trace", "uri_of", "warn_once"]

_warned: Set[str] = set()
_warned_lock = threading.Lock()


def warn_once(key: str, message: str, *args: object) -> None:
    """Log a warning the first time ``key`` is seen in this process."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message, *args)


def forget_warnings() -> None:
    with _warned_lock:
        _warned.clear()


@attrs.frozen
class Missing:
    """An observation that found no content, or content that could not be read."""

    problem: str


Outcome = Union[Observation, Missing]

#: (target, algorithm, recorded, fingerprint or None, settled token or None)
Seen = Tuple[HashableTarget, str, bool, Optional[str], Any]


@attrs.define
class Trace:
    """Everything one own verdict was decided from, in the order it was looked at."""

    records: List[Tuple[HashableTarget, Record]] = attrs.field(factory=list)
    observations: List[Seen] = attrs.field(factory=list)
    existence: List[Tuple[Any, bool]] = attrs.field(factory=list)
    #: False when something was seen that cannot be compared later (an unusable record).
    reusable: bool = True
    #: True while every file seen was watched before it was read.
    watched: bool = True
    #: The local files seen (a change to any of them makes the verdict stale).
    paths: Set[str] = attrs.field(factory=set)


def uri_of(target: Any) -> str:
    hashable = as_hashable(target)
    if hashable is not None:
        return hashable.uri
    return str(getattr(target, "path", target))


class Evidence:
    """Records, fingerprints and existence answers for one outermost check."""

    def __init__(
        self,
        settings: Settings,
        watch: Optional[ChangeWatch],
        *,
        full: bool = False,
        counters: Optional[Counters] = None,
    ) -> None:
        self.settings = settings
        #: Where records are read from, under these settings.
        self.records = runtime().records(settings)
        self.watch = watch
        self.context = FingerprintContext(
            algorithm=settings.hash_algorithm,
            racy_window_ns=settings.racy_window_ns,
            record_suffix=settings.record_suffix,
            cache=None if full else open_stat_cache(settings.stat_cache_path),
            counters=counters if counters is not None else Counters(),
            full=full,
        )
        self._contexts: Dict[str, FingerprintContext] = {settings.hash_algorithm: self.context}
        self._records: Dict[str, Tuple[Optional[Record], Optional[RecordError], bool]] = {}
        self._observations: Dict[Tuple[str, str, str, Any], Tuple[Outcome, bool]] = {}
        self._settled: Dict[Any, bool] = {}
        self._outputs: Dict[str, Tuple[Tuple[Key, str, Any], ...]] = {}
        #: The trace of the own verdict being decided, if any.
        self.trace: Optional[Trace] = None
        self.targets_observed = 0

    @property
    def counters(self) -> Counters:
        return self.context.counters

    # --- watching ---------------------------------------------------------------------------

    def _watch(self, target: Any) -> Tuple[bool, Tuple[str, ...]]:
        """Watch ``target``'s files before reading them: (watched, its local paths)."""
        if self.watch is None or not self.watch.available:
            return False, ()
        paths = watch_paths(target, self.settings)
        if paths is None:
            return False, ()
        return self.watch.watch(paths), paths

    def _paths(self, target: Any) -> Tuple[str, ...]:
        if self.watch is None or not self.watch.available:
            return ()
        return watch_paths(target, self.settings) or ()

    def _saw(self, watched: bool, paths: Tuple[str, ...]) -> None:
        if self.trace is not None:
            self.trace.watched = self.trace.watched and watched
            self.trace.paths.update(paths)

    # --- records --------------------------------------------------------------------------------

    def record_of(self, target: HashableTarget) -> Tuple[Optional[Record], Optional[RecordError]]:
        """The target's record (or None), and the error that made it unusable (or None)."""
        uri = target.uri
        known = self._records.get(uri)
        if known is None:
            watched, paths = self._watch(target)
            try:
                try:
                    stored = self.records.read(target)
                except RecordError:
                    raise
                except Exception as error:  # noqa: BLE001 - a backend failure (S3 403, HDFS…)
                    location = self.records.location(target)
                    raise RecordError(location, f"it cannot be read ({error})") from None
                known = (stored, None, watched)
            except RecordError as exc:
                warn_once(
                    f"bad-record:{uri}:{exc.problem}",
                    "luigi_repro: %s The task will run again.",
                    exc,
                )
                known = (None, exc, watched)
            self._records[uri] = known
            self._saw(watched, paths)
        else:
            self._saw(known[2], self._paths(target))
        return known[0], known[1]

    # --- fingerprints ---------------------------------------------------------------------------

    def _context_for(self, algorithm: str) -> FingerprintContext:
        context = self._contexts.get(algorithm)
        if context is None:
            context = self._contexts[algorithm] = attrs.evolve(self.context, algorithm=algorithm)
        return context

    def observe(
        self, target: HashableTarget, algorithm: Optional[str] = None, recorded: bool = True
    ) -> Outcome:
        """The current fingerprint of ``target`` (with ``algorithm``), computed once per check.

        The target's own record, when it has one, offers the previous observation, whose state
        (stat, ETag…) lets the target skip reading unchanged content. ``recorded=False`` says
        the target was made by a task that keeps no records (a raw input), so none is looked for.
        """
        algorithm = algorithm or self.settings.hash_algorithm
        outcome = self.fresh_observation(target, algorithm, recorded)
        if self.trace is not None:
            if isinstance(outcome, Missing):
                fingerprint, token = None, None
            else:
                fingerprint = outcome.fingerprint
                token = target.settled_token(outcome, self.settings.racy_window_ns)
            self.trace.observations.append((target, algorithm, recorded, fingerprint, token))
        return outcome

    def fresh_observation(self, target: HashableTarget, algorithm: str, recorded: bool) -> Outcome:
        """:meth:`observe` without adding to the trace (replaying one)."""
        # What was read within another user's rights is remembered apart: a file refused to a
        # record's writer must not be answered from a fingerprint taken for someone else.
        memo_key = (target.uri, algorithm, target.fingerprint_kind, current_reader())
        known = self._observations.get(memo_key)
        if known is not None:
            self._saw(known[1], self._paths(target))
            return known[0]
        previous = None
        record, _ = self.record_of(target) if recorded else (None, None)
        if record is not None:
            for entry in record.outputs:
                if entry.uri == memo_key[0]:
                    previous = Observation(
                        entry.fingerprint, entry.size, entry.state, entry.manifest
                    )
                    break
        watched, paths = self._watch(target)
        try:
            outcome: Outcome = target.observe(self._context_for(algorithm), previous)
        except FileNotFoundError:
            outcome = Missing("does not exist")
        except Exception as exc:  # noqa: BLE001 - a check answers "not complete", never raises
            outcome = Missing(f"cannot be read ({exc})")
        self.targets_observed += 1
        self._observations[memo_key] = (outcome, watched)
        self._saw(watched, paths)
        return outcome

    def still_settled(self, target: HashableTarget, token: Any) -> bool:
        """``target.still_settled(token)``, asked once per check (an output is also an input)."""
        answer = self._settled.get(token)
        if answer is None:
            answer = self._settled[token] = target.still_settled(token)
            self.counters.files_statted += 1
        return answer

    # --- existence ------------------------------------------------------------------------------

    def exists(self, target: Any) -> Tuple[bool, Optional[str]]:
        watched, paths = self._watch(target)
        exists, problem = probe_exists(target)
        self._saw(watched, paths)
        if self.trace is not None:
            self.trace.existence.append((target, exists))
            if problem is not None:
                self.trace.reusable = False  # a backend error may be gone next time
        return exists, problem

    # --- where outputs are ----------------------------------------------------------------------

    def places(self, task: luigi.Task) -> Tuple[Tuple[Key, str, Any], ...]:
        """Each output of ``task``: its key, its URI and how it can be fingerprinted.

        Asked once per check: a task's outputs are also the inputs of every task downstream.
        """
        places = self._outputs.get(task.task_id)
        if places is None:
            found: List[Tuple[Key, str, Any]] = []
            for key, target in flatten_with_keys(task.output()):
                hashable = as_hashable(target)
                if hashable is None:
                    found.append((key, uri_of(target), None))
                else:
                    found.append((key, hashable.uri, (type(hashable), hashable.fingerprint_kind)))
            places = self._outputs[task.task_id] = tuple(found)
        return places

    # --- replaying a trace ----------------------------------------------------------------------

    def still_holds(self, trace: Trace) -> bool:
        """Does everything a remembered verdict was decided from look the same now?

        Each file is watched again before it is looked at, so a trace that holds is watched
        from now on where its files can be (``trace.watched`` and ``trace.paths`` are updated).
        """
        outer, self.trace = self.trace, Trace()
        try:
            holds = self._replay(trace)
            trace.watched = self.trace.watched
            trace.paths.update(self.trace.paths)
        finally:
            self.trace = outer
        return holds

    def _replay(self, trace: Trace) -> bool:
        for target, record in trace.records:
            now, error = self.record_of(target)
            if error is not None or (now is not record and now != record):
                return False
        window = self.settings.racy_window_ns
        for index, (target, algorithm, recorded, fingerprint, token) in enumerate(
            trace.observations
        ):
            if token is not None:
                watched, paths = self._watch(target)
                self._saw(watched, paths)
                if self.still_settled(target, token):
                    continue  # one stat: the same file, not written since it was fingerprinted
            outcome = self.fresh_observation(target, algorithm, recorded)
            if isinstance(outcome, Missing):
                if fingerprint is not None:
                    return False
                continue  # missing then, missing now
            if outcome.fingerprint != fingerprint:
                return False
            # Same content: once its file has settled, later checks need only a stat.
            token = target.settled_token(outcome, window)
            if token is not None:
                trace.observations[index] = (target, algorithm, recorded, fingerprint, token)
        # Asked even when a stat above found the file: a target's exists() may want more.
        for target, exists in trace.existence:
            watched, paths = self._watch(target)
            self._saw(watched, paths)
            if probe_exists(target)[0] != exists:
                return False
        return True


def watch_paths(target: Any, settings: Settings) -> Optional[Tuple[str, ...]]:
    """The local files whose change events cover ``target``'s content, existence and record;
    None when some change could come without an event on them."""
    hashable = as_hashable(target)
    if hashable is None:
        return None
    return hashable.watch_paths(settings)
