"""The record kept beside every output: what went in, what came out, and under which code.

A record is JSON, never pickle: a pickle beside shared data would let anyone who can write there
run code in every process that checks the pipeline. It is schema-versioned; a reader refuses a
version it does not know. Parsing is strict about the fields it needs and ignores fields it does not
know, so that later minor additions stay readable by this version.

Optionally the record carries an HMAC-SHA256 signature over its canonical JSON, so that an auditor
holding the key can tell a record written by a run from one written by hand.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Union

import attrs

from luigi_repro.errors import RecordError
from luigi_repro.recordlimits import (
    MAX_RECORD_DEPTH,
    PARSE_MEMORY_MULTIPLE,
    depth_exceeds,
    estimated_parse_bytes,
    oversize,
    shape_problem,
    size_text,
)
from luigi_repro.recordmodel import (
    DEFAULT_MAX_RECORD_BYTES,
    SCHEMA_VERSION,
    InputEntry,
    Key,
    OutputEntry,
    Record,
    RunSection,
    TaskSection,
)
from luigi_repro.recordparse import (
    ShapeError,
    parse_document,
)
from luigi_repro.recordsignature import sign_document

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
    if task.param_order:
        task_doc["param_order"] = list(task.param_order)
    doc: Dict[str, Any] = {
        "schema": record.schema,
        "tool": "luigi_repro",
        "task": task_doc,
        "inputs": [_input_document(entry) for entry in record.inputs],
        "outputs": [_output_document(entry) for entry in record.outputs],
        "run": attrs.asdict(record.run),
    }
    if record.run.restored_from is None:  # written only when set: other records keep their shape
        del doc["run"]["restored_from"]
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


def dump_record(record: Record, signing_key: Optional[bytes] = None) -> bytes:
    """The record as UTF-8 JSON, signed when a key is given."""
    doc = _to_document(record)
    if signing_key:
        doc["signature"] = sign_document(doc, signing_key)
    # Compact: the C encoder only serves documents without indentation (several times faster);
    # `luigi-repro show` is the readable view.
    try:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: only the escaped form can hold it
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return text + b"\n"


# --- reading -----------------------------------------------------------------------------------


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
    problem = shape_problem(data, max_bytes)
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
    if brackets > MAX_RECORD_DEPTH and depth_exceeds(doc, MAX_RECORD_DEPTH):
        raise RecordError(location, f"it is nested more than {MAX_RECORD_DEPTH} deep")
    try:
        return parse_document(doc, signing_key)
    except ShapeError as exc:
        raise RecordError(location, str(exc)) from None
    except RecursionError:
        raise RecordError(location, "it is nested too deeply to be a record") from None
