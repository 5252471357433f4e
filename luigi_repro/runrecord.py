"""The record of a finished run, built from what the run protocol observed.

Separate from the protocol's ordering of steps (locks, early cutoff, run, checks) because it is
pure assembly: entries for the inputs fingerprinted before ``run()``, the outputs fingerprinted
after it, the task's code and parameters, and the refusal of a record a reader would refuse.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import uuid
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import attrs
import luigi

from luigi_repro import environment
from luigi_repro.codeclosure import code_closure, code_version_of
from luigi_repro.config import Settings
from luigi_repro.dag import (
    InputRef,
)
from luigi_repro.errors import (
    OutputUnstable,
    RecordError,
    RecordRefused,
)
from luigi_repro.judge import Judge
from luigi_repro.params import canonical_params
from luigi_repro.record import (
    PARSE_MEMORY_MULTIPLE,
    InputEntry,
    Key,
    OutputEntry,
    Record,
    RunSection,
    TaskSection,
    estimated_parse_bytes,
    oversize,
    parse_record,
)
from luigi_repro.rules import is_checked_task
from luigi_repro.targets.base import HashableTarget, Observation, as_hashable


@attrs.frozen
class RunTimes:
    """When the run started (wall clock and monotonic clock), and whether it was adopted."""

    started_at: str
    started_clock: float
    adopted: bool


def _uri_of(target: Any, hashable: Optional[HashableTarget]) -> str:
    if hashable is not None:
        return hashable.uri
    return str(getattr(target, "path", target))


def now_iso() -> str:
    """Now, in UTC, as the record's run section writes times."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def refuse_unreadable(
    task_id: str,
    settings: Settings,
    signing_key: Optional[bytes],
    documents: List[Tuple[HashableTarget, bytes]],
) -> None:
    """Raise :class:`RecordRefused` if a reader would refuse one of these records.

    The copies differ only in ``beside``: sizes are compared for each, and one is parsed
    the way every check will parse it.
    """
    limit = settings.max_record_bytes
    for target, data in documents:
        problem = None
        if len(data) > limit:
            problem = oversize(len(data), limit)
        elif target is documents[0][0]:
            try:
                parse_record(data, target.uri, signing_key, limit)
            except RecordError as exc:
                problem = exc.problem
        if problem is not None:
            cost = -(-estimated_parse_bytes(data) // PARSE_MEMORY_MULTIPLE)
            raise RecordRefused(task_id, target.uri, problem, max(len(data), cost))


def output_entry(key: Key, target: HashableTarget, observation: Observation) -> OutputEntry:
    """The record's entry of output ``key`` as ``observation`` saw it."""
    return OutputEntry(
        key=key,
        uri=target.uri,
        fingerprint=observation.fingerprint,
        size=observation.size,
        state=observation.state,
        manifest=observation.manifest,
        target=target.describe(),
    )


def observe_output(task_id: str, judge: Judge, key: Key, target: HashableTarget) -> OutputEntry:
    """The entry of an output just written, fingerprinted while it held still (two tries)."""
    context = judge.context
    for _ in range(2):
        observation = target.observe(context, None)
        if observation.stable:
            return output_entry(key, target, observation)
    raise OutputUnstable(task_id, target.uri)


def build_record(
    task: luigi.Task,
    settings: Settings,
    signing_key: Optional[bytes],
    inputs_seen: Sequence[InputRef],
    before: Mapping[Tuple[Key, Key, bool], Optional[Observation]],
    outputs: Tuple[OutputEntry, ...],
    run: RunTimes,
) -> Record:
    """The record of ``task``'s run: its inputs as fingerprinted before ``run()``, its outputs."""
    cls = type(task)
    inputs = []
    for ref in inputs_seen:
        seen = before[(ref.key, ref.output_key, ref.dynamic)]
        hashable = as_hashable(ref.target)
        inputs.append(
            InputEntry(
                key=ref.key,
                output_key=ref.output_key,
                uri=_uri_of(ref.target, hashable),
                fingerprint=None if seen is None else seen.fingerprint,
                task_id=ref.task.task_id,
                task_family=ref.task.get_task_family(),
                task_module=type(ref.task).__module__,
                # Enough to rebuild the task (insignificant ones too: a parameter without
                # a default is needed), but no hidden or private values: they may be secrets.
                task_params=(ref.task.to_str_params(only_public=True) if ref.dynamic else None),
                dynamic=ref.dynamic,
                manifest=None if seen is None else seen.manifest,
                recorded=is_checked_task(ref.task),
                # How it was fingerprinted (a table's data, not its bytes), for audits.
                target=None if hashable is None else hashable.describe(),
            )
        )
    code = code_closure(cls, settings.hash_algorithm)
    params = canonical_params(task, signing_key)
    return Record(
        task=TaskSection(
            family=task.get_task_family(),
            module=cls.__module__,
            task_id=task.task_id,
            params=params,
            code_fingerprint=code.fingerprint,
            code_version=code_version_of(cls),
            code_parts=code.parts,
            code_unresolved=code.unresolved,
            param_order=tuple(name for name, _ in cls.get_params() if name in params),
        ),
        inputs=tuple(inputs),
        outputs=outputs,
        run=RunSection(
            run_id=uuid.uuid4().hex,
            started=run.started_at,
            ended=now_iso(),
            duration_s=round(time.monotonic() - run.started_clock, 6),
            host=socket.gethostname(),
            pid=os.getpid(),
            versions=environment.current_versions(),
            packages=environment.imported_packages(),
            adopted=run.adopted,
        ),
    )
