"""Hypothesis strategies for records: valid ``Record`` objects and arbitrary JSON documents.

Every strategy that builds records, record-like documents or the parameter values that go into
them lives here, so that the tests of the record format, of parameters, of the judge and of the
command line draw from the same population.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple, Union

from hypothesis import strategies as st
from luigi.freezing import FrozenOrderedDict

from luigi_repro.fingerprint import ALGORITHMS
from luigi_repro.record import InputEntry, OutputEntry, Record, RunSection, TaskSection, dump_record

__all__ = [
    "altered_signed_documents",
    "fingerprints",
    "get_at",
    "json_documents",
    "json_scalars",
    "json_values",
    "keys",
    "leaf_paths",
    "manifests",
    "mutated_record_documents",
    "record_documents",
    "records",
    "signing_keys",
    "uris",
    "values_holding_a_set",
]

Path = Tuple[Union[str, int], ...]

#: Short text of any Unicode (Hypothesis never draws lone surrogates here; they are not UTF-8).
names = st.text(max_size=8)

#: Scalars as ``json.loads`` returns them. Floats are finite: NaN is not equal to itself.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)

#: Any JSON value (objects, arrays and scalars, nested a few levels).
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(names, children, max_size=3),
    ),
    max_leaves=6,
)

#: ``"<algorithm>:<hex digest>"``, with the algorithms luigi_repro knows.
fingerprints = st.builds(
    "{}:{}".format,
    st.sampled_from(sorted(ALGORITHMS)),
    st.text(alphabet="0123456789abcdef", min_size=1, max_size=32),
)

#: A position in a nested ``requires()``/``output()`` structure: dict keys and list indexes.
keys = st.lists(st.one_of(names, st.integers()), max_size=3).map(tuple)

#: URIs of local files and remote objects, Unicode included.
uris = st.one_of(
    st.text(min_size=1, max_size=20),
    st.builds("s3://bucket/{}".format, st.text(max_size=12)),
    st.builds("/data/{}/{}.csv".format, names, names),
)

#: A folder's manifest: relative path -> fingerprint (or no manifest at all).
manifests = st.none() | st.dictionaries(st.text(min_size=1, max_size=12), fingerprints, max_size=3)

str_maps = st.dictionaries(names, st.text(max_size=10), max_size=3)

task_sections = st.builds(
    TaskSection,
    family=names,
    module=names,
    task_id=names,
    params=st.dictionaries(names, json_values, max_size=3),
    code_fingerprint=fingerprints,
    code_version=st.none() | names,
    code_parts=st.none() | st.dictionaries(names, fingerprints, max_size=3),
    code_unresolved=st.lists(names, max_size=2).map(tuple),
)

#: How a target was fingerprinted: a ``type`` and options.
target_descriptions = st.none() | st.builds(
    lambda kind, options: {**options, "type": kind},
    names,
    st.dictionaries(names, json_scalars, max_size=2),
)

input_entries = st.builds(
    InputEntry,
    key=keys,
    output_key=keys,
    uri=uris,
    fingerprint=st.none() | fingerprints,
    task_id=st.none() | names,
    task_family=st.none() | names,
    task_module=st.none() | names,
    task_params=st.none() | str_maps,
    dynamic=st.booleans(),
    manifest=manifests,
    recorded=st.booleans(),
    undeclared=st.booleans(),
    target=target_descriptions,
)

output_entries = st.builds(
    OutputEntry,
    key=keys,
    uri=uris,
    fingerprint=fingerprints,
    size=st.integers(min_value=0),
    state=st.dictionaries(names, json_values, max_size=3),
    manifest=manifests,
    target=target_descriptions,
)

run_sections = st.builds(
    RunSection,
    run_id=names,
    started=names,
    ended=names,
    duration_s=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    host=names,
    pid=st.integers(min_value=0, max_value=2**31),
    versions=str_maps,
    packages=str_maps,
    adopted=st.booleans(),
)

#: Valid, unsigned records of the current schema.
records = st.builds(
    Record,
    task=task_sections,
    inputs=st.lists(input_entries, max_size=2).map(tuple),
    outputs=st.lists(output_entries, min_size=1, max_size=2).map(tuple),
    run=run_sections,
    beside=st.none() | keys,
    undeclared_reads=st.lists(uris, max_size=2).map(tuple),
)

#: HMAC keys as a user would put them in an environment variable.
signing_keys = st.binary(min_size=1, max_size=32)


def _as_document(record: Record) -> Dict[str, Any]:
    document: Dict[str, Any] = json.loads(dump_record(record))
    return document


#: Valid records as the JSON documents a reader finds on disk.
record_documents = records.map(_as_document)


def leaf_paths(value: Any, prefix: Path = ()) -> List[Path]:
    """The path of every scalar, empty list and empty object inside a JSON value."""
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaf_paths(v, (*prefix, k))]
    if isinstance(value, list) and value:
        return [p for i, v in enumerate(value) for p in leaf_paths(v, (*prefix, i))]
    return [prefix]


def _all_paths(value: Any, prefix: Path = ()) -> List[Path]:
    paths = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            paths.extend(_all_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            paths.extend(_all_paths(v, (*prefix, i)))
    return paths


def _parent(document: Any, path: Path) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


def get_at(document: Any, path: Path) -> Any:
    """The value at ``path`` inside a JSON document."""
    return _parent(document, path)[path[-1]] if path else document


@st.composite
def mutated_record_documents(draw: st.DrawFn) -> Any:
    """A valid record document with one part, at any depth, replaced by any JSON or removed."""
    document = draw(record_documents)
    path = draw(st.sampled_from(_all_paths(document)))
    if not path:
        return draw(json_values)
    parent = _parent(document, path)
    if draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return document


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@st.composite
def altered_signed_documents(draw: st.DrawFn) -> Tuple[bytes, Dict[str, Any], Dict[str, Any]]:
    """``(key, signed, altered)``: a signed record document and a copy with one value changed.

    The change is anywhere but in ``signature`` and ``schema`` (which is checked first), and it
    really changes the document: the new value's JSON differs from the old one's.
    """
    key = draw(signing_keys)
    signed: Dict[str, Any] = json.loads(dump_record(draw(records), signing_key=key))
    paths = [p for p in leaf_paths(signed) if p[0] not in ("signature", "schema")]
    path = draw(st.sampled_from(paths))
    old = get_at(signed, path)
    new = draw(json_values.filter(lambda v: _canonical(v) != _canonical(old)))
    altered = json.loads(json.dumps(signed))
    _parent(altered, path)[path[-1]] = new
    return key, signed, altered


#: Arbitrary JSON documents: anything at all, or a record with one part broken.
json_documents = st.one_of(json_values, mutated_record_documents())


# --- parameter values ----------------------------------------------------------------------------


@st.composite
def values_holding_a_set(draw: st.DrawFn) -> Any:
    """A parameter value with a set or frozenset somewhere inside lists, tuples and mappings."""
    value: Any = draw(
        st.sets(st.integers(), max_size=3) | st.frozensets(st.text(max_size=3), max_size=3)
    )
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        siblings: List[Any] = draw(st.lists(json_values, max_size=2))
        siblings.insert(draw(st.integers(min_value=0, max_value=len(siblings))), value)
        kind = draw(st.sampled_from(["list", "tuple", "dict", "frozen"]))
        if kind == "list":
            value = siblings
        elif kind == "tuple":
            value = tuple(siblings)
        else:
            items = {f"k{i}": item for i, item in enumerate(siblings)}
            value = items if kind == "dict" else FrozenOrderedDict(items)
    return value


def reversed_dicts(value: Any) -> Any:
    """The same JSON value with the insertion order of every object reversed."""
    if isinstance(value, dict):
        return {k: reversed_dicts(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_dicts(v) for v in value]
    return value
