"""The one decision: is a task's output still what the task would produce now?

``complete()``, the run protocol and the ``verify`` command all ask a :class:`Judge`, so the
scheduler and the audit can never disagree. A judge lives for one outermost call: the first
``complete()`` opens it (:func:`judging`), every nested ``complete()`` in that call reuses it, and
it is dropped when the outer call returns. Within it each task is judged once and each target
fingerprinted once (:mod:`luigi_repro.evidence`), by the rules of :mod:`luigi_repro.rules`.

Across calls, the process's :class:`~luigi_repro.memory.VerdictMemory` lets a task's own verdict,
and even its whole status, stand without being decided again while nothing it was decided from
changed; nothing is kept on task instances, which Luigi reuses across builds.

The walk over upstream tasks uses an explicit stack, so a chain of thousands of tasks cannot
exhaust Python's recursion limit.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Tuple

import attrs
import luigi

from luigi_repro.config import Settings, load_settings
from luigi_repro.dag import requirements_of
from luigi_repro.errors import ReproError
from luigi_repro.evidence import Evidence, Outcome, Trace
from luigi_repro.fingerprint import Counters
from luigi_repro.identity import Identity, identity_of
from luigi_repro.memory import VerdictKey, VerdictMemory
from luigi_repro.plaintasks import PlainTasks, is_wrapper, wrapper_verdict
from luigi_repro.reads import unwatched
from luigi_repro.record import Key, Record
from luigi_repro.rules import OwnVerdict, Rules, is_checked_task
from luigi_repro.runtime import runtime
from luigi_repro.status import Reason, ReasonKind, TaskStatus
from luigi_repro.targets.base import HashableTarget
from luigi_repro.targets.s3listing import check_epoch

__all__ = ["Judge", "current_judge", "judging"]


_current: contextvars.ContextVar[Optional[Judge]] = contextvars.ContextVar(
    "luigi_repro_judge", default=None
)


class Judge:
    """Judges tasks and fingerprints targets, each at most once, for one outermost call."""

    def __init__(
        self,
        settings: Settings,
        *,
        exhaustive: bool = False,
        full: bool = False,
        counters: Optional[Counters] = None,
        memory: Optional[VerdictMemory] = None,
    ) -> None:
        self.settings = settings
        self.exhaustive = exhaustive
        #: Verdicts are reused across calls when their evidence still holds (not for ``full``
        #: audits, which must read everything again).
        self.memory = None if full else (memory or runtime().memory)
        #: The generation of remembered verdicts this check began in.
        self.generation = 0 if self.memory is None else self.memory.begin()
        self.evidence = Evidence(
            settings,
            None if self.memory is None or not settings.watch_changes else self.memory.watch,
            full=full,
            counters=counters,
        )
        self.rules = Rules(self.evidence, settings, exhaustive)
        #: Verdicts belong to the signing key they were decided under (a digest, not the key).
        key = self.rules.signing_key
        self._signer = b"" if key is None else hashlib.blake2b(key, digest_size=16).digest()
        self._statuses: Dict[str, TaskStatus] = {}
        self._active: Set[str] = set()
        #: Every task this judge has seen, by task_id (the CLI draws the DAG from it).
        self.tasks: Dict[str, luigi.Task] = {}
        self._plain = PlainTasks(self.evidence, settings, self.tasks)
        #: How many tasks were judged, and how many of those verdicts were reused from an
        #: earlier call (their evidence still held); tests, benchmarks and the CLI read these.
        self.tasks_judged = 0
        self.verdicts_reused = 0
        #: How many statuses stood whole, without visiting the tasks upstream.
        self.statuses_reused = 0

    def exhaustive_sibling(self) -> Judge:
        """A judge that looks for every reason, reusing what this one has read and fingerprinted
        in this call (records and fingerprints do not depend on how many reasons are wanted)."""
        sibling = Judge(self.settings, exhaustive=True, memory=self.memory)
        sibling.evidence = self.evidence
        sibling.rules = Rules(self.evidence, self.settings, True)
        sibling._plain = PlainTasks(self.evidence, self.settings, sibling.tasks)
        if self.memory is None:
            sibling.memory = None
        return sibling

    # --- what the audit and the run protocol read directly ---------------------------------------

    @property
    def context(self) -> Any:
        return self.evidence.context

    @property
    def counters(self) -> Counters:
        return self.evidence.counters

    @property
    def targets_observed(self) -> int:
        return self.evidence.targets_observed

    @property
    def statuses(self) -> Mapping[str, TaskStatus]:
        """Verdicts on the checked tasks judged so far, by task_id."""
        return self._statuses

    def record_of(self, target: HashableTarget) -> Tuple[Optional[Record], Any]:
        return self.evidence.record_of(target)

    def observe(
        self, target: HashableTarget, algorithm: Optional[str] = None, recorded: bool = True
    ) -> Outcome:
        return self.evidence.observe(target, algorithm, recorded)

    # --- a task's own verdict ---------------------------------------------------------------------

    def _key(self, task: luigi.Task) -> VerdictKey:
        return (task.task_id, type(task), self.settings, self.exhaustive, self._signer)

    def _identity(self, task: luigi.Task, requirements: List[Tuple[Key, luigi.Task]]) -> Identity:
        return identity_of(
            task, requirements, self.settings, self.rules.signing_key, self.evidence, self.memory
        )

    def own(self, task: luigi.Task) -> OwnVerdict:
        """Everything about ``task`` itself: its outputs, records, parameters, code and inputs.

        Upstream tasks are only listed here, not judged: the run protocol's early cutoff needs
        exactly this part, and :meth:`status` adds the upstream verdicts to it.
        """
        requirements = requirements_of(task)
        identity = None if self.memory is None else self._identity(task, requirements)
        return self._own(task, requirements, identity)

    def _own(
        self,
        task: luigi.Task,
        requirements: List[Tuple[Key, luigi.Task]],
        identity: Optional[Identity],
    ) -> OwnVerdict:
        self.tasks_judged += 1
        decide = self.rules.decide if is_checked_task(task) else wrapper_verdict
        memory = self.memory
        if memory is None or identity is None:
            return decide(task, requirements)
        key = self._key(task)
        entry = memory.entry(key)
        if entry is not None and entry.identity == identity:
            if entry.own_clean:
                self.verdicts_reused += 1  # watched, and no event since: nothing to read
                memory.counts.reused += 1
                return entry.verdict  # type: ignore[no-any-return]
            if self.evidence.still_holds(entry.trace):
                memory.revalidated_own(
                    entry, entry.trace.watched, entry.trace.paths, self.generation
                )
                self.verdicts_reused += 1
                memory.counts.replayed += 1
                return entry.verdict  # type: ignore[no-any-return]
        # A complete() called by user code while deciding (from an output() or exists()) opens
        # its own trace; the outer one is put back afterwards, not dropped.
        outer, trace = self.evidence.trace, Trace()
        self.evidence.trace = trace
        try:
            verdict = decide(task, requirements)
        finally:
            self.evidence.trace = outer
        memory.counts.decided += 1
        if trace.reusable:
            memory.remember_own(
                key,
                identity,
                trace,
                verdict,
                trace.watched,
                trace.paths,
                self.generation,
                wrapper=None if is_checked_task(task) else task,
            )
        return verdict

    # --- the walk over the DAG ------------------------------------------------------------------

    def _trusted(self, key: VerdictKey, identity: Identity) -> Optional[TaskStatus]:
        """The remembered status of ``key``, once every wrapper it stands on still lists the
        same tasks (listing them is all it costs: nothing upstream is judged)."""
        assert self.memory is not None
        for wrapper_key, wrapper, known in self.memory.wrappers_under(key):
            if wrapper_key == key:
                continue  # the task asked about: its requirements were just listed
            try:
                now = self._identity(wrapper, requirements_of(wrapper))
            except Exception:  # noqa: BLE001 - the walk will call requires() and say why
                now = None
            if now != known:
                self.memory.changed(wrapper_key)
        return self.memory.trusted_status(key, identity)

    def status(self, task: luigi.Task) -> TaskStatus:
        """The verdict on ``task`` and, recursively, on what it requires."""
        done = self._statuses.get(task.task_id)
        if done is not None:
            return done
        stack: List[_Frame] = [_Frame(task)]
        try:
            self._walk(stack)
        except BaseException:
            for frame in stack:  # leave no task marked as "being judged" behind
                self._active.discard(frame.task.task_id)
            raise
        return self._statuses[task.task_id]

    def _walk(self, stack: List[_Frame]) -> None:
        while stack:
            frame = stack[-1]
            if frame.pending is None and self._enter(frame):
                stack.pop()  # its remembered status stands whole
                continue
            child = self._advance(frame)
            if child is not None:
                stack.append(_Frame(child))
                continue
            self._finish(frame)
            stack.pop()

    def _enter(self, frame: _Frame) -> bool:
        """Start judging a task; True when its remembered status stands (nothing to visit)."""
        task = frame.task
        task_id = task.task_id
        self.tasks[task_id] = task
        if task_id in self._active:
            raise ReproError(f"task {task_id} depends on itself through its requirements")
        requirements = requirements_of(task)
        identity = None if self.memory is None else self._identity(task, requirements)
        if identity is not None and not self.exhaustive:
            assert self.memory is not None
            remembered = self._trusted(self._key(task), identity)
            if remembered is not None:
                self.tasks_judged += 1
                self.verdicts_reused += 1
                self.statuses_reused += 1
                self._statuses[task_id] = remembered
                return True
        self._active.add(task_id)
        verdict = self._own(task, requirements, identity)
        frame.identity = identity
        frame.reasons = list(verdict.reasons)
        frame.notes = verdict.notes
        seen: Set[str] = set()
        frame.pending = []
        if not (frame.reasons and not self.exhaustive):
            for upstream in verdict.upstream:
                if upstream.task_id not in seen:
                    seen.add(upstream.task_id)
                    frame.pending.append(upstream)
            frame.pending.reverse()
        return False

    def _advance(self, frame: _Frame) -> Optional[luigi.Task]:
        """Collect upstream verdicts; return an upstream task that must be judged first."""
        assert frame.pending is not None
        while frame.pending:
            upstream = frame.pending[-1]
            if upstream.task_id in self._active:
                # Only a recorded dynamic dependency can lead back here (Luigi itself refuses
                # cyclic requires()): the record describes a DAG the code no longer has.
                ok, described = False, "part of a cycle through a recorded dynamic dependency"
                frame.watched = False
            elif is_checked_task(upstream) or self.is_transparent(upstream):
                verdict = self._statuses.get(upstream.task_id)
                if verdict is None:
                    return upstream
                ok, described = verdict.ok, verdict.status.value
                frame.stood_on.append(self._key(upstream))
            else:
                ok, described, watched, paths = self._plain.complete(upstream)
                frame.watched = frame.watched and watched
                frame.paths.update(paths)
            frame.pending.pop()
            frame.upstream_ids.append(upstream.task_id)
            if not ok:
                frame.reasons.append(
                    Reason(
                        ReasonKind.UPSTREAM_NOT_UP_TO_DATE,
                        f"upstream task {upstream!r} is {described}",
                        {"task_id": upstream.task_id, "status": described},
                    )
                )
                if not self.exhaustive:
                    frame.pending.clear()
        return None

    def _finish(self, frame: _Frame) -> None:
        task = frame.task
        status = TaskStatus(
            task_id=task.task_id,
            family=task.get_task_family(),
            reasons=tuple(frame.reasons),
            notes=frame.notes,
            upstream=tuple(frame.upstream_ids),
            exhaustive=self.exhaustive,
        )
        self._statuses[task.task_id] = status
        self._active.discard(task.task_id)
        if self.memory is not None and frame.identity is not None and not self.exhaustive:
            self.memory.remember_status(
                self._key(task),
                status,
                frame.stood_on,
                frame.watched,
                frame.paths,
                self.generation,
            )

    # --- tasks judged by their own complete() ---------------------------------------------------

    def plain_complete(self, task: luigi.Task) -> Tuple[bool, str]:
        """``task.complete()`` for tasks judged by their own rules, once per judge."""
        ok, described, _, _ = self._plain.complete(task)
        return ok, described

    def is_complete(self, task: luigi.Task) -> bool:
        """``complete()`` of any task, judged by luigi_repro's rules where they apply."""
        if is_checked_task(task) or self.is_transparent(task):
            return self.status(task).ok
        return self.plain_complete(task)[0]

    def is_transparent(self, task: luigi.Task) -> bool:
        """Is ``task`` walked as a wrapper (:func:`~luigi_repro.plaintasks.is_wrapper`)? Not
        in an audit, which reports wrappers as Luigi answers for them."""
        return not self.exhaustive and is_wrapper(task)


@attrs.define
class _Frame:
    task: luigi.Task
    pending: Optional[List[luigi.Task]] = None
    reasons: List[Reason] = attrs.field(factory=list)
    notes: Tuple[Reason, ...] = ()
    upstream_ids: List[str] = attrs.field(factory=list)
    identity: Optional[Identity] = None
    #: The checked tasks this status stands on, and whether everything else it stands on
    #: (plain tasks' answers) is covered by a watch.
    stood_on: List[VerdictKey] = attrs.field(factory=list)
    watched: bool = True
    paths: Set[str] = attrs.field(factory=set)


def current_judge() -> Optional[Judge]:
    """The judge of the outermost call in progress on this thread, if any."""
    return _current.get()


@contextlib.contextmanager
def judging(
    *,
    exhaustive: bool = False,
    full: bool = False,
    settings: Optional[Settings] = None,
    fresh: bool = False,
    counters: Optional[Counters] = None,
) -> Iterator[Judge]:
    """Reuse the judge of the call in progress, or open one for the duration of the block.

    ``fresh`` always opens a new judge (an audit must not inherit a quick check's verdicts).
    The files read while judging (records, fingerprints) are luigi_repro's own, never counted as
    undeclared reads of a ``run()`` that asks ``complete()``.
    """
    judge = _current.get()
    if judge is not None and not fresh:
        yield judge
        return
    judge = Judge(settings or load_settings(), exhaustive=exhaustive, full=full, counters=counters)
    token = _current.set(judge)
    try:
        # One listing of an S3 prefix answers for every object under it, for this check only.
        with unwatched(), check_epoch(fresh=fresh):
            yield judge
    finally:
        _current.reset(token)
        if judge.context.cache is not None:
            judge.context.cache.flush()  # what this check learned, for other processes
