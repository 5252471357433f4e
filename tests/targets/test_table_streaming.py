"""Table fingerprints computed batch after batch equal those of the whole table."""

from __future__ import annotations

from typing import Any, List, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luigi_repro.tablehash import NeedsWholeTable, TableDigest, fingerprint_table
from luigi_repro.targets import CsvTarget, FeatherTarget, ParquetTarget
from luigi_repro.targets import dataframe as dataframe_module
from luigi_repro.testing import context, fresh_name

WORDS = ["", "a", "b", "ccc", "dé", "e" * 20]
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def pieces(draw: Any, rows: int, scalar_only: bool, dictionary: List[str]) -> pa.RecordBatch:
    """``rows`` rows of every kind of column; the dictionary column uses ``dictionary``."""

    def maybe(values: Any) -> Any:
        return st.lists(st.one_of(st.none(), values), min_size=rows, max_size=rows)

    columns = {
        "i": pa.array(draw(maybe(st.integers(-(2**63), 2**63 - 1))), pa.int64()),
        "f": pa.array(draw(maybe(st.floats(allow_nan=True))), pa.float64()),
        "s": pa.array(draw(maybe(st.sampled_from(WORDS))), pa.string()),
        "b": pa.array(draw(maybe(st.booleans())), pa.bool_()),
    }
    if scalar_only:
        return pa.record_batch(columns)
    codes = draw(maybe(st.integers(0, len(dictionary) - 1))) if dictionary else [None] * rows
    columns["d"] = pa.DictionaryArray.from_arrays(
        pa.array(codes, pa.int32()), pa.array(dictionary, pa.string())
    )
    columns["l"] = pa.array(
        draw(maybe(st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=3))),
        pa.list_(pa.int64()),
    )
    structs = draw(
        maybe(st.fixed_dictionaries({"x": st.integers(0, 9), "y": st.sampled_from(WORDS)}))
    )
    columns["st"] = pa.array(structs, pa.struct([("x", pa.int64()), ("y", pa.string())]))
    return pa.record_batch(columns)


@st.composite
def tables(draw: Any, scalar_only: bool = False, distinct: bool = True) -> pa.Table:
    """A table in pieces whose dictionaries may differ, with pandas metadata or without.

    Every piece has rows: re-cutting a table into batches drops its empty chunks, whose
    dictionaries (and, in a table without rows, whose mere presence) count.
    """
    sizes = draw(st.lists(st.integers(1, 8), min_size=1, max_size=4))
    words = st.sampled_from(WORDS[1:])
    shared = draw(st.lists(words, min_size=1, max_size=4, unique=distinct))
    batches = []
    for rows in sizes:
        own = draw(st.lists(words, min_size=1, max_size=4, unique=distinct))
        batches.append(draw(pieces(rows, scalar_only, draw(st.sampled_from([shared, own])))))
    table = pa.Table.from_batches(batches)
    if distinct and draw(st.booleans()):  # pandas metadata, categoricals included
        metadata = pa.Table.from_pandas(table.slice(0, 1).to_pandas(), preserve_index=False)
        table = table.replace_schema_metadata(metadata.schema.metadata)
    return table


def streamed(table: pa.Table, cuts: List[int]) -> str:
    digest = TableDigest(table.schema, "xxh3_128")
    start = 0
    for end in [*sorted(cut % (table.num_rows + 1) for cut in cuts), table.num_rows]:
        digest.add(table.slice(start, end - start))
        start = end
    return digest.hexdigest()


@SETTINGS
@given(table=tables(), size=st.integers(1, 40), cuts=st.lists(st.integers(0, 80), max_size=6))
def test_batches_of_any_size_give_the_whole_table_fingerprint(
    table: pa.Table, size: int, cuts: List[int]
) -> None:
    whole = fingerprint_table(table, "xxh3_128")
    digest = TableDigest(table.schema, "xxh3_128")
    for batch in table.to_batches(max_chunksize=size):
        digest.add(batch)
    assert digest.hexdigest() == whole
    assert streamed(table, cuts) == whole
    assert streamed(table.combine_chunks(), cuts) == fingerprint_table(
        table.combine_chunks(), "xxh3_128"
    )


@SETTINGS
@given(table=tables(distinct=False), size=st.integers(1, 40))
def test_a_dictionary_repeating_a_value_streams_or_asks_for_the_whole_table(
    table: pa.Table, size: int
) -> None:
    digest = TableDigest(table.schema, "xxh3_128")
    batches = table.to_batches(max_chunksize=size)
    try:
        for batch in batches:
            digest.add(batch)
    except NeedsWholeTable:
        first = table.column("d").chunk(0).dictionary
        assert len(set(first.to_pylist())) < len(first)
        assert len(batches) > 1
    else:
        assert digest.hexdigest() == fingerprint_table(table, "xxh3_128")


def test_empty_batches_count_as_empty_chunks_do() -> None:
    """An empty piece's dictionary joins the column's dictionary, batch or chunk alike."""
    codes = pa.array([0], pa.int32())
    first = pa.DictionaryArray.from_arrays(codes, pa.array(["a"]))
    empty = pa.DictionaryArray.from_arrays(codes.slice(0, 0), pa.array(["b", "a"]))
    last = pa.DictionaryArray.from_arrays(codes, pa.array(["c"]))
    batches = [pa.record_batch({"d": array}) for array in (first, empty, last)]
    table = pa.Table.from_batches(batches)
    digest = TableDigest(table.schema, "xxh3_128")
    for batch in batches:
        digest.add(batch)
    assert digest.hexdigest() == fingerprint_table(table, "xxh3_128")
    without_empty = pa.Table.from_batches([batches[0], batches[2]])
    assert fingerprint_table(without_empty, "xxh3_128") != fingerprint_table(table, "xxh3_128")


def file_fingerprints(target: Any, read_bytes: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    """(streamed fingerprint, fingerprint of the table read whole) of one target's file."""
    monkeypatch.setattr(dataframe_module, "PARQUET_READ_BYTES", read_bytes)
    whole = fingerprint_table(target._read_for_fingerprint(target.path), "xxh3_128")
    return target.observe(context(full=True)).fingerprint, whole


@SETTINGS
@given(
    table=st.one_of(tables(), tables(distinct=False)),
    group=st.integers(1, 30),
    read_bytes=st.sampled_from([1, 64, 4096, 16 << 20]),
    dictionary=st.booleans(),
)
def test_parquet_files_stream_to_their_fingerprint(
    monkeypatch: pytest.MonkeyPatch, table: pa.Table, group: int, read_bytes: int, dictionary: bool
) -> None:
    target = ParquetTarget(f"{fresh_name()}.parquet")
    pq.write_table(table, target.path, row_group_size=group, use_dictionary=dictionary)
    streamed_value, whole = file_fingerprints(target, read_bytes, monkeypatch)
    assert streamed_value == whole


@SETTINGS
@given(
    table=st.one_of(tables(), tables(distinct=False)),
    chunk=st.integers(1, 30),
    compressed=st.booleans(),
)
def test_feather_files_stream_to_their_fingerprint(
    monkeypatch: pytest.MonkeyPatch, table: pa.Table, chunk: int, compressed: bool
) -> None:
    target = FeatherTarget(f"{fresh_name()}.arrow")
    table = table.unify_dictionaries()  # the IPC file format has one dictionary per column
    compression: Optional[str] = "lz4" if compressed else "uncompressed"
    feather.write_feather(table, target.path, chunksize=chunk, compression=compression)
    streamed_value, whole = file_fingerprints(target, 1, monkeypatch)
    assert streamed_value == whole


@SETTINGS
@given(table=tables(scalar_only=True), block=st.integers(1, 4))
def test_csv_files_stream_to_their_fingerprint(
    monkeypatch: pytest.MonkeyPatch, table: pa.Table, block: int
) -> None:
    target = CsvTarget(f"{fresh_name()}.csv")
    target.dump(table)
    streamed_value, whole = file_fingerprints(target, 1, monkeypatch)
    assert streamed_value == whole


@pytest.mark.filterwarnings("ignore:Feather V1 files are deprecated:DeprecationWarning")
def test_feather_version_1_is_still_fingerprinted(monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.table({"x": [1, 2, 3], "s": ["a", None, "c"]})
    target = FeatherTarget("old.feather", version=1)
    target.dump(table)
    streamed_value, whole = file_fingerprints(target, 1, monkeypatch)
    assert streamed_value == whole == fingerprint_table(table, "xxh3_128")


def test_empty_tables_keep_their_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.table({"x": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    for target in (ParquetTarget("e.parquet"), FeatherTarget("e.arrow"), CsvTarget("e.csv")):
        target.dump(table)
        streamed_value, whole = file_fingerprints(target, 1, monkeypatch)
        assert streamed_value == whole


def test_a_batch_of_another_table_is_refused() -> None:
    digest = TableDigest(pa.schema([("x", pa.int64())]), "xxh3_128")
    with pytest.raises(ValueError, match="does not belong to a table"):
        digest.add(pa.record_batch({"x": pa.array(["a"])}))


def test_parquet_columns_of_every_shape_are_read_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Maps, fixed-size lists, lists of structs and a name that looks like a nested path."""
    table = pa.table(
        {
            "a": pa.array([{"b": 1, "c": "x"}, None, {"b": 3, "c": None}]),
            "a.b": pa.array([7, 8, 9]),
            "m": pa.array([[("k", 1)], None, []], pa.map_(pa.string(), pa.int64())),
            "fixed": pa.array([[1, 2], None, [5, 6]], pa.list_(pa.int64(), 2)),
            "ls": pa.array([[{"x": 1}], [], None], pa.list_(pa.struct([("x", pa.int64())]))),
        }
    )
    target = ParquetTarget("shapes.parquet", row_group_size=2)
    target.dump(table)
    for read_bytes in (1, 16 << 20):
        streamed_value, whole = file_fingerprints(target, read_bytes, monkeypatch)
        assert streamed_value == whole == fingerprint_table(table, "xxh3_128")


@pytest.mark.parametrize("target_cls", [ParquetTarget, FeatherTarget, CsvTarget])
def test_a_frame_file_is_never_read_whole(monkeypatch: pytest.MonkeyPatch, target_cls: Any) -> None:
    """Categoricals (with pandas metadata), strings and numbers in many pieces: all streamed."""
    frame = pd.DataFrame(
        {
            "c": pd.Categorical(["x", "y", "x", None] * 50, categories=["y", "x", "unused"]),
            "s": [f"v{k}" for k in range(200)],
            "f": np.linspace(0, 1, 200),
        }
    )
    if target_cls is CsvTarget:
        frame = frame.drop(columns="c")
    options = {"row_group_size": 30} if target_cls is ParquetTarget else {"chunksize": 30}
    target = (
        target_cls(fresh_name()) if target_cls is CsvTarget else target_cls(fresh_name(), **options)
    )
    target.dump(frame)
    expected = fingerprint_table(target._read_for_fingerprint(target.path), "xxh3_128")

    def refuse(path: str) -> Any:
        raise AssertionError(f"{path} was read whole")

    monkeypatch.setattr(target, "_read_for_fingerprint", refuse)
    assert target.observe(context(full=True)).fingerprint == expected
