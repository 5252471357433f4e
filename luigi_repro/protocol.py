"""The run protocol: what happens around a task's ``run()``.

1. Take the run lock of every output (sorted order; a timeout is a clear error).
2. Fingerprint the inputs.
3. Early cutoff: if the records already match parameters, code and these inputs, the outputs
   are unmodified and every upstream task (dynamic ones included) is complete, skip ``run()``.
4. Remove the task's records: a record may only ever describe a finished, verified output.
5. Run (the caller does this, between :meth:`RunProtocol.begin` and :meth:`RunProtocol.finish`).
   With a run cache (:mod:`luigi_repro.runcache`), an entry for the task's action key restores
   the outputs instead, verified, and records them: ``run()`` is skipped.
6. Fingerprint the inputs again; if any changed during the run, fail naming it, with no record.
   Files ``run()`` opened without declaring them (:mod:`luigi_repro.reads`) are warned about,
   tracked as implicit inputs or refused, as ``[luigi_repro] undeclared_reads`` says.
7. Fingerprint the outputs, write the records, keep the outputs in the run cache (if any),
   release the locks.

A crash at any point leaves either the old records (before step 4), no record (steps 4-7, so the
task is not complete), or records written after the outputs they describe were fingerprinted.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Dict, List, Optional, Tuple

import attrs
import luigi

from luigi_repro.config import Settings, load_settings
from luigi_repro.dag import (
    InputRef,
    dynamic_inputs,
    flatten_with_keys,
    format_key,
    requirements_of,
    static_inputs,
)
from luigi_repro.errors import (
    InputChangedDuringRun,
    OutputNotWritten,
    RunProtocolError,
    UnsupportedTarget,
)
from luigi_repro.evidence import Missing, warn_once
from luigi_repro.gokartruns import rerun_done, rerun_requested, scratch_of
from luigi_repro.judge import Judge
from luigi_repro.locking import HeldLocks, LockRequest, folder_syncs_deferred, lock_backend
from luigi_repro.log import logger
from luigi_repro.reads import ReadWatch, unwatched_call
from luigi_repro.record import (
    Key,
    Record,
    dump_record,
)
from luigi_repro.rules import is_checked_task
from luigi_repro.runcachestep import CacheStep, find_in_cache, restored_record, unshare_outputs
from luigi_repro.runrecord import RunTimes, build_record, now_iso, observe_output, refuse_unreadable
from luigi_repro.runtime import runtime
from luigi_repro.statcache import flush_stat_caches
from luigi_repro.status import TaskStatus
from luigi_repro.statusmessage import (
    EARLY_CUTOFF_MESSAGE,
    RESTORED_MESSAGE,
    scheduler_listens,
    tell_scheduler,
    why_message,
)
from luigi_repro.targets.base import HashableTarget, Observation, as_hashable
from luigi_repro.undeclared import undeclared_inputs

__all__ = ["RunProtocol"]


class RunProtocol:
    """One run of one task. Use :meth:`begin`, then ``run()``, :meth:`finish`, :meth:`close`.

    Its own reads (inputs fingerprinted, records) are never counted as undeclared reads of a
    ``run()`` that calls another task's ``run()``.
    """

    def __init__(self, task: luigi.Task, settings: Optional[Settings] = None) -> None:
        self.task = task
        self.settings = settings or load_settings()
        #: Read now, so that an unusable key (set but empty) stops the run before run() starts.
        self.signing_key = self.settings.signing_key
        self.outputs: List[Tuple[Key, HashableTarget]] = []
        for key, target in flatten_with_keys(task.output()):
            hashable = as_hashable(target)
            if hashable is None or not hashable.supports_records:
                raise UnsupportedTarget(
                    f"output(){format_key(key)} of {task.task_id} is a {type(target).__name__}, "
                    "which cannot carry a record; use a luigi_repro Hashable target."
                )
            if hashable.uri.endswith(self.settings.record_suffix):
                raise UnsupportedTarget(
                    f"output {hashable.uri} of {task.task_id} ends with the record suffix "
                    f"{self.settings.record_suffix!r}, so its own record would overwrite "
                    "another output's; rename it."
                )
            self.outputs.append((key, hashable))
        self.inputs: List[InputRef] = static_inputs(requirements_of(task))
        self._before: Dict[Tuple[Key, Key, bool], Optional[Observation]] = {}
        #: Before run(): each output's change token, and its record's bytes (to put back if a
        #: generator run is abandoned before writing anything).
        self._tokens: Dict[Key, Any] = {}
        self._saved: Dict[Key, bytes] = {}
        self._locks: Optional[contextlib.ExitStack] = None
        self._held: Optional[HeldLocks] = None
        self._started_at = ""
        self._started_clock = 0.0
        self._batches = 0
        #: The files run() opens for reading (None under ``undeclared_reads = ignore``).
        self.reads: Optional[ReadWatch] = None
        #: The run cache, this run's action key in it and the entry that may restore it.
        self._cache_step = CacheStep()
        #: Why the task is not up to date, as luigid shows it (held back while restoring).
        self._why: Optional[str] = None

    # --- steps 1-4 ------------------------------------------------------------------------------

    def _lock(self) -> None:
        stack = contextlib.ExitStack()
        requests = [LockRequest(target.uri, target.lock_name()) for _, target in self.outputs]
        self._held = stack.enter_context(
            lock_backend(self.settings.lock).hold(
                requests, self.settings.lock_timeout, self.task.task_id
            )
        )
        # Folders are flushed once, after the outputs and records are renamed into them and
        # before the locks are released (the stack unwinds in reverse).
        stack.enter_context(folder_syncs_deferred())
        self._locks = stack

    @unwatched_call
    def begin(self) -> bool:
        """Steps 1-4. True when ``run()`` must be called; False for an early cutoff."""
        self._lock()
        try:
            judge = Judge(self.settings)
            self._observe_inputs(judge, self.inputs, self._before)
            # The whole verdict, upstream included: dynamic dependencies recorded by an earlier
            # run are not known to Luigi, so only this check sees that one of them is stale.
            verdict = judge.status(self.task)
            rerun = rerun_requested(self.task)
            if self.outputs and verdict.ok and not rerun:
                logger.info(
                    "luigi_repro: %r is already up to date (same inputs, parameters and code); "
                    "skipping run() (early cutoff).",
                    self.task,
                )
                self.close()
                tell_scheduler(self.task, EARLY_CUTOFF_MESSAGE)
                return False
            self._cache_step = find_in_cache(
                self.task,
                self.settings,
                self.signing_key,
                self.outputs,
                self.inputs,
                self._before,
                rerun,
            )
            restorable = self._cache_step.entry
            if verdict.ok and rerun:  # up to date, yet asked to run
                logger.info("luigi_repro: %r runs: rerun=True (gokart) asks for a run", self.task)
            else:
                self._say_why(judge, verdict, restoring=restorable is not None)
            for key, target in self.outputs:
                self._tokens[key] = target.change_token()
                with contextlib.suppress(OSError, ValueError):
                    saved = target.read_record_bytes(self.settings)
                    if saved is not None:
                        self._saved[key] = saved
                target.remove_record(self.settings)
            runtime().memory.task_ran(self.task.task_id)
            if restorable is not None:
                if self._restore(judge):
                    self.close()
                    tell_scheduler(self.task, RESTORED_MESSAGE)
                    return False
                if self._why is not None:  # not restored after all: it runs, and says why
                    tell_scheduler(self.task, self._why)
            unshare_outputs(self.outputs, self.settings)
        except BaseException:
            self.close()
            raise
        if self.settings.undeclared_reads != "ignore":
            self.reads = ReadWatch(self.task.task_id, self.settings)
            self.reads.exclude_outputs(target for _, target in self.outputs)
            self.reads.exclude_outputs(scratch_of(self.task))
            self.reads.exclude_inputs(ref.target for ref in self.inputs)
        self._started_at = now_iso()
        self._started_clock = time.monotonic()
        return True

    def _say_why(self, judge: Judge, verdict: TaskStatus, restoring: bool) -> None:
        """Log, before ``run()``, every reason the task runs, as ``verify`` words them, and
        show the first few as the task's status message in Luigi's scheduler (``luigid``).

        The check that decided to run stops at its first reason; the task's own state is judged
        again exhaustively, from what that check already read (its files were just
        fingerprinted, and upstream tasks are complete by now, or Luigi would not run it).
        """
        logging_why = logger.isEnabledFor(logging.INFO)
        if not logging_why and not scheduler_listens(self.task):
            return
        reasons = list(judge.exhaustive_sibling().own(self.task).reasons)
        known = {reason.kind for reason in reasons}
        reasons += [r for r in verdict.reasons if r.kind not in known]
        if logging_why:
            why = "; ".join(f"{reason.kind.value} {reason.message}" for reason in reasons)
            why = why or "no record vouches for it"
            if restoring:  # the next line says whether it was restored, or runs after all
                logger.info("luigi_repro: %r is not up to date: %s", self.task, why)
            else:
                logger.info("luigi_repro: %r runs: %s", self.task, why)
        self._why = why_message(reasons)
        if not restoring:
            tell_scheduler(self.task, self._why)

    def _restore(self, judge: Judge) -> bool:
        """Restore the cache's entry and record it as this run; False when the task runs."""
        step = self._cache_step
        record = restored_record(
            step,
            self.task,
            self.settings,
            self.signing_key,
            self.outputs,
            self.inputs,
            self._before,
            judge.context,
        )
        if record is None or step.entry is None:
            return False
        self._write_records(record)
        logger.info(
            "luigi_repro: %r restored from run cache (run %s on %s, %s; run() skipped).",
            self.task,
            step.entry.run_id,
            step.entry.host,
            step.entry.created,
        )
        return True

    @unwatched_call
    def add_dynamic(self, yielded: Any) -> None:
        """Record one batch of dynamic dependencies, now complete, before ``run()`` reads them."""
        refs = dynamic_inputs(yielded, self._batches)
        self._batches += 1
        self._observe_inputs(Judge(self.settings), refs, self._before)
        self.inputs.extend(refs)
        if self.reads is not None:
            self.reads.exclude_inputs(ref.target for ref in refs)

    def _observe_inputs(
        self,
        judge: Judge,
        refs: List[InputRef],
        into: Dict[Tuple[Key, Key, bool], Optional[Observation]],
    ) -> None:
        for ref in refs:
            hashable = as_hashable(ref.target)
            if hashable is None:
                warn_once(
                    f"unverifiable:{self.task.task_id}:{ref.label}",
                    "luigi_repro: input %s of %s is a %s, which cannot be fingerprinted; "
                    "only its existence is checked.",
                    ref.label,
                    self.task.task_id,
                    type(ref.target).__name__,
                )
                into[(ref.key, ref.output_key, ref.dynamic)] = None
                continue
            outcome = judge.observe(hashable, recorded=is_checked_task(ref.task))
            if isinstance(outcome, Missing):
                raise RunProtocolError(
                    f"input {ref.label} ({hashable.uri}) of {self.task.task_id} {outcome.problem}; "
                    "it must exist before the task runs."
                )
            into[(ref.key, ref.output_key, ref.dynamic)] = outcome

    # --- steps 6-7 ------------------------------------------------------------------------------

    @unwatched_call
    def adopt(self) -> Record:
        """Record the outputs already on disk as made from the current inputs, without a run.

        For projects that start using luigi_repro with results in place (``luigi-repro adopt``).
        """
        self._lock()
        try:
            self._observe_inputs(Judge(self.settings), self.inputs, self._before)
            self._started_at = now_iso()
            self._started_clock = time.monotonic()
            return self.finish(adopted=True)
        finally:
            self.close()

    @unwatched_call
    def finish(self, adopted: bool = False) -> Record:
        """Steps 6-7: verify the inputs did not change, fingerprint the outputs, write records."""
        judge = Judge(self.settings)
        for ref in self.inputs:
            before = self._before[(ref.key, ref.output_key, ref.dynamic)]
            hashable = as_hashable(ref.target)
            if before is None or hashable is None:
                continue
            after_fp = _fingerprint_again(judge, hashable, before)
            if after_fp != before.fingerprint:
                raise InputChangedDuringRun(
                    self.task.task_id, hashable.uri, before.fingerprint, after_fp
                )
        tracked, listed = undeclared_inputs(
            self.task, self.settings.undeclared_reads, self.reads, judge
        )
        missing = [target.uri for _, target in self.outputs if not target.exists()]
        if missing:
            raise OutputNotWritten(self.task.task_id, missing)
        stale = [
            target.uri
            for key, target in self.outputs
            if self._tokens.get(key) is not None and target.change_token() == self._tokens[key]
        ]
        if stale:
            raise OutputNotWritten(self.task.task_id, (), stale)
        outputs = tuple(
            observe_output(self.task.task_id, judge, key, target) for key, target in self.outputs
        )
        record = build_record(
            self.task,
            self.settings,
            self.signing_key,
            self.inputs,
            self._before,
            outputs,
            RunTimes(self._started_at, self._started_clock, adopted),
        )
        if tracked or listed:
            record = attrs.evolve(record, inputs=record.inputs + tracked, undeclared_reads=listed)
        self._write_records(record)
        rerun_done(self.task)
        cache, key = self._cache_step.cache, self._cache_step.key
        if (
            cache is not None
            and key is not None
            and not adopted
            and not (tracked or listed)
            and self._batches == 0
        ):
            cache.keep(self.task, key, record, self.outputs)
        return record

    def _write_records(self, record: Record) -> None:
        # Each copy names the output it sits beside: an audit of a copied results folder then
        # knows which entry describes the file next to it.
        documents = [
            (target, dump_record(attrs.evolve(record, beside=key), self.signing_key))
            for key, target in self.outputs
        ]
        refuse_unreadable(self.task.task_id, self.settings, self.signing_key, documents)
        if self._held is not None:
            self._held.check()  # a lost lock means someone else may have run it: no record
        try:
            for target, data in documents:
                target.write_record_bytes(self.settings, data)
        finally:
            runtime().memory.task_ran(self.task.task_id)
        logger.debug("luigi_repro: recorded %s", self.task.task_id)

    @unwatched_call
    def abandon(self) -> None:
        """Luigi dropped a generator ``run()`` to schedule its dynamic dependencies first.

        If no output was touched, the records removed by :meth:`begin` still describe exactly
        these outputs, so they are put back: after the dependencies run, an early cutoff can
        then skip this task. Any output touched means no record, as for a failed run.
        """
        try:
            if self._locks is not None and all(
                target.change_token() == self._tokens.get(key) for key, target in self.outputs
            ):
                for key, target in self.outputs:
                    if key in self._saved:
                        target.write_record_bytes(self.settings, self._saved[key])
        finally:
            self.close()

    @unwatched_call
    def close(self) -> None:
        """Release the run locks (idempotent) and write what the stat cache learned.

        Now, not at exit: a forked Luigi worker process ends without running exit handlers.
        """
        if self._locks is not None:
            locks, self._locks = self._locks, None
            locks.close()
        flush_stat_caches()


def _fingerprint_again(judge: Judge, target: HashableTarget, before: Observation) -> Optional[str]:
    """The input's fingerprint now (None if it is gone or unreadable), with its observation
    before ``run()`` as the hint: a file whose stat still matches costs one ``stat``, and the
    record of the task that made it need not be read and parsed a second time."""
    try:
        return target.observe(judge.context, before).fingerprint
    except Exception:  # noqa: BLE001 - gone or unreadable now: it changed during the run
        return None
