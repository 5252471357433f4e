"""The record format: exact round trips, strict and safe parsing, forward compatibility, HMAC."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    altered_signed_documents,
    json_documents,
    leaf_paths,
    records,
    reversed_dicts,
    signing_keys,
)

from luigi_repro.errors import RecordError
from luigi_repro.record import (
    SCHEMA_VERSION,
    InputEntry,
    OutputEntry,
    Record,
    RunSection,
    TaskSection,
    dump_record,
    parse_record,
)

LOCATION = "out/résumé.csv.repro.json"
#: Record-generating tests: enough examples to find shape problems, few enough to stay fast.
RECORDS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = b"correct horse battery staple"

SAMPLE = Record(
    task=TaskSection(
        family="Clean",
        module="pipeline.steps",
        task_id="Clean_2024_01_ab12cd34ef",
        params={"day": "2024-01-01", "cols": ["a", "b"], "opts": {"x": 1}},
        code_fingerprint="xxh3_128:00112233445566778899aabbccddeeff",
        code_version="3",
    ),
    inputs=(
        InputEntry(
            key=("raw", 0),
            output_key=("csv",),
            uri="/data/räw/ünïcode.csv",
            fingerprint="xxh3_128:ffeeddccbbaa99887766554433221100",
            task_id="Raw_x_123",
            task_family="Raw",
            task_module="pipeline.raw",
            task_params={"name": "x"},
            dynamic=True,
            manifest={"a.txt": "sha256:0a", "sub/b.txt": "sha256:0b"},
        ),
    ),
    outputs=(
        OutputEntry(
            key=(),
            uri="/data/out/résumé.csv",
            fingerprint="xxh3_128:0123456789abcdef0123456789abcdef",
            size=1234,
            state={"st_ino": 42, "st_mtime_ns": 1700000000000000000, "extra": [1, None, "x"]},
            manifest=None,
        ),
    ),
    run=RunSection(
        run_id="r-1",
        started="2024-01-01T00:00:00Z",
        ended="2024-01-01T00:00:01Z",
        duration_s=1.25,
        host="héte",
        pid=4242,
        versions={"python": "3.11.7", "luigi": "3.8.1"},
        packages={"pandas": "2.2.0"},
        adopted=False,
    ),
)


def sample_document(signing_key: Optional[bytes] = None) -> Dict[str, Any]:
    """The sample record as the JSON document stored on disk."""
    document: Dict[str, Any] = json.loads(dump_record(SAMPLE, signing_key=signing_key))
    return document


def encode(document: Any) -> bytes:
    """A JSON document as the bytes of a record file."""
    return json.dumps(document, ensure_ascii=False).encode()


def parse_error(data: bytes, signing_key: Optional[bytes] = None) -> RecordError:
    """The RecordError that parsing ``data`` raises; fails the test if it raises nothing."""
    with pytest.raises(RecordError) as info:
        parse_record(data, LOCATION, signing_key)
    return info.value


def outcome(data: bytes, signing_key: Optional[bytes] = None) -> Union[Record, RecordError]:
    """What parsing ``data`` gives: the Record, or the RecordError it raised."""
    try:
        return parse_record(data, LOCATION, signing_key)
    except RecordError as error:
        return error


def assert_names_location(error: RecordError) -> None:
    """A record error must say which record it is about."""
    assert error.location == LOCATION
    assert LOCATION in str(error)


def set_path(document: Dict[str, Any], path: Tuple[Any, ...], value: Any) -> None:
    """Set the value at ``path`` (a tuple of keys and indexes) inside a JSON document."""
    parent: Any = document
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value


def reversed_record(record: Record) -> Record:
    """An equal record whose mappings were built in the opposite insertion order."""
    return attrs.evolve(
        record,
        task=attrs.evolve(record.task, params=reversed_dicts(dict(record.task.params))),
        inputs=tuple(
            attrs.evolve(
                entry,
                task_params=reversed_dicts(entry.task_params),
                manifest=reversed_dicts(entry.manifest),
            )
            for entry in record.inputs
        ),
        outputs=tuple(
            attrs.evolve(
                entry,
                state=reversed_dicts(dict(entry.state)),
                manifest=reversed_dicts(entry.manifest),
            )
            for entry in record.outputs
        ),
        run=attrs.evolve(
            record.run,
            versions=reversed_dicts(dict(record.run.versions)),
            packages=reversed_dicts(dict(record.run.packages)),
        ),
    )


# --- round trip and determinism ------------------------------------------------------------------


def test_sample_round_trip() -> None:
    """A hand-written record with every field set parses back to an equal Record."""
    assert parse_record(dump_record(SAMPLE), LOCATION) == SAMPLE


@given(records)
@RECORDS
def test_round_trip(record: Record) -> None:
    """Any valid record survives dump_record followed by parse_record unchanged."""
    assert parse_record(dump_record(record), LOCATION) == record


@given(records)
@RECORDS
def test_dump_is_deterministic(record: Record) -> None:
    """Dumping twice, or dumping an equal record built in another dict order, gives equal bytes."""
    first = dump_record(record)
    assert dump_record(record) == first
    assert dump_record(reversed_record(record)) == first


def test_dump_is_json_text() -> None:
    """The dump is UTF-8 JSON text ending in a newline, with the schema version and tool name."""
    data = dump_record(SAMPLE)
    assert data.endswith(b"\n")
    document = json.loads(data.decode("utf-8"))
    assert document["schema"] == SCHEMA_VERSION
    assert document["tool"] == "luigi_repro"
    assert "résumé" in data.decode("utf-8")


def test_record_output_lookup() -> None:
    """Record.output finds the entry of a key and answers None for an unknown key."""
    assert SAMPLE.output(()) is SAMPLE.outputs[0]
    assert SAMPLE.output(("nope",)) is None


# --- unusable bytes ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b" ", b"\n\t \r\n"], ids=["empty", "space", "whitespace"])
def test_empty_record(data: bytes) -> None:
    """An empty or blank file is a RecordError saying it is empty."""
    error = parse_error(data)
    assert_names_location(error)
    assert "empty" in error.problem


@given(records)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_truncation_is_rejected(record: Record) -> None:
    """Every strict prefix of a dumped record's JSON text is a RecordError naming the record."""
    text = dump_record(record).rstrip(b"\n")
    assert isinstance(outcome(text), Record)
    results = [outcome(text[:end]) for end in range(len(text))]
    assert all(isinstance(r, RecordError) and r.location == LOCATION for r in results)


@pytest.mark.parametrize(
    "data",
    [b"hello", b"schema: 1\ntask: {}\n", b"{'schema': 1}", b'{"schema": 1,}', b"\x00\x01\x02"],
    ids=["word", "yaml", "python-literal", "trailing-comma", "control-bytes"],
)
def test_non_json_text(data: bytes) -> None:
    """Text that is not JSON is a RecordError saying so."""
    error = parse_error(data)
    assert_names_location(error)
    assert "JSON" in error.problem


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe{}", b'{"schema": "\xe9"}', json.dumps({"schema": 1}).encode("utf-16")],
    ids=["invalid-start", "latin-1", "utf-16"],
)
def test_non_utf8_bytes(data: bytes) -> None:
    """Bytes that are not UTF-8 are a RecordError saying so."""
    error = parse_error(data)
    assert_names_location(error)
    assert "UTF-8" in error.problem


class _WritesMarker:
    """An object whose unpickling creates a file: a stand-in for a malicious pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        return (Path.write_text, (self.marker, "code ran"))


def malicious_pickle(marker: Path, protocol: int) -> bytes:
    """A pickled dict that looks like a record and writes ``marker`` when unpickled."""
    return pickle.dumps({"schema": 1, "task": _WritesMarker(marker)}, protocol=protocol)


def test_malicious_pickle_really_runs_code(tmp_path: Path) -> None:
    """Control: unpickling the payload used below does run code (so the next test means it)."""
    marker = tmp_path / "control-marker"
    pickle.loads(malicious_pickle(marker, pickle.HIGHEST_PROTOCOL))
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_is_rejected_without_running_code(tmp_path: Path, protocol: int) -> None:
    """A pickled dict is a RecordError, and parsing it never runs the code inside."""
    marker = tmp_path / "marker"
    error = parse_error(malicious_pickle(marker, protocol))
    assert_names_location(error)
    assert not marker.exists()


@pytest.mark.parametrize(
    "document",
    [[], [1, 2], "record", 1, None, True],
    ids=["empty-list", "list", "string", "number", "null", "bool"],
)
def test_document_not_an_object(document: Any) -> None:
    """A JSON value other than an object is a RecordError."""
    error = parse_error(encode(document))
    assert_names_location(error)
    assert "object" in error.problem


def test_record_wrapped_in_list() -> None:
    """A valid record inside a JSON list is still rejected."""
    error = parse_error(encode([sample_document()]))
    assert "must be an object" in error.problem


@pytest.mark.parametrize("where", ["top", "state"])
def test_deeply_nested_json(where: str) -> None:
    """100000 nested lists are a RecordError, not a RecursionError, wherever they are."""
    depth = 100_000
    nested = "[" * depth + "]" * depth
    if where == "top":
        data = nested.encode()
    else:
        text = encode(sample_document()).decode()
        data = text.replace('"state": {', f'"state": {{"deep": {nested}, ', 1).encode()
        assert nested in data.decode()
    error = parse_error(data)
    assert_names_location(error)


# --- fields --------------------------------------------------------------------------------------

REQUIRED = [
    ("task",),
    ("inputs",),
    ("outputs",),
    ("run",),
    ("task", "family"),
    ("task", "module"),
    ("task", "task_id"),
    ("task", "params"),
    ("task", "code_fingerprint"),
    ("inputs", 0, "key"),
    ("inputs", 0, "uri"),
    ("outputs", 0, "key"),
    ("outputs", 0, "uri"),
    ("outputs", 0, "fingerprint"),
    ("outputs", 0, "size"),
    ("run", "run_id"),
    ("run", "started"),
    ("run", "ended"),
    ("run", "duration_s"),
    ("run", "host"),
    ("run", "pid"),
]


@pytest.mark.parametrize("path", REQUIRED, ids=lambda p: ".".join(map(str, p)))
def test_missing_field(path: Tuple[Any, ...]) -> None:
    """A record without a required field is a RecordError naming the field."""
    document = sample_document()
    parent: Any = document
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    error = parse_error(encode(document))
    assert_names_location(error)
    assert "missing" in error.problem
    assert str(path[-1]) in error.problem


OPTIONAL = [
    ("tool",),
    ("task", "code_version"),
    ("inputs", 0, "output_key"),
    ("inputs", 0, "fingerprint"),
    ("inputs", 0, "task_id"),
    ("inputs", 0, "task_family"),
    ("inputs", 0, "task_module"),
    ("inputs", 0, "task_params"),
    ("inputs", 0, "dynamic"),
    ("inputs", 0, "manifest"),
    ("outputs", 0, "state"),
    ("outputs", 0, "manifest"),
    ("run", "versions"),
    ("run", "packages"),
    ("run", "adopted"),
]


@pytest.mark.parametrize("path", OPTIONAL, ids=lambda p: ".".join(map(str, p)))
def test_optional_field_may_be_absent(path: Tuple[Any, ...]) -> None:
    """A record without an optional field parses, with the field at its default."""
    document = sample_document()
    parent: Any = document
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    record = parse_record(encode(document), LOCATION)
    assert record.task.family == SAMPLE.task.family
    if path != ("tool",):
        value: Any = record
        for part in path:
            value = value[part] if isinstance(part, int) else getattr(value, part)
        assert value in (None, False, (), {})


WRONG_TYPES: List[Tuple[Tuple[Any, ...], Any, str]] = [
    (("task",), [], "task"),
    (("task", "family"), 1, "task.family"),
    (("task", "module"), None, "task.module"),
    (("task", "task_id"), ["x"], "task.task_id"),
    (("task", "params"), [], "task.params"),
    (("task", "code_fingerprint"), 3, "task.code_fingerprint"),
    (("task", "code_fingerprint"), "no-algorithm", "task.code_fingerprint"),
    (("task", "code_fingerprint"), "sha256:", "task.code_fingerprint"),
    (("task", "code_version"), 3, "task.code_version"),
    (("inputs",), {}, "inputs"),
    (("inputs", 0), "entry", "inputs[0]"),
    (("inputs", 0, "key"), "raw", "inputs[0].key"),
    (("inputs", 0, "key"), [True], "inputs[0].key"),
    (("inputs", 0, "key"), [1.5], "inputs[0].key"),
    (("inputs", 0, "output_key"), {}, "inputs[0].output_key"),
    (("inputs", 0, "uri"), 1, "inputs[0].uri"),
    (("inputs", 0, "fingerprint"), 1, "inputs[0].fingerprint"),
    (("inputs", 0, "fingerprint"), "deadbeef", "inputs[0].fingerprint"),
    (("inputs", 0, "task_id"), 1, "inputs[0].task_id"),
    (("inputs", 0, "task_family"), False, "inputs[0].task_family"),
    (("inputs", 0, "task_module"), [], "inputs[0].task_module"),
    (("inputs", 0, "task_params"), [], "inputs[0].task_params"),
    (("inputs", 0, "task_params"), {"name": 1}, "inputs[0].task_params"),
    (("inputs", 0, "dynamic"), "yes", "inputs[0].dynamic"),
    (("inputs", 0, "dynamic"), 1, "inputs[0].dynamic"),
    (("inputs", 0, "manifest"), [], "inputs[0].manifest"),
    (("inputs", 0, "manifest"), {"a.txt": "0a"}, "inputs[0].manifest"),
    (("outputs",), {}, "outputs"),
    (("outputs", 0), 1, "outputs[0]"),
    (("outputs", 0, "key"), None, "outputs[0].key"),
    (("outputs", 0, "uri"), None, "outputs[0].uri"),
    (("outputs", 0, "fingerprint"), None, "outputs[0].fingerprint"),
    (("outputs", 0, "size"), "1234", "outputs[0].size"),
    (("outputs", 0, "size"), 12.5, "outputs[0].size"),
    (("outputs", 0, "size"), True, "outputs[0].size"),
    (("outputs", 0, "size"), -1, "outputs[0].size"),
    (("outputs", 0, "state"), [], "outputs[0].state"),
    (("outputs", 0, "manifest"), "sha256:00", "outputs[0].manifest"),
    (("run",), "run", "run"),
    (("run", "run_id"), 1, "run.run_id"),
    (("run", "started"), 1, "run.started"),
    (("run", "ended"), None, "run.ended"),
    (("run", "duration_s"), "1.25", "run.duration_s"),
    (("run", "duration_s"), True, "run.duration_s"),
    (("run", "host"), {}, "run.host"),
    (("run", "pid"), 1.0, "run.pid"),
    (("run", "pid"), "4242", "run.pid"),
    (("run", "versions"), [], "run.versions"),
    (("run", "versions"), {"python": 3.11}, "run.versions"),
    (("run", "packages"), {"pandas": None}, "run.packages"),
    (("run", "adopted"), "no", "run.adopted"),
    (("signature",), 5, "signature"),
]


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [pytest.param(*case, id=f"{case[2]}={case[1]!r}") for case in WRONG_TYPES],
)
def test_wrong_type(path: Tuple[Any, ...], value: Any, named: str) -> None:
    """A field holding the wrong type (or an impossible value) is a RecordError naming it."""
    document = sample_document()
    set_path(document, path, value)
    error = parse_error(encode(document))
    assert_names_location(error)
    assert named in error.problem


def test_no_outputs() -> None:
    """A record that lists no outputs is a RecordError."""
    document = sample_document()
    document["outputs"] = []
    error = parse_error(encode(document))
    assert_names_location(error)
    assert "no outputs" in error.problem


def test_future_schema_asks_for_upgrade() -> None:
    """A record of a newer schema is a RecordError that tells the user to upgrade."""
    document = sample_document()
    document["schema"] = SCHEMA_VERSION + 1
    error = parse_error(encode(document))
    assert_names_location(error)
    assert "upgrade" in error.problem
    assert str(SCHEMA_VERSION + 1) in error.problem


@pytest.mark.parametrize(
    "schema", [0, -1, "1", True, 1.0, None, [1]], ids=lambda v: f"{type(v).__name__}-{v!r}"
)
def test_invalid_schema(schema: Any) -> None:
    """A schema that is not a positive integer (0, a string, a boolean…) is a RecordError."""
    document = sample_document()
    document["schema"] = schema
    error = parse_error(encode(document))
    assert_names_location(error)
    assert "schema" in error.problem


def test_missing_schema() -> None:
    """A record without a schema version is a RecordError."""
    document = sample_document()
    del document["schema"]
    assert "schema" in parse_error(encode(document)).problem


def test_unknown_fields_are_ignored() -> None:
    """Fields this version does not know, at every level, do not stop the record from parsing."""
    document = sample_document()
    document["comment"] = "added by a later minor version"
    document["task"]["owner"] = {"team": "data"}
    document["inputs"][0]["size"] = 10
    document["outputs"][0]["etag"] = "abc"
    document["run"]["user"] = "me"
    assert parse_record(encode(document), LOCATION) == SAMPLE


@given(records, st.dictionaries(st.text(min_size=1).map("x-{}".format), st.integers(), max_size=3))
@RECORDS
def test_unknown_top_level_fields_are_ignored(record: Record, extra: Dict[str, int]) -> None:
    """Any record with extra unknown top-level fields parses to the same Record."""
    document = json.loads(dump_record(record))
    document.update(extra)
    assert parse_record(encode(document), LOCATION) == record


# --- signatures ----------------------------------------------------------------------------------


@given(records, signing_keys)
@RECORDS
def test_signed_round_trip(record: Record, key: bytes) -> None:
    """A record signed with a key parses with that key, keeping its signature."""
    parsed = parse_record(dump_record(record, signing_key=key), LOCATION, key)
    assert parsed.signature is not None
    assert parsed.signature.startswith("hmac-sha256:")
    assert parsed == attrs.evolve(record, signature=parsed.signature)


@given(records, signing_keys, signing_keys)
@RECORDS
def test_other_key_is_rejected(record: Record, key: bytes, other: bytes) -> None:
    """A record signed with one key is a RecordError when checked with another."""
    if key == other:
        other = key + b"!"
    error = parse_error(dump_record(record, signing_key=key), other)
    assert_names_location(error)
    assert "signature" in error.problem


def test_unsigned_record_with_key_is_rejected() -> None:
    """An unsigned record is a RecordError when a signing key is configured."""
    error = parse_error(dump_record(SAMPLE), KEY)
    assert_names_location(error)
    assert "unsigned" in error.problem


def test_signed_record_without_key_parses() -> None:
    """A signed record parses when no key is configured, and keeps its signature."""
    parsed = parse_record(dump_record(SAMPLE, signing_key=KEY), LOCATION)
    assert parsed == attrs.evolve(SAMPLE, signature=parsed.signature)
    assert parsed.signature is not None


def test_signature_depends_on_the_key() -> None:
    """Two keys sign the same record differently, and one key always signs it the same."""
    assert dump_record(SAMPLE, signing_key=KEY) == dump_record(SAMPLE, signing_key=KEY)
    assert dump_record(SAMPLE, signing_key=KEY) != dump_record(SAMPLE, signing_key=b"other")


@given(altered_signed_documents())
@RECORDS
def test_altered_value_is_rejected(case: Tuple[bytes, Dict[str, Any], Dict[str, Any]]) -> None:
    """Changing any value of a signed record makes it a RecordError under the key."""
    key, signed, altered = case
    assert parse_record(encode(signed), LOCATION, key).signature == signed["signature"]
    error = parse_error(encode(altered), key)
    assert_names_location(error)
    assert "signature" in error.problem


@pytest.mark.parametrize("change", ["add", "remove"])
def test_added_or_removed_field_is_rejected(change: str) -> None:
    """Adding or removing a field of a signed record makes it a RecordError under the key."""
    document = sample_document(KEY)
    if change == "add":
        document["run"]["note"] = "forged"
    else:
        del document["inputs"][0]["manifest"]
    error = parse_error(encode(document), KEY)
    assert "signature" in error.problem


@given(records, signing_keys)
@RECORDS
def test_signature_survives_reformatting(record: Record, key: bytes) -> None:
    """A signed record re-saved with other whitespace, key order and escaping still verifies."""
    document = json.loads(dump_record(record, signing_key=key))
    reformatted = json.dumps(reversed_dicts(document), ensure_ascii=True).encode()
    assert parse_record(reformatted, LOCATION, key).signature == document["signature"]


def test_every_sample_leaf_is_signed() -> None:
    """Each scalar of the signed sample, changed alone, breaks the signature."""
    signed = sample_document(KEY)
    paths = [p for p in leaf_paths(signed) if p[0] not in ("signature", "schema")]
    assert len(paths) > 30
    for path in paths:
        altered = copy.deepcopy(signed)
        set_path(altered, path, ["changed"])
        assert "signature" in parse_error(encode(altered), KEY).problem, path


# --- fuzzing -------------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_fuzz_bytes(data: bytes) -> None:
    """Arbitrary bytes either parse or raise RecordError, never anything else."""
    result = outcome(data)
    assert isinstance(result, Record) or result.location == LOCATION


@given(json_documents, st.sampled_from([None, KEY]))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_json(document: Any, key: Optional[bytes]) -> None:
    """Arbitrary JSON documents, with or without a key, parse or raise RecordError only."""
    result = outcome(encode(document), key)
    if isinstance(result, RecordError):
        assert result.location == LOCATION
    else:
        assert result.outputs


# --- bugs ----------------------------------------------------------------------------------------


def test_huge_duration_is_a_record_error() -> None:
    """A duration too large for a float is a RecordError, not an OverflowError."""
    document = sample_document()
    document["run"]["duration_s"] = 10**400
    assert "duration_s" in parse_error(encode(document)).problem


def test_non_ascii_signature_is_a_record_error() -> None:
    """A forged signature with non-ASCII characters is a RecordError when a key is given."""
    document = sample_document(KEY)
    document["signature"] = "hmac-sha256:é"
    assert "signature" in parse_error(encode(document), KEY).problem


def test_lone_surrogate_with_key_is_a_record_error() -> None:
    """A signed record holding a lone surrogate escape is a RecordError when a key is given."""
    data = dump_record(SAMPLE, signing_key=KEY).replace(b'"r-1"', b'"\\ud800"')
    assert b"\\ud800" in data
    parse_error(data, KEY)
