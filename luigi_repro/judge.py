"""The one decision: is a task's output still what the task would produce now?

``complete()``, the run protocol and the ``verify`` command all ask a :class:`Judge`, so the
scheduler and the audit can never disagree. A judge lives for one outermost call: the first
``complete()`` opens it (:func:`judging`), every nested ``complete()`` in that call reuses it, and
it is dropped when the outer call returns. Within it each task is judged once and each target
fingerprinted once; across calls nothing is remembered except what a stat can revalidate, so a
``False`` can never outlive the run that made it wrong. Nothing is kept on task instances, which
Luigi reuses across builds.

Across calls, a task's *own* verdict is reused when everything it was decided from is shown to
be the same again: the same parameters, code and requirements, the same records (by content),
the same fingerprints of every output and input (through the stat cache, which rehashes what a
stat cannot vouch for) and the same existence answers. That replaces parsing and comparing with
a few lookups; upstream tasks are still walked on every call.

The walk over upstream tasks uses an explicit stack, so a chain of thousands of tasks cannot
exhaust Python's recursion limit.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import attrs
import luigi
from luigi.task_register import Register

from luigi_repro.codeclosure import (
    code_closure,
    code_fingerprint,
    code_version_of,
    diff_parts,
    legacy_code_fingerprint,
)
from luigi_repro.config import Settings, load_settings
from luigi_repro.dag import flatten_with_keys, format_key, requirements_of, static_inputs
from luigi_repro.environment import env_drift
from luigi_repro.errors import RecordError, ReproError
from luigi_repro.fingerprint import Counters, diff_manifests, short, usable_algorithm
from luigi_repro.localpath import relocate
from luigi_repro.log import logger
from luigi_repro.params import canonical_params, diff_params
from luigi_repro.reads import unwatched
from luigi_repro.record import InputEntry, Key, OutputEntry, Record
from luigi_repro.statcache import open_stat_cache
from luigi_repro.status import Reason, ReasonKind, TaskStatus
from luigi_repro.targets.base import (
    FingerprintContext,
    HashableTarget,
    Observation,
    as_hashable,
    locate_target,
    probe_exists,
    target_from_uri,
)
from luigi_repro.writerrights import current_reader, reading_for, writer_refusal

__all__ = [
    "Judge",
    "Missing",
    "OwnVerdict",
    "current_judge",
    "forget_verdicts",
    "is_checked_task",
    "judging",
    "unresolved_code_note",
]


_current: contextvars.ContextVar[Optional[Judge]] = contextvars.ContextVar(
    "luigi_repro_judge", default=None
)

_warned: Set[str] = set()
_warned_lock = threading.Lock()


def warn_once(key: str, message: str, *args: object) -> None:
    """Log a warning the first time ``key`` is seen in this process."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message, *args)


def is_checked_task(task: Any) -> bool:
    """Is ``task`` judged by luigi_repro's rules (a ``TaskWithCheckingInputHash``)?"""
    return bool(getattr(type(task), "_luigi_repro_checked", False))


@attrs.frozen
class Missing:
    """An observation that found no content, or content that could not be read."""

    problem: str


Outcome = Union[Observation, Missing]


@attrs.frozen
class OwnVerdict:
    """What a task's own state says, before its upstream tasks are looked at."""

    reasons: Tuple[Reason, ...]
    notes: Tuple[Reason, ...]
    record: Optional[Record]
    upstream: Tuple[luigi.Task, ...]


@attrs.define
class _Trace:
    """Everything one own-verdict was decided from, in the order it was looked at."""

    records: List[Tuple[HashableTarget, Record]] = attrs.field(factory=list)
    #: (target, algorithm, recorded, fingerprint or None, settled token or None)
    observations: List[Tuple[HashableTarget, str, bool, Optional[str], Any]] = attrs.field(
        factory=list
    )
    existence: List[Tuple[Any, bool]] = attrs.field(factory=list)
    #: False when something was seen that cannot be compared later (an unusable record).
    reusable: bool = True


@attrs.frozen
class _Decided:
    """An own-verdict with what it was decided from."""

    params: Mapping[str, Any]
    code: str
    requirement_ids: Tuple[str, ...]
    shape: Tuple[Any, ...]
    trace: _Trace
    verdict: OwnVerdict


_VerdictKey = Tuple[str, type, Settings, bool]
_decided: Dict[_VerdictKey, _Decided] = {}
_decided_lock = threading.Lock()
_DECIDED_CAPACITY = 65536


def _remember(key: _VerdictKey, decided: _Decided) -> None:
    with _decided_lock:
        if len(_decided) >= _DECIDED_CAPACITY:
            _decided.clear()
        _decided[key] = decided


def forget_verdicts() -> None:
    """Drop every remembered own-verdict (they would be revalidated anyway; tests use this)."""
    with _decided_lock:
        _decided.clear()


def _evidence_key(key: Key) -> List[Union[str, int]]:
    return list(key)


@attrs.define
class _Findings:
    """Reasons and notes gathered about one task; ``done`` once a quick check has its answer."""

    exhaustive: bool
    reasons: List[Reason] = attrs.field(factory=list)
    notes: List[Reason] = attrs.field(factory=list)

    def add(self, reason: Reason) -> None:
        self.reasons.append(reason)

    def note(self, reason: Reason) -> None:
        self.notes.append(reason)

    @property
    def done(self) -> bool:
        """True when ``complete()`` already knows its answer (False) and may stop looking."""
        return bool(self.reasons) and not self.exhaustive


class Judge:
    """Judges tasks and fingerprints targets, each at most once, for one outermost call."""

    def __init__(
        self,
        settings: Settings,
        *,
        exhaustive: bool = False,
        full: bool = False,
        counters: Optional[Counters] = None,
    ) -> None:
        self.settings = settings
        #: Read from the environment once per call (it keys the digests of secret parameters).
        self.signing_key = settings.signing_key
        self.exhaustive = exhaustive
        self.context = FingerprintContext(
            algorithm=settings.hash_algorithm,
            racy_window_ns=settings.racy_window_ns,
            record_suffix=settings.record_suffix,
            cache=None if full else open_stat_cache(settings.stat_cache_path),
            counters=counters if counters is not None else Counters(),
            full=full,
        )
        self._contexts: Dict[str, FingerprintContext] = {settings.hash_algorithm: self.context}
        self._statuses: Dict[str, TaskStatus] = {}
        self._active: Set[str] = set()
        self._records: Dict[str, Tuple[Optional[Record], Optional[RecordError]]] = {}
        self._observations: Dict[Tuple[str, str, str, Any], Outcome] = {}
        self._plain: Dict[str, Tuple[bool, str]] = {}
        #: Own-verdicts are reused across calls when their evidence still holds (not for
        #: ``full`` audits, which must read everything again).
        self.reuse_verdicts = not full
        self._trace: Optional[_Trace] = None
        self._settled: Dict[Any, bool] = {}
        self._outputs: Dict[str, Tuple[Tuple[Key, str, Any], ...]] = {}
        #: Every task this judge has seen, by task_id (the CLI draws the DAG from it).
        self.tasks: Dict[str, luigi.Task] = {}
        #: How many tasks were judged and targets fingerprinted (tests and the CLI read these).
        self.tasks_judged = 0
        self.targets_observed = 0
        #: How many own-verdicts were reused from an earlier call (their evidence still held).
        self.verdicts_reused = 0

    def exhaustive_sibling(self) -> Judge:
        """A judge that looks for every reason, reusing what this one has read and fingerprinted
        in this call (records and fingerprints do not depend on how many reasons are wanted)."""
        sibling = Judge(self.settings, exhaustive=True, counters=self.counters)
        sibling.context = self.context
        sibling._contexts = self._contexts
        sibling._records = self._records
        sibling._observations = self._observations
        sibling._settled = self._settled
        sibling._outputs = self._outputs
        return sibling

    @property
    def counters(self) -> Counters:
        return self.context.counters

    @property
    def statuses(self) -> Mapping[str, TaskStatus]:
        """Verdicts on the checked tasks judged so far, by task_id."""
        return self._statuses

    # --- records and observations, memoized -----------------------------------------------------

    def record_of(self, target: HashableTarget) -> Tuple[Optional[Record], Optional[RecordError]]:
        """The target's record (or None), and the error that made it unusable (or None)."""
        uri = target.uri
        if uri not in self._records:
            try:
                try:
                    stored = target.read_record(self.settings)
                except RecordError:
                    raise
                except Exception as error:  # noqa: BLE001 - a backend failure (S3 403, HDFS…)
                    location = target.record_location(self.settings)
                    raise RecordError(location, f"it cannot be read ({error})") from None
                result: Tuple[Optional[Record], Optional[RecordError]] = (stored, None)
            except RecordError as exc:
                warn_once(
                    f"bad-record:{uri}:{exc.problem}",
                    "luigi_repro: %s The task will run again.",
                    exc,
                )
                result = (None, exc)
            self._records[uri] = result
        return self._records[uri]

    def _context_for(self, algorithm: str) -> FingerprintContext:
        context = self._contexts.get(algorithm)
        if context is None:
            context = self._contexts[algorithm] = attrs.evolve(self.context, algorithm=algorithm)
        return context

    def observe(
        self, target: HashableTarget, algorithm: Optional[str] = None, recorded: bool = True
    ) -> Outcome:
        """The current fingerprint of ``target`` (with ``algorithm``), computed once per judge.

        The target's own record, when it has one, offers the previous observation, whose state
        (stat, ETag…) lets the target skip reading unchanged content. ``recorded=False`` says
        the target was made by a task that keeps no records (a raw input), so none is looked for.
        """
        algorithm = algorithm or self.settings.hash_algorithm
        outcome = self._observe(target, algorithm, recorded)
        if self._trace is not None:
            if isinstance(outcome, Missing):
                fingerprint, token = None, None
            else:
                fingerprint = outcome.fingerprint
                token = target.settled_token(outcome, self.settings.racy_window_ns)
            self._trace.observations.append((target, algorithm, recorded, fingerprint, token))
        return outcome

    def _observe(self, target: HashableTarget, algorithm: str, recorded: bool) -> Outcome:
        # What was read within another user's rights is remembered apart: a file refused to a
        # record's writer must not be answered from a fingerprint taken for someone else.
        memo_key = (target.uri, algorithm, target.fingerprint_kind, current_reader())
        outcome = self._observations.get(memo_key)
        if outcome is not None:
            return outcome
        previous = None
        record, _ = self.record_of(target) if recorded else (None, None)
        if record is not None:
            for entry in record.outputs:
                if entry.uri == memo_key[0]:
                    previous = Observation(
                        entry.fingerprint, entry.size, entry.state, entry.manifest
                    )
                    break
        try:
            outcome = target.observe(self._context_for(algorithm), previous)
        except FileNotFoundError:
            outcome = Missing("does not exist")
        except Exception as exc:  # noqa: BLE001 - a check answers "not complete", never raises
            outcome = Missing(f"cannot be read ({exc})")
        self.targets_observed += 1
        self._observations[memo_key] = outcome
        return outcome

    # --- the decision ---------------------------------------------------------------------------

    def own(self, task: luigi.Task) -> OwnVerdict:
        """Everything about ``task`` itself: its outputs, records, parameters, code and inputs.

        Upstream tasks are only listed here, not judged: the run protocol's early cutoff needs
        exactly this part, and :meth:`status` adds the upstream verdicts to it.
        """
        self.tasks_judged += 1
        requirements = requirements_of(task)
        if not self.reuse_verdicts:
            return self._decide(task, requirements)
        key: _VerdictKey = (task.task_id, type(task), self.settings, self.exhaustive)
        params = canonical_params(task, self.signing_key)
        code = code_fingerprint(type(task), self.settings.hash_algorithm)
        requirement_ids = tuple(upstream.task_id for _, upstream in requirements)
        shape = self._shape_of(task, requirements)
        decided = _decided.get(key)
        if (
            decided is not None
            and decided.params == params
            and decided.code == code
            and decided.requirement_ids == requirement_ids
            and decided.shape == shape
            and self._still_holds(decided.trace)
        ):
            self.verdicts_reused += 1
            return decided.verdict
        # A complete() called by user code while deciding (from an output() or exists()) opens
        # its own trace; the outer one is put back afterwards, not dropped.
        outer, trace = self._trace, _Trace()
        self._trace = trace
        try:
            verdict = self._decide(task, requirements)
        finally:
            self._trace = outer
        if trace.reusable:
            _remember(key, _Decided(params, code, requirement_ids, shape, trace, verdict))
        return verdict

    def _places(self, task: luigi.Task) -> Tuple[Tuple[Key, str, Any], ...]:
        """Each output of ``task``: its key, its URI and how it can be fingerprinted.

        Asked once per call: a task's outputs are also the inputs of every task downstream.
        """
        places = self._outputs.get(task.task_id)
        if places is None:
            found: List[Tuple[Key, str, Any]] = []
            for key, target in flatten_with_keys(task.output()):
                hashable = as_hashable(target)
                if hashable is None:
                    found.append((key, _uri_of(target), None))
                else:
                    found.append((key, hashable.uri, (type(hashable), hashable.fingerprint_kind)))
            places = self._outputs[task.task_id] = tuple(found)
        return places

    def _shape_of(
        self, task: luigi.Task, requirements: List[Tuple[Key, luigi.Task]]
    ) -> Tuple[Any, ...]:
        """Where the task's outputs and inputs are now, and how each input can be fingerprinted.

        The same requirements can point elsewhere over time (an ``output()`` that lists a folder
        or reads configuration, a relative path under another working folder, an adapter
        registered later): a remembered verdict only stands for the same places, seen the same
        way.
        """
        outputs = tuple((key, uri) for key, uri, _ in self._places(task))
        inputs = tuple(
            (key, output_key, uri, view)
            for key, upstream in requirements
            for output_key, uri, view in self._places(upstream)
        )
        return outputs, inputs

    def _still_holds(self, trace: _Trace) -> bool:
        """Does everything a remembered verdict was decided from look the same now?"""
        for target, record in trace.records:
            now, error = self.record_of(target)
            if error is not None or (now is not record and now != record):
                return False
        window = self.settings.racy_window_ns
        for index, (target, algorithm, recorded, fingerprint, token) in enumerate(
            trace.observations
        ):
            if token is not None and self._still_settled(target, token):
                continue  # one stat: the same file, not written since it was fingerprinted
            outcome = self._observe(target, algorithm, recorded)
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
        return all(probe_exists(target)[0] == exists for target, exists in trace.existence)

    def _still_settled(self, target: HashableTarget, token: Any) -> bool:
        """``target.still_settled(token)``, asked once per call (an output is also an input)."""
        answer = self._settled.get(token)
        if answer is None:
            answer = self._settled[token] = target.still_settled(token)
            self.counters.files_statted += 1
        return answer

    def _exists(self, target: Any) -> Tuple[bool, Optional[str]]:
        exists, problem = probe_exists(target)
        if self._trace is not None:
            self._trace.existence.append((target, exists))
            if problem is not None:
                self._trace.reusable = False  # a backend error may be gone next time
        return exists, problem

    def _decide(self, task: luigi.Task, requirements: List[Tuple[Key, luigi.Task]]) -> OwnVerdict:
        found = _Findings(self.exhaustive)
        add = found.add
        family = task.get_task_family()
        upstream = tuple(t for _, t in requirements)

        outputs: List[Tuple[Key, HashableTarget]] = []
        declared = flatten_with_keys(task.output())
        if not declared:
            add(Reason(ReasonKind.MISSING_OUTPUT, f"{family} declares no outputs to vouch for"))
        for key, target in declared:
            hashable = as_hashable(target)
            if hashable is None or not hashable.supports_records:
                add(
                    Reason(
                        ReasonKind.NO_RECORD,
                        f"output(){format_key(key)} is a {type(target).__name__}, "
                        "which cannot carry a record",
                        {"output_key": _evidence_key(key), "type": type(target).__name__},
                    )
                )
            else:
                exists, problem = self._exists(hashable)
                if exists:
                    outputs.append((key, hashable))
                    continue
                add(
                    Reason(
                        ReasonKind.MISSING_OUTPUT,
                        f"output {hashable.uri} {problem or 'does not exist'}",
                        {"output_key": _evidence_key(key), "uri": hashable.uri},
                    )
                )
        record: Optional[Record] = None
        dynamic: Tuple[luigi.Task, ...] = ()
        if not found.done:
            record, entries = self._records_of(family, outputs, found)
            for _key, target, entry in entries:
                if not found.done:
                    self._check_output(target, entry, found)
        if record is not None and not found.done:
            self._check_identity(task, record, found)
        if record is not None and not found.done:
            self._check_environment(record, found)
        if record is not None and not found.done:
            # Where the record's output was written, and where it is read now.
            place = (entries[0][2].uri, entries[0][1].uri) if entries else None
            dynamic = self._check_inputs(requirements, record, found, place)
        return OwnVerdict(tuple(found.reasons), tuple(found.notes), record, upstream + dynamic)

    def _records_of(
        self,
        family: str,
        outputs: List[Tuple[Key, HashableTarget]],
        found: _Findings,
    ) -> Tuple[Optional[Record], List[Tuple[Key, HashableTarget, OutputEntry]]]:
        add = found.add
        record: Optional[Record] = None
        run_ids: Set[str] = set()
        recorded_by: List[Tuple[str, Record]] = []
        entries: List[Tuple[Key, HashableTarget, OutputEntry]] = []
        for key, target in outputs:
            stored, error = self.record_of(target)
            if self._trace is not None:
                if stored is None:
                    self._trace.reusable = False  # only verdicts backed by records are kept
                else:
                    self._trace.records.append((target, stored))
            location = target.record_location(self.settings)
            if error is not None:
                add(
                    Reason(
                        ReasonKind.BAD_RECORD,
                        str(error),
                        {"record": location, "problem": error.problem},
                    )
                )
            elif stored is None:
                add(
                    Reason(
                        ReasonKind.NO_RECORD,
                        f"output {target.uri} has no record ({location} does not exist)",
                        {"uri": target.uri, "record": location},
                    )
                )
            else:
                entry = stored.output(key)
                if entry is None:
                    add(
                        Reason(
                            ReasonKind.BAD_RECORD,
                            f"record {location} does not describe output(){format_key(key)} "
                            f"(recorded by {stored.task.label})",
                            {
                                "record": location,
                                "problem": "output not described",
                                "recorded_by": stored.task.task_id,
                            },
                        )
                    )
                    continue
                run_ids.add(stored.run.run_id)
                recorded_by.append((target.uri, stored))
                record = record or stored
                entries.append((key, target, entry))
        if len(run_ids) > 1:
            # Two tasks writing one path, or a run that died between writing its records.
            described = ", ".join(
                f"{uri} recorded by {stored.task.label} (run of {stored.run.started})"
                for uri, stored in recorded_by
            )
            add(
                Reason(
                    ReasonKind.BAD_RECORD,
                    f"the records of the outputs of {family} come from different runs: "
                    + described,
                    {
                        "problem": "runs differ",
                        "run_ids": sorted(run_ids),
                        "recorded_by": {uri: stored.task.task_id for uri, stored in recorded_by},
                    },
                )
            )
        return record, entries

    def _check_output(self, target: HashableTarget, entry: OutputEntry, found: _Findings) -> None:
        add = found.add
        algorithm = usable_algorithm(entry.fingerprint)
        if algorithm is None:
            add(_unusable_algorithm(target.uri, entry.fingerprint))
            return
        outcome = self.observe(target, algorithm)
        if isinstance(outcome, Missing):
            add(
                Reason(
                    ReasonKind.MISSING_OUTPUT,
                    f"output {target.uri} {outcome.problem}",
                    {"uri": target.uri, "problem": outcome.problem},
                )
            )
        elif outcome.fingerprint != entry.fingerprint:
            evidence: Dict[str, Any] = {
                "uri": target.uri,
                "old": entry.fingerprint,
                "new": outcome.fingerprint,
            }
            evidence.update(_manifest_evidence(entry.manifest, outcome.manifest))
            add(
                Reason(
                    ReasonKind.OUTPUT_MODIFIED,
                    f"output {target.uri} was modified after it was written "
                    f"({short(entry.fingerprint)} -> {short(outcome.fingerprint)})",
                    evidence,
                )
            )

    def _check_identity(
        self,
        task: luigi.Task,
        record: Record,
        found: _Findings,
    ) -> None:
        add = found.add
        changed = diff_params(record.task.params, canonical_params(task, self.signing_key))
        # Another task id made the output: parameters changed, or two tasks write one path.
        by = "" if record.task.task_id == task.task_id else f"; recorded by {record.task.label}"
        if changed:
            described = ", ".join(
                f"{name}: {old!r} -> {new!r}" for name, (old, new) in changed.items()
            )
            add(
                Reason(
                    ReasonKind.PARAMS_CHANGED,
                    f"parameters changed ({described}){by}",
                    {
                        "params": {n: {"old": o, "new": v} for n, (o, v) in changed.items()},
                        "recorded_by": record.task.task_id,
                    },
                )
            )
        family = task.get_task_family()
        if record.task.family != family:
            # Another task (or a renamed class) made this output: never the same result.
            add(
                Reason(
                    ReasonKind.CODE_CHANGED,
                    f"the output was recorded by {record.task.label}, not by {task!r}",
                    {
                        "task": {"old": record.task.family, "new": family},
                        "recorded_by": record.task.task_id,
                    },
                )
            )
            return
        policy = self.settings.on_code_change
        if policy == "ignore":
            return
        cls = type(task)
        algorithm = usable_algorithm(record.task.code_fingerprint)
        if algorithm is None:
            add(_unusable_algorithm(task.task_id, record.task.code_fingerprint))
            return
        current = code_closure(cls, algorithm)
        if self.exhaustive and current.unresolved:
            found.note(unresolved_code_note(current.unresolved))
        if current.error is not None:  # no record can vouch for code that was not seen
            reason = Reason(
                ReasonKind.CODE_CHANGED,
                f"the code of {family} cannot be fingerprinted ({current.error})",
                {"old": record.task.code_fingerprint, "new": None, "error": current.error},
            )
        elif record.task.code_fingerprint == current.fingerprint:
            return
        else:
            reason = _code_changed(
                family, cls, record, current.fingerprint, current.parts, algorithm
            )
        message = reason.message
        if policy == "rerun":
            add(reason)
        else:
            found.note(reason)
            warn_once(
                f"code:{task.task_id}",
                "luigi_repro: %s; kept because [luigi_repro] on_code_change = warn.",
                message,
            )

    def _check_environment(self, record: Record, found: _Findings) -> None:
        policy = self.settings.on_env_change
        if policy == "ignore" or (policy == "warn" and not self.exhaustive):
            return  # under "warn" only an audit needs the (slower) comparison
        drift = env_drift(record.run.versions, record.run.packages)
        if not drift:
            return
        described = ", ".join(f"{name} {old} -> {new}" for name, (old, new) in drift.items())
        reason = Reason(
            ReasonKind.ENV_CHANGED,
            f"software changed since the run ({described})",
            {"packages": {n: {"old": o, "new": v} for n, (o, v) in drift.items()}},
        )
        (found.add if policy == "rerun" else found.note)(reason)

    def _check_inputs(
        self,
        requirements: List[Tuple[Key, luigi.Task]],
        record: Record,
        found: _Findings,
        place: Optional[Tuple[str, str]],
    ) -> Tuple[luigi.Task, ...]:
        add = found.add
        current = {(ref.key, ref.output_key): ref for ref in static_inputs(requirements)}
        recorded = {
            (e.key, e.output_key): e for e in record.inputs if not (e.dynamic or e.undeclared)
        }
        added = [current[k] for k in current if k not in recorded]
        removed = [recorded[k] for k in recorded if k not in current]
        if added:
            add(
                Reason(
                    ReasonKind.INPUTS_ADDED,
                    "new inputs: " + ", ".join(f"{r.label} ({_uri_of(r.target)})" for r in added),
                    {"inputs": [{"input": r.label, "uri": _uri_of(r.target)} for r in added]},
                )
            )
        if removed:
            add(
                Reason(
                    ReasonKind.INPUTS_REMOVED,
                    "inputs no longer required: " + ", ".join(e.uri for e in removed),
                    {
                        "inputs": [
                            {"key": list(e.key), "output_key": list(e.output_key), "uri": e.uri}
                            for e in removed
                        ]
                    },
                )
            )
        for key, entry in recorded.items():
            ref = current.get(key)
            if ref is not None:
                self._check_input(ref.label, ref.target, entry, found, ref.task)
                if found.done:
                    return ()
        if self._check_undeclared(record, found, place):
            return ()
        rebuilt: List[luigi.Task] = []
        for entry in record.inputs:
            if not entry.dynamic:
                continue
            upstream, target, why = self._rebuild_dynamic(entry)
            label = f"yield{format_key(entry.key)}"
            refused = None if upstream is not None else writer_refusal(entry.uri, record.writer)
            if refused is not None:
                target = None  # only its location is known, and its writer could not read it
            if upstream is not None:
                rebuilt.append(upstream)
            elif entry.task_family is not None:
                # Its content may still match, but its own inputs and code cannot be checked:
                # a changed upstream would hide behind an unchanged file.
                add(_unresolved_dynamic(label, entry, why))
                if found.done:
                    break
            if target is None:
                unlocated = (
                    refused
                    or locate_target(entry.uri, entry.target)[1]
                    or "can no longer be located"
                )
                add(
                    Reason(
                        ReasonKind.INPUT_CHANGED,
                        f"dynamic input {label} ({entry.uri}) {unlocated}",
                        {"input": label, "uri": entry.uri, "old": entry.fingerprint, "new": None},
                    )
                )
            else:
                # Where it is comes from the record (its location, or parameters to rebuild the
                # task that made it): read it only as far as the record's writer could.
                with reading_for(record.writer):
                    self._check_input(label, target, entry, found, upstream)
            if found.done:
                break
        return tuple(rebuilt)

    def _check_undeclared(
        self, record: Record, found: _Findings, place: Optional[Tuple[str, str]]
    ) -> bool:
        """Files ``run()`` read without declaring them: checked by their location, like raw files.

        ``place`` is (where an output was when the record was written, where it is now).

        Under ``undeclared_reads = track`` a record that only *lists* such files (written under
        ``warn``) cannot vouch for their content. True when the check already has its answer.
        """
        listed = record.undeclared_reads
        if listed and self.settings.undeclared_reads == "track":
            found.add(listed_reads_reason(listed))
            if found.done:
                return True
        for entry in record.inputs:
            if not entry.undeclared:
                continue
            # Recorded where the run read it; if the record moved with its folder (a copied
            # project), the file is the copy's, as for every other location a record names.
            uri = entry.uri if place is None else relocate(entry.uri, *place)
            why = writer_refusal(uri, record.writer)
            target, why = (None, why) if why is not None else locate_target(uri, entry.target)
            if target is None:
                found.add(
                    Reason(
                        ReasonKind.INPUT_CHANGED,
                        f"undeclared input {uri} {why or 'can no longer be located'}",
                        {"input": "undeclared", "uri": uri, "old": entry.fingerprint},
                    )
                )
            else:
                with reading_for(record.writer):
                    self._check_input("undeclared", target, entry, found, None)
            if found.done:
                return True
        return False

    def _check_input(
        self,
        label: str,
        target: Any,
        entry: InputEntry,
        found: _Findings,
        producer: Optional[luigi.Task],
    ) -> None:
        add = found.add
        hashable = as_hashable(target)
        uri = _uri_of(target)
        base = {"input": label, "uri": uri, "old": entry.fingerprint}
        named = f"undeclared input {uri}" if entry.undeclared else f"input {label} ({uri})"
        if entry.fingerprint is None or hashable is None:
            exists, failure = self._exists(target)
            if entry.fingerprint is None and hashable is None and exists:
                found.note(
                    Reason(
                        ReasonKind.INPUT_UNVERIFIABLE,
                        f"{named} can only be checked for existence",
                        {**base, "new": None},
                    )
                )
                return
            if not exists:
                problem = failure or "is missing"
            elif hashable is None:
                problem = "can no longer be fingerprinted"
            else:
                problem = "can now be fingerprinted, but the record could not vouch for its content"
            add(
                Reason(
                    ReasonKind.INPUT_CHANGED,
                    f"{named} {problem}",
                    {**base, "new": None},
                )
            )
            return
        algorithm = usable_algorithm(entry.fingerprint)
        if algorithm is None:
            add(_unusable_algorithm(uri, entry.fingerprint))
            return
        # A file read without being declared is raw data: no record beside it is looked for.
        recorded = not entry.undeclared and (producer is None or is_checked_task(producer))
        outcome = self.observe(hashable, algorithm, recorded)
        if isinstance(outcome, Missing):
            add(
                Reason(
                    ReasonKind.INPUT_CHANGED,
                    f"{named} {outcome.problem}",
                    {**base, "new": None},
                )
            )
        elif outcome.fingerprint != entry.fingerprint:
            evidence: Dict[str, Any] = {**base, "new": outcome.fingerprint}
            evidence.update(_manifest_evidence(entry.manifest, outcome.manifest))
            add(
                Reason(
                    ReasonKind.INPUT_CHANGED,
                    f"{named} changed ({short(entry.fingerprint)} -> {short(outcome.fingerprint)})",
                    evidence,
                )
            )

    def _rebuild_dynamic(self, entry: InputEntry) -> Tuple[Optional[luigi.Task], Any, str]:
        """The task and target behind a recorded dynamic input, from already-imported classes,
        or why the task cannot be rebuilt.

        Modules named in a record are never imported: a record is data, and importing would let
        whoever wrote it run code. Without the task, the content is still compared by URI, but
        the caller reports the dependency unresolved.
        """
        why = ""
        if entry.task_family is not None and entry.task_params is not None:
            try:
                cls = Register.get_task_cls(entry.task_family)
            except Exception:  # noqa: BLE001 - not registered (or ambiguous)
                cls = None
                why = (
                    f"its class is not imported here: import module {entry.task_module} where "
                    "the pipeline is defined, so that the class is known before run() yields it"
                )
            if cls is not None:
                try:
                    upstream = cls.from_str_params(dict(entry.task_params))
                except Exception as exc:  # noqa: BLE001 - any failure means "cannot rebuild"
                    upstream, why = None, f"its recorded parameters no longer fit it ({exc})"
                if upstream is not None and upstream.task_id != entry.task_id:
                    why = f"its parameters now make another task ({upstream.task_id})"
                elif upstream is not None:
                    for key, target in flatten_with_keys(upstream.output()):
                        if key == entry.output_key:
                            return upstream, target, ""
                    why = f"it no longer has the output(){format_key(entry.output_key)} it had"
            if self._trace is not None:
                # Its class may be imported later in this process, and then it can be judged.
                self._trace.reusable = False
        return None, target_from_uri(entry.uri, entry.target), why

    # --- the walk over the DAG ------------------------------------------------------------------

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
            if frame.pending is None:
                self._enter(frame)
            child = self._advance(frame)
            if child is not None:
                stack.append(_Frame(child))
                continue
            self._statuses[frame.task.task_id] = TaskStatus(
                task_id=frame.task.task_id,
                family=frame.task.get_task_family(),
                reasons=tuple(frame.reasons),
                notes=frame.notes,
                upstream=tuple(frame.upstream_ids),
                exhaustive=self.exhaustive,
            )
            self._active.discard(frame.task.task_id)
            stack.pop()

    def _enter(self, frame: _Frame) -> None:
        task_id = frame.task.task_id
        self.tasks[task_id] = frame.task
        if task_id in self._active:
            raise ReproError(f"task {task_id} depends on itself through its requirements")
        self._active.add(task_id)
        verdict = self.own(frame.task)
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

    def _advance(self, frame: _Frame) -> Optional[luigi.Task]:
        """Collect upstream verdicts; return an upstream task that must be judged first."""
        assert frame.pending is not None
        while frame.pending:
            upstream = frame.pending[-1]
            if upstream.task_id in self._active:
                # Only a recorded dynamic dependency can lead back here (Luigi itself refuses
                # cyclic requires()): the record describes a DAG the code no longer has.
                ok, described = False, "part of a cycle through a recorded dynamic dependency"
            elif is_checked_task(upstream):
                verdict = self._statuses.get(upstream.task_id)
                if verdict is None:
                    return upstream
                ok, described = verdict.ok, verdict.status.value
            else:
                ok, described = self.plain_complete(upstream)
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

    def plain_complete(self, task: luigi.Task) -> Tuple[bool, str]:
        """``task.complete()`` for tasks judged by their own rules, once per judge."""
        verdict = self._plain.get(task.task_id)
        if verdict is None:
            self.tasks[task.task_id] = task
            try:
                ok = bool(task.complete())
                verdict = (ok, "complete" if ok else "not complete")
            except Exception as exc:  # noqa: BLE001 - a failing complete() means "not complete"
                verdict = (False, f"not checkable (complete() raised {exc!r})")
            self._plain[task.task_id] = verdict
        return verdict

    def is_complete(self, task: luigi.Task) -> bool:
        """``complete()`` of any task, judged by luigi_repro's rules where they apply."""
        if is_checked_task(task):
            return self.status(task).ok
        return self.plain_complete(task)[0]


@attrs.define
class _Frame:
    task: luigi.Task
    pending: Optional[List[luigi.Task]] = None
    reasons: List[Reason] = attrs.field(factory=list)
    notes: Tuple[Reason, ...] = ()
    upstream_ids: List[str] = attrs.field(factory=list)


def _code_changed(
    family: str,
    cls: type,
    record: Record,
    fingerprint: str,
    parts: Mapping[str, str],
    algorithm: str,
) -> Reason:
    """CODE_CHANGED, naming what changed: the code_version, or each function, class, constant."""
    old_version, new_version = record.task.code_version, code_version_of(cls)
    evidence: Dict[str, Any] = {
        "old": record.task.code_fingerprint,
        "new": fingerprint,
        "old_version": old_version,
        "new_version": new_version,
    }
    message = f"the code of {family} changed since its outputs were made"
    if record.task.code_parts is None:
        # Written before the fingerprint covered helper code: it can only vouch for the classes.
        same = record.task.code_fingerprint == legacy_code_fingerprint(cls, algorithm)
        evidence.update({"record_covers_helpers": False, "classes_unchanged": same})
        if same and old_version == new_version:
            message = (
                f"the record of {family} predates code fingerprints that cover helper code "
                "(the functions, classes and constants the task uses); run `luigi-repro adopt` "
                "to accept the existing outputs, or let the task run again"
            )
    else:
        diff = diff_parts(record.task.code_parts, parts, record.task.module, cls.__module__)
        evidence.update(diff)
        items = [f"{key} {what}" for what in ("changed", "added", "removed") for key in diff[what]]
        if items:
            shown = ", ".join(items[:_CODE_ITEMS_SHOWN])
            more = len(items) - _CODE_ITEMS_SHOWN
            message = f"the code of {family} changed: {shown}" + (
                f" and {more} more" if more > 0 else ""
            )
    if old_version != new_version:
        message = f"code_version changed ({old_version!r} -> {new_version!r})"
    return Reason(ReasonKind.CODE_CHANGED, message, evidence)


#: How many changed functions, classes and constants a CODE_CHANGED message names.
_CODE_ITEMS_SHOWN = 4


def unresolved_code_note(unresolved: Tuple[str, ...]) -> Reason:
    """A note for audits: references the code fingerprint cannot follow, so cannot vouch for."""
    shown = "; ".join(unresolved[:_CODE_ITEMS_SHOWN])
    more = len(unresolved) - _CODE_ITEMS_SHOWN
    return Reason(
        ReasonKind.CODE_UNRESOLVED,
        "the code fingerprint cannot follow "
        + shown
        + (f" and {more} more" if more > 0 else "")
        + " (code reached only through them is not checked)",
        {"unresolved": list(unresolved)},
    )


def _unusable_algorithm(where: str, fingerprint: str) -> Reason:
    algorithm = fingerprint.partition(":")[0]
    return Reason(
        ReasonKind.BAD_RECORD,
        f"the record of {where} uses the hash algorithm {algorithm!r}, "
        "which is unknown or not installed here",
        {"uri": where, "problem": "unusable algorithm", "algorithm": algorithm},
    )


def listed_reads_reason(listed: Sequence[str]) -> Reason:
    """Under ``undeclared_reads = track``: a record that only lists the files ``run()`` read
    without declaring them (written under ``warn``) cannot vouch for their content."""
    return Reason(
        ReasonKind.INPUTS_ADDED,
        "files read without being declared are tracked now, but the record did not "
        "fingerprint them: " + ", ".join(listed),
        {"inputs": [{"input": "undeclared", "uri": uri} for uri in listed]},
    )


def _unresolved_dynamic(label: str, entry: InputEntry, why: str) -> Reason:
    params = ", ".join(f"{k}={v}" for k, v in sorted((entry.task_params or {}).items()))
    described = f"{entry.task_family}({params})"
    return Reason(
        ReasonKind.DYNAMIC_DEPENDENCY_UNRESOLVED,
        f"dynamic dependency {label} {described} cannot be rebuilt here, so its own inputs and "
        f"code cannot be checked: {why}",
        {
            "input": label,
            "task_id": entry.task_id,
            "family": entry.task_family,
            "module": entry.task_module,
            "uri": entry.uri,
            "why": why,
        },
    )


def _uri_of(target: Any) -> str:
    hashable = as_hashable(target)
    if hashable is not None:
        return hashable.uri
    return str(getattr(target, "path", target))


def _manifest_evidence(old: Optional[Any], new: Optional[Any]) -> Dict[str, List[str]]:
    if old is None or new is None:
        return {}
    diff = diff_manifests(old, new)
    return {"added": list(diff.added), "removed": list(diff.removed), "changed": list(diff.changed)}


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
        with unwatched():
            yield judge
    finally:
        _current.reset(token)
        if judge.context.cache is not None:
            judge.context.cache.flush()  # what this check learned, for other processes
