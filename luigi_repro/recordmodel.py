"""The record's data model: what a record says, as frozen values, apart from how it is stored.

Kept apart from the JSON writing and the strict parsing so that code which only reads a record's
fields (the judge, the audit, the reports) depends on the shape alone.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import attrs

from luigi_repro.paramorder import declared_order

SCHEMA_VERSION = 1
#: Records are a few KiB (a folder output of 10,000 files makes about 2 MiB): 16 MiB by default.
DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024
JSONValue = Union[None, bool, int, float, str, List[Any], Dict[str, Any]]
#: A position inside a nested ``requires()`` or ``output()`` structure: dict keys and list indexes.
Key = Tuple[Union[str, int], ...]


@attrs.frozen
class TaskSection:
    """Which task made the output, with which parameters and which code."""

    family: str
    module: str
    task_id: str
    params: Mapping[str, JSONValue]
    code_fingerprint: str
    code_version: Optional[str] = None
    #: One digest per piece of code the fingerprint covers (``"function utils.prep.impute"``
    #: -> ``"xxh3_128:…"``), so that a change can be named; None in records that predate it.
    code_parts: Optional[Mapping[str, str]] = None
    #: References the code makes that cannot be followed statically (``getattr(mod, name)``,
    #: ``exec``): listed, because the fingerprint cannot vouch for what they reach.
    code_unresolved: Tuple[str, ...] = ()
    #: The names of ``params`` in the order the class declares them (the JSON object is
    #: written sorted), so that a record-only audit shows the task as it was written.
    param_order: Tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The task as people write it: ``TrainModel(date=2024-03-02)``."""
        shown = ", ".join(
            f"{name}={value if isinstance(value, str) else json.dumps(value, sort_keys=True)}"
            for name, value in declared_order(self.params, self.param_order)
        )
        return f"{self.family}({shown})"


@attrs.frozen
class InputEntry:
    """One file (or folder, or object) the task read, and its fingerprint at the time.

    ``key`` is the input's place in ``requires()``; ``output_key`` its place in the upstream task's
    ``output()``. Dynamic dependencies (yielded by ``run()``) have ``dynamic=True``, a key
    starting with the index of the yield, and ``task_params`` so that the task can be rebuilt.
    ``fingerprint`` is None for an input that could not be fingerprinted (existence only).
    ``undeclared`` marks a file that ``run()`` read without declaring it (tracked under
    ``undeclared_reads = track``); its key is ``("undeclared:<path>",)``. ``target`` describes
    how the content was fingerprinted (``{"type": "parquet"}``) so that an audit from the record
    alone fingerprints it the same way; None means the raw bytes.
    """

    key: Key
    output_key: Key
    uri: str
    fingerprint: Optional[str]
    task_id: Optional[str] = None
    task_family: Optional[str] = None
    task_module: Optional[str] = None
    task_params: Optional[Mapping[str, str]] = None
    dynamic: bool = False
    manifest: Optional[Mapping[str, str]] = None
    #: The upstream task keeps records (a TaskWithCheckingInputHash): if the input has none now,
    #: its producer did not finish, rather than the input being a raw file.
    recorded: bool = False
    undeclared: bool = False
    target: Optional[Mapping[str, JSONValue]] = None


@attrs.frozen
class OutputEntry:
    """One output as it was when the record was written.

    ``state`` is the target's own proof that the content is unchanged (the local stat, an S3
    ETag…); it lets a later check reuse ``fingerprint`` without reading the data. ``target``
    describes how the content was fingerprinted, as for :class:`InputEntry`.
    """

    key: Key
    uri: str
    fingerprint: str
    size: int
    state: Mapping[str, JSONValue] = attrs.field(factory=dict)
    manifest: Optional[Mapping[str, str]] = None
    target: Optional[Mapping[str, JSONValue]] = None


@attrs.frozen
class RunSection:
    """When, where and with which software the run happened."""

    run_id: str
    started: str
    ended: str
    duration_s: float
    host: str
    pid: int
    versions: Mapping[str, str] = attrs.field(factory=dict)
    packages: Mapping[str, str] = attrs.field(factory=dict)
    adopted: bool = False
    #: Set when the outputs were restored from the run cache instead of computed: which run
    #: made them (``run_id``, ``host``, ``created``) and under which ``action_key``.
    restored_from: Optional[Mapping[str, str]] = None


@attrs.frozen
class Record:
    """The whole record. Every output of one run carries the same record, but for ``beside``.

    ``beside`` is the key of the output this copy of the record sits beside, so that an audit
    of a copied results folder knows which entry describes the file next to it.
    ``undeclared_reads`` lists files ``run()`` read without declaring them, when they were
    reported rather than tracked (``undeclared_reads = warn``).
    ``writer`` is ``(uid, gid)`` of the file the record was read from, when the store tells
    (never written: it is where the record was found, not what it says).
    """

    task: TaskSection
    inputs: Tuple[InputEntry, ...]
    outputs: Tuple[OutputEntry, ...]
    run: RunSection
    signature: Optional[str] = None
    schema: int = SCHEMA_VERSION
    beside: Optional[Key] = None
    undeclared_reads: Tuple[str, ...] = ()
    writer: Optional[Tuple[int, int]] = attrs.field(default=None, eq=False)

    def output(self, key: Key) -> Optional[OutputEntry]:
        """The entry of the output at ``key``, if the record has one."""
        for entry in self.outputs:
            if entry.key == key:
                return entry
        return None
