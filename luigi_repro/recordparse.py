"""Strict parsing of a record's JSON document into a :class:`~luigi_repro.record.Record`.

Every field the reader needs is checked for type and form, and each defect is named by its place
in the document (``inputs[3].fingerprint``), so that a damaged record is refused with a reason.
"""

from __future__ import annotations

import hmac
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

from luigi_repro.recordmodel import (
    SCHEMA_VERSION,
    InputEntry,
    Key,
    OutputEntry,
    Record,
    RunSection,
    TaskSection,
)
from luigi_repro.recordsignature import sign_document


class ShapeError(Exception):
    """Raised inside the parser; turned into a RecordError naming the record."""


def _get(obj: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise ShapeError(f"{where}.{name} is missing")
    return obj[name]


def _obj(value: Any, where: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ShapeError(f"{where} must be an object")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ShapeError(f"{where} must be a string")
    return value


def _opt_str(value: Any, where: str) -> Optional[str]:
    return None if value is None else _str(value, where)


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ShapeError(f"{where} must be an integer")
    return value


def _list(value: Any, where: str) -> List[Any]:
    if not isinstance(value, list):
        raise ShapeError(f"{where} must be a list")
    return value


def _key(value: Any, where: str) -> Key:
    parts = _list(value, where)
    for part in parts:
        if not isinstance(part, (str, int)) or isinstance(part, bool):
            raise ShapeError(f"{where} must hold strings and integers")
    return tuple(parts)


def _fingerprint(value: Any, where: str) -> str:
    text = _str(value, where)
    algorithm, sep, digest = text.partition(":")
    if not sep or not algorithm or not digest:
        raise ShapeError(f"{where} is not of the form 'algorithm:hex'")
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
        param_order=_str_list(task.get("param_order", []), "task.param_order"),
    )


def _parse_input(value: Any, where: str) -> InputEntry:
    entry = _obj(value, where)
    fingerprint = entry.get("fingerprint")
    params = entry.get("task_params")
    dynamic = entry.get("dynamic", False)
    recorded = entry.get("recorded", False)
    undeclared = entry.get("undeclared", False)
    if not all(isinstance(flag, bool) for flag in (dynamic, recorded, undeclared)):
        raise ShapeError(
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
        raise ShapeError(f"{where}.size must not be negative")
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
        raise ShapeError("run.duration_s must be a number")
    try:
        duration = float(duration)
    except OverflowError:
        raise ShapeError("run.duration_s is out of range") from None
    if not math.isfinite(duration):
        raise ShapeError("run.duration_s must be finite")
    adopted = run.get("adopted", False)
    if not isinstance(adopted, bool):
        raise ShapeError("run.adopted must be true or false")
    restored = run.get("restored_from")
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
        restored_from=None if restored is None else _str_map(restored, "run.restored_from"),
    )


def parse_document(doc: Any, signing_key: Optional[bytes]) -> Record:
    """The record in the decoded JSON ``doc``; a defect raises :class:`ShapeError`."""
    doc = _obj(doc, "the record")
    schema = doc.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise ShapeError("it has no valid 'schema' version")
    if schema > SCHEMA_VERSION:
        raise ShapeError(
            f"it was written by a newer luigi_repro (schema {schema}, this version reads "
            f"{SCHEMA_VERSION}); upgrade luigi_repro to check it"
        )
    signature = doc.get("signature")
    if signature is not None:
        _str(signature, "signature")
    if signing_key:
        if signature is None:
            raise ShapeError("it is unsigned, but a signing key is configured")
        given = signature.encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(given, sign_document(doc, signing_key).encode()):
            raise ShapeError(
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
        raise ShapeError("it lists no outputs")
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
