"""What a remembered verdict must still match: the same task, seen the same way.

A task's own verdict is reused only while its parameters, its code, the tasks it requires and
the places of its outputs and inputs are what they were when it was decided. A wrapper has no
evidence of its own: the tasks it requires are all that can change.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import luigi

from luigi_repro.codeclosure import code_fingerprint
from luigi_repro.config import Settings
from luigi_repro.dag import through_wrappers
from luigi_repro.evidence import Evidence
from luigi_repro.findings import is_checked_task
from luigi_repro.memory import VerdictMemory
from luigi_repro.params import canonical_params
from luigi_repro.record import Key

__all__ = ["Identity", "identity_of"]

#: (params, code, requirement ids, shape), or ("wrapper", requirement ids).
Identity = Tuple[Any, ...]


def identity_of(
    task: luigi.Task,
    requirements: List[Tuple[Key, luigi.Task]],
    settings: Settings,
    signing_key: Optional[bytes],
    evidence: Evidence,
    memory: Optional[VerdictMemory],
) -> Identity:
    """How ``task`` is seen now (``memory`` notes the code, to notice when it changes)."""
    required = tuple(upstream.task_id for _, upstream in requirements)
    if not is_checked_task(task):  # a wrapper: it has no evidence of its own to place
        return ("wrapper", required)
    # What required wrappers wrap is read as inputs: a wrapper listing a folder differently
    # makes this another task (each wrapper's requires() is called once here).
    reached = through_wrappers(requirements)
    if len(reached) != len(requirements) or any(
        a is not b for (_, a), (_, b) in zip(reached, requirements)
    ):
        required += tuple(upstream.task_id for _, upstream in reached)
    algorithm = settings.hash_algorithm
    code = code_fingerprint(type(task), algorithm)
    if memory is not None:
        memory.note_code(type(task), algorithm, code)
    return (
        canonical_params(task, signing_key),
        code,
        required,
        _shape_of(task, reached, evidence),
    )


def _shape_of(
    task: luigi.Task, reached: List[Tuple[Key, luigi.Task]], evidence: Evidence
) -> Tuple[Any, ...]:
    """Where the task's outputs and inputs are now, and how each input can be fingerprinted.

    The same requirements can point elsewhere over time (an ``output()`` that lists a folder or
    reads configuration, a relative path under another working folder, an adapter registered
    later): a remembered verdict only stands for the same places, seen the same way.
    """
    places = evidence.places
    outputs = tuple((key, uri) for key, uri, _ in places(task))
    inputs = tuple(
        (key, output_key, uri, view)
        for key, upstream in reached
        for output_key, uri, view in places(upstream)
    )
    return outputs, inputs
