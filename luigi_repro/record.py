"""The record kept beside every output: what went in, what came out, and under which code.

A record is JSON, never pickle: a pickle beside shared data would let anyone who can write there
run code in every process that checks the pipeline. It is schema-versioned; a reader refuses a
version it does not know. Parsing is strict about the fields it needs and ignores fields it does not
know, so that later minor additions stay readable by this version.

Optionally the record carries an HMAC-SHA256 signature over its canonical JSON, so that an auditor
holding the key can tell a record written by a run from one written by hand.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import attrs

from luigi_repro.errors import RecordError

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "SCHEMA_VERSION",
    "PARSE_MEMORY_MULTIPLE",
    "InputEntry",
    "Key",
    "OutputEntry",
    "Record",
    "RunSection",
    "TaskSection",
    "MAX_RECORD_DEPTH",
    "dump_record",
    "estimated_parse_bytes",
    "oversize",
    "parse_record",
    "size_text",
]

SCHEMA_VERSION = 1

#: Records are a few KiB (a folder output of 10,000 files makes about 2 MiB): 16 MiB by default.
DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024

JSONValue = Union[None, bool, int, float, str, List[Any], Dict[str, Any]]

#: A position inside a nested ``requires()`` or ``output()`` structure: dict keys and list indexes.
Key = Tuple[Union[str, int], ...]

_SIGNATURE_PREFIX = "hmac-sha256:"


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

    @property
    def label(self) -> str:
        """The task as people write it: ``TrainModel(date=2024-03-02)``."""
        shown = ", ".join(
            f"{name}={value if isinstance(value, str) else json.dumps(value, sort_keys=True)}"
            for name, value in self.params.items()
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


# --- writing -----------------------------------------------------------------------------------


def _key_json(key: Key) -> List[Union[str, int]]:
    return list(key)


def _to_document(record: Record) -> Dict[str, Any]:
    task = record.task
    task_doc: Dict[str, Any] = {
        "family": task.family,
        "module": task.module,
        "task_id": task.task_id,
        "params": dict(task.params),
        "code_fingerprint": task.code_fingerprint,
        "code_version": task.code_version,
    }
    if task.code_parts is not None:
        task_doc["code_parts"] = dict(task.code_parts)
    if task.code_unresolved:
        task_doc["code_unresolved"] = list(task.code_unresolved)
    doc: Dict[str, Any] = {
        "schema": record.schema,
        "tool": "luigi_repro",
        "task": task_doc,
        "inputs": [_input_document(entry) for entry in record.inputs],
        "outputs": [_output_document(entry) for entry in record.outputs],
        "run": attrs.asdict(record.run),
    }
    if record.beside is not None:
        doc["beside"] = _key_json(record.beside)
    if record.undeclared_reads:
        doc["undeclared_reads"] = list(record.undeclared_reads)
    return doc


def _input_document(entry: InputEntry) -> Dict[str, Any]:
    doc: Dict[str, Any] = {
        "key": _key_json(entry.key),
        "output_key": _key_json(entry.output_key),
        "uri": entry.uri,
        "fingerprint": entry.fingerprint,
        "task_id": entry.task_id,
        "task_family": entry.task_family,
        "task_module": entry.task_module,
        "task_params": None if entry.task_params is None else dict(entry.task_params),
        "dynamic": entry.dynamic,
        "manifest": None if entry.manifest is None else dict(entry.manifest),
        "recorded": entry.recorded,
    }
    # Written only when set: records of plain byte inputs keep their earlier shape.
    if entry.undeclared:
        doc["undeclared"] = True
    if entry.target is not None:
        doc["target"] = dict(entry.target)
    return doc


def _output_document(entry: OutputEntry) -> Dict[str, Any]:
    doc: Dict[str, Any] = {
        "key": _key_json(entry.key),
        "uri": entry.uri,
        "fingerprint": entry.fingerprint,
        "size": entry.size,
        "state": dict(entry.state),
        "manifest": None if entry.manifest is None else dict(entry.manifest),
    }
    if entry.target is not None:
        doc["target"] = dict(entry.target)
    return doc


def _canonical(doc: Mapping[str, Any]) -> bytes:
    # ASCII-escaped, so that any string (even a lone surrogate from a hostile record) has a form.
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _sign(doc: Mapping[str, Any], key: bytes) -> str:
    return _SIGNATURE_PREFIX + hmac.new(key, _canonical(doc), hashlib.sha256).hexdigest()


def dump_record(record: Record, signing_key: Optional[bytes] = None) -> bytes:
    """The record as UTF-8 JSON, signed when a key is given."""
    doc = _to_document(record)
    if signing_key:
        doc["signature"] = _sign(doc, signing_key)
    # Compact: the C encoder only serves documents without indentation (several times faster);
    # `luigi-repro show` is the readable view.
    try:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: only the escaped form can hold it
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return text + b"\n"


# --- reading -----------------------------------------------------------------------------------


class _ShapeError(Exception):
    """Raised inside the parser; turned into a RecordError naming the record."""


def _get(obj: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise _ShapeError(f"{where}.{name} is missing")
    return obj[name]


def _obj(value: Any, where: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise _ShapeError(f"{where} must be an object")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _ShapeError(f"{where} must be a string")
    return value


def _opt_str(value: Any, where: str) -> Optional[str]:
    return None if value is None else _str(value, where)


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _ShapeError(f"{where} must be an integer")
    return value


def _list(value: Any, where: str) -> List[Any]:
    if not isinstance(value, list):
        raise _ShapeError(f"{where} must be a list")
    return value


def _key(value: Any, where: str) -> Key:
    parts = _list(value, where)
    for part in parts:
        if not isinstance(part, (str, int)) or isinstance(part, bool):
            raise _ShapeError(f"{where} must hold strings and integers")
    return tuple(parts)


def _fingerprint(value: Any, where: str) -> str:
    text = _str(value, where)
    algorithm, sep, digest = text.partition(":")
    if not sep or not algorithm or not digest:
        raise _ShapeError(f"{where} is not of the form 'algorithm:hex'")
    return text


def _str_map(value: Any, where: str) -> Dict[str, str]:
    mapping = _obj(value, where)
    for name, item in mapping.items():
        _str(item, f"{where}.{name}")
    return mapping


def _opt_target(value: Any, where: str) -> Optional[Dict[str, Any]]:
    """A target description: an object whose ``type`` is a string (other fields are options)."""
    if value is None:
        return None
    description = _obj(value, where)
    _str(_get(description, "type", where), f"{where}.type")
    return description


def _str_list(value: Any, where: str) -> Tuple[str, ...]:
    return tuple(_str(item, f"{where}[{i}]") for i, item in enumerate(_list(value, where)))


def _opt_manifest(value: Any, where: str) -> Optional[Dict[str, str]]:
    if value is None:
        return None
    mapping = _obj(value, where)
    for name, item in mapping.items():
        _fingerprint(item, f"{where}[{name!r}]")
    return mapping


def _parse_task(value: Any) -> TaskSection:
    task = _obj(value, "task")
    return TaskSection(
        family=_str(_get(task, "family", "task"), "task.family"),
        module=_str(_get(task, "module", "task"), "task.module"),
        task_id=_str(_get(task, "task_id", "task"), "task.task_id"),
        params=_obj(_get(task, "params", "task"), "task.params"),
        code_fingerprint=_fingerprint(
            _get(task, "code_fingerprint", "task"), "task.code_fingerprint"
        ),
        code_version=_opt_str(task.get("code_version"), "task.code_version"),
        code_parts=None
        if task.get("code_parts") is None
        else _str_map(task["code_parts"], "task.code_parts"),
        code_unresolved=_str_list(task.get("code_unresolved", []), "task.code_unresolved"),
    )


def _parse_input(value: Any, where: str) -> InputEntry:
    entry = _obj(value, where)
    fingerprint = entry.get("fingerprint")
    params = entry.get("task_params")
    dynamic = entry.get("dynamic", False)
    recorded = entry.get("recorded", False)
    undeclared = entry.get("undeclared", False)
    if not all(isinstance(flag, bool) for flag in (dynamic, recorded, undeclared)):
        raise _ShapeError(
            f"{where}.dynamic, {where}.recorded and {where}.undeclared must be true or false"
        )
    return InputEntry(
        key=_key(_get(entry, "key", where), f"{where}.key"),
        output_key=_key(entry.get("output_key", []), f"{where}.output_key"),
        uri=_str(_get(entry, "uri", where), f"{where}.uri"),
        fingerprint=None
        if fingerprint is None
        else _fingerprint(fingerprint, f"{where}.fingerprint"),
        task_id=_opt_str(entry.get("task_id"), f"{where}.task_id"),
        task_family=_opt_str(entry.get("task_family"), f"{where}.task_family"),
        task_module=_opt_str(entry.get("task_module"), f"{where}.task_module"),
        task_params=None if params is None else _str_map(params, f"{where}.task_params"),
        dynamic=dynamic,
        manifest=_opt_manifest(entry.get("manifest"), f"{where}.manifest"),
        recorded=recorded,
        undeclared=undeclared,
        target=_opt_target(entry.get("target"), f"{where}.target"),
    )


def _parse_output(value: Any, where: str) -> OutputEntry:
    entry = _obj(value, where)
    size = _int(_get(entry, "size", where), f"{where}.size")
    if size < 0:
        raise _ShapeError(f"{where}.size must not be negative")
    return OutputEntry(
        key=_key(_get(entry, "key", where), f"{where}.key"),
        uri=_str(_get(entry, "uri", where), f"{where}.uri"),
        fingerprint=_fingerprint(_get(entry, "fingerprint", where), f"{where}.fingerprint"),
        size=size,
        state=_obj(entry.get("state", {}), f"{where}.state"),
        manifest=_opt_manifest(entry.get("manifest"), f"{where}.manifest"),
        target=_opt_target(entry.get("target"), f"{where}.target"),
    )


def _parse_run(value: Any) -> RunSection:
    run = _obj(value, "run")
    duration = _get(run, "duration_s", "run")
    if not isinstance(duration, (int, float)) or isinstance(duration, bool):
        raise _ShapeError("run.duration_s must be a number")
    try:
        duration = float(duration)
    except OverflowError:
        raise _ShapeError("run.duration_s is out of range") from None
    if not math.isfinite(duration):
        raise _ShapeError("run.duration_s must be finite")
    adopted = run.get("adopted", False)
    if not isinstance(adopted, bool):
        raise _ShapeError("run.adopted must be true or false")
    return RunSection(
        run_id=_str(_get(run, "run_id", "run"), "run.run_id"),
        started=_str(_get(run, "started", "run"), "run.started"),
        ended=_str(_get(run, "ended", "run"), "run.ended"),
        duration_s=float(duration),
        host=_str(_get(run, "host", "run"), "run.host"),
        pid=_int(_get(run, "pid", "run"), "run.pid"),
        versions=_str_map(run.get("versions", {}), "run.versions"),
        packages=_str_map(run.get("packages", {}), "run.packages"),
        adopted=adopted,
    )


def _parse_document(doc: Any, signing_key: Optional[bytes]) -> Record:
    doc = _obj(doc, "the record")
    schema = doc.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise _ShapeError("it has no valid 'schema' version")
    if schema > SCHEMA_VERSION:
        raise _ShapeError(
            f"it was written by a newer luigi_repro (schema {schema}, this version reads "
            f"{SCHEMA_VERSION}); upgrade luigi_repro to check it"
        )
    signature = doc.get("signature")
    if signature is not None:
        _str(signature, "signature")
    if signing_key:
        if signature is None:
            raise _ShapeError("it is unsigned, but a signing key is configured")
        given = signature.encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(given, _sign(doc, signing_key).encode()):
            raise _ShapeError(
                "its signature does not match: it was altered or signed with another key"
            )
    inputs = tuple(
        _parse_input(item, f"inputs[{i}]")
        for i, item in enumerate(_list(_get(doc, "inputs", "record"), "inputs"))
    )
    outputs = tuple(
        _parse_output(item, f"outputs[{i}]")
        for i, item in enumerate(_list(_get(doc, "outputs", "record"), "outputs"))
    )
    if not outputs:
        raise _ShapeError("it lists no outputs")
    beside = doc.get("beside")
    return Record(
        task=_parse_task(_get(doc, "task", "record")),
        inputs=inputs,
        outputs=outputs,
        run=_parse_run(_get(doc, "run", "record")),
        signature=signature,
        schema=schema,
        beside=None if beside is None else _key(beside, "beside"),
        undeclared_reads=_str_list(doc.get("undeclared_reads", []), "undeclared_reads"),
    )


#: Parsing a record may cost at most this many times ``max_record_bytes`` in memory. The cost
#: is estimated from the bytes before parsing (see :func:`estimated_parse_bytes`), so a record
#: shaped to cost far more than its size (``[[],[],…]``, millions of tiny strings) is refused
#: before it is built, whatever its size, while any record of ordinary shape — and any small
#: record, however dense — is read.
PARSE_MEMORY_MULTIPLE = 20
#: Lead bytes of 4-byte UTF-8 sequences, or an escaped surrogate (\ud800-\udbff).
_RE_BEYOND_BMP = re.compile(rb"[\xf0-\xff]|\\u[dD][89abAB]")


def estimated_parse_bytes(data: bytes) -> int:
    """An upper estimate of the memory ``json.loads`` needs for ``data`` (CPython, 64 bits).

    Counted from the bytes alone, in C-speed passes: the bytes; their decoded text three times
    (the decoded document, the strings made from it and a string's growth while it is built),
    1, 2 or 4 bytes a character as the widest character (or ``\\u`` escape) requires; 80 bytes
    per string, 104 per list, 240 per object, 56 per ``,`` (a list slot or dict entry and the
    value it holds) and 32 per ``[`` or ``:`` (the first value of a list, an object's value).
    On ordinary records it is 2 to 3 times the real cost; on the costliest shapes within
    1.1 times (``python -m benchmarks records``).
    """
    width = 1
    if not data.isascii() or b"\\u" in data:  # C-speed tests; the regex scans far slower
        width = 4 if _RE_BEYOND_BMP.search(data) else 2
    strings = data.count(b'"') // 2
    lists = data.count(b"[")
    return (
        len(data) * (1 + 3 * width)
        + 80 * strings
        + (104 + 32) * lists
        + 240 * data.count(b"{")
        + 56 * data.count(b",")
        + 32 * data.count(b":")
    )


#: Deepest nesting a record may have (its own structure is 8 deep; parameters add some).
MAX_RECORD_DEPTH = 64


def size_text(size: int) -> str:
    """A byte count as people read it: ``83 MiB``, ``512 KiB``, ``900 bytes``."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            value = size / scale
            return (
                f"{value:.0f} {unit}"
                if value >= 10 or value == int(value)
                else f"{value:.1f} {unit}"
            )
    return f"{size} bytes"


def oversize(size: int, limit: int) -> str:
    """The problem of a record bigger than ``max_record_bytes``."""
    return f"it is {size_text(size)}, above max_record_bytes ({size_text(limit)})"


def _check_shape(data: bytes, limit: int) -> Optional[str]:
    """Why ``data`` cannot be a record, judged from its bytes alone (before any parsing)."""
    if len(data) > limit:
        return oversize(len(data), limit)
    cost = estimated_parse_bytes(data)
    if cost > PARSE_MEMORY_MULTIPLE * limit:
        return (
            f"parsing its {size_text(len(data))} would take about {size_text(cost)} of memory, "
            f"more than {PARSE_MEMORY_MULTIPLE} times max_record_bytes ({size_text(limit)}): "
            "far more lists, objects or strings than a record holds"
        )
    return None


def _depth_exceeds(doc: Any, limit: int) -> bool:
    """Is ``doc`` nested more than ``limit`` deep? (Walked level by level, without recursion,
    holding one reference per list or object of a level.)"""
    level: List[Any] = [doc] if isinstance(doc, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: List[Any] = []
        for value in level:
            children = value.values() if isinstance(value, dict) else value
            below.extend(child for child in children if isinstance(child, (dict, list)))
        level = below
    return False


def parse_record(
    data: bytes,
    location: str,
    signing_key: Optional[bytes] = None,
    max_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Record:
    """Parse and validate a record; any defect raises :class:`RecordError` naming ``location``.

    Never evaluates anything: a pickle or other binary content is simply not valid JSON. A
    record bigger than ``max_bytes``, or with more lists, objects, entries or nesting than a
    record of its size can have, is refused before it costs more than a few times its size.
    """
    if not data.strip():
        raise RecordError(location, "it is empty")
    problem = _check_shape(data, max_bytes)
    if problem is not None:
        raise RecordError(location, problem)
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RecordError(
            location, "it is not UTF-8 text (a pickle or other binary file?)"
        ) from None
    except RecursionError:
        raise RecordError(location, "it is nested too deeply to be a record") from None
    except ValueError as exc:
        raise RecordError(location, f"it is not valid JSON ({exc})") from None
    brackets = data.count(b"[") + data.count(b"{")
    if brackets > MAX_RECORD_DEPTH and _depth_exceeds(doc, MAX_RECORD_DEPTH):
        raise RecordError(location, f"it is nested more than {MAX_RECORD_DEPTH} deep")
    try:
        return _parse_document(doc, signing_key)
    except _ShapeError as exc:
        raise RecordError(location, str(exc)) from None
    except RecursionError:
        raise RecordError(location, "it is nested too deeply to be a record") from None
