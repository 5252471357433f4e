"""DataFrame targets: fingerprints of the data, not of the file's bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import luigi
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipelines import build, families, log_run, runs, write_raw

from luigi_repro import HashableExternalFile, TaskWithCheckingInputHash
from luigi_repro.tablehash import fingerprint_table
from luigi_repro.targets import CsvTarget, FeatherTarget, ParquetTarget
from luigi_repro.testing import Make, Payload, Put, TargetContract, context, fresh_name


def frame(n: int) -> pd.DataFrame:
    """A small frame with several dtypes; ``n`` makes it distinct."""
    return pd.DataFrame(
        {
            "i": np.arange(n + 3, dtype="int64"),
            "f": np.linspace(0, 1, n + 3),
            "s": [f"v{k}" for k in range(n + 3)],
        }
    )


class _FrameContract(TargetContract):
    target_cls: Callable[..., Any] = ParquetTarget
    suffix = ".parquet"

    @pytest.fixture
    def make(self) -> Make:
        return lambda name: self.target_cls(f"out/{name}{self.suffix}")

    @pytest.fixture
    def put(self) -> Put:
        return lambda target, data: target.dump(data)

    @pytest.fixture
    def payload(self) -> Payload:
        return frame


class TestParquet(_FrameContract):
    """ParquetTarget passes the conformance suite."""


class TestFeather(_FrameContract):
    """FeatherTarget passes the conformance suite."""

    target_cls = FeatherTarget
    suffix = ".arrow"


class TestCsv(_FrameContract):
    """CsvTarget passes the conformance suite."""

    target_cls = CsvTarget
    suffix = ".csv"


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "snappy"},
        {"compression": "zstd", "row_group_size": 7},
        {"compression": "none", "use_dictionary": False},
        {"compression": "gzip", "data_page_size": 128, "version": "2.4"},
    ],
    ids=["snappy", "zstd-small-groups", "plain", "gzip-v2.4"],
)
def test_same_data_written_differently_has_one_fingerprint(options: Any) -> None:
    """Other compression, row groups, encodings or format version: the same fingerprint."""
    data = frame(40)
    reference = ParquetTarget("out/reference.parquet", compression="brotli", row_group_size=13)
    reference.dump(data)
    other = ParquetTarget(f"out/{fresh_name()}.parquet", **options)
    other.dump(data)
    assert Path(other.path).read_bytes() != Path(reference.path).read_bytes()
    assert other.observe(context()).fingerprint == reference.observe(context()).fingerprint


def test_parquet_and_feather_of_one_frame_agree() -> None:
    """The fingerprint is of the data: Parquet and Feather files of one frame have the same."""
    data = frame(9)
    parquet, feather = (
        ParquetTarget("out/a.parquet"),
        FeatherTarget("out/a.arrow", compression="lz4"),
    )
    parquet.dump(data)
    feather.dump(data)
    assert parquet.observe(context()).fingerprint == feather.observe(context()).fingerprint


CHANGES = {
    "value": lambda df: df.assign(f=df["f"].where(df.index != 3, 99.5)),
    "null": lambda df: df.assign(s=df["s"].where(df.index != 2, None)),
    "dtype": lambda df: df.astype({"i": "int32"}),
    "column name": lambda df: df.rename(columns={"s": "S"}),
    "column order": lambda df: df[["f", "i", "s"]],
    "row order": lambda df: df.iloc[::-1].reset_index(drop=True),
    "one row less": lambda df: df.iloc[:-1],
    "index": lambda df: df.set_index("s"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_change_of_the_data_changes_the_fingerprint(change: str) -> None:
    """A changed value, null, dtype, name, column or row order, row count or index counts."""
    data = frame(6)
    original, changed = ParquetTarget("out/o.parquet"), ParquetTarget("out/c.parquet")
    original.dump(data)
    changed.dump(CHANGES[change](data))
    assert original.observe(context()).fingerprint != changed.observe(context()).fingerprint


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=30),
    row=st.integers(min_value=0),
    delta=st.integers(min_value=1, max_value=1000),
)
def test_every_single_cell_change_is_seen(values: Any, row: int, delta: int) -> None:
    """Property: changing any one cell of an integer column changes the data fingerprint."""
    table = pa.table({"v": pa.array(values, pa.int64())})
    edited = list(values)
    edited[row % len(values)] += delta
    changed = pa.table({"v": pa.array(edited, pa.int64())})
    assert fingerprint_table(table, "xxh3_128") != fingerprint_table(changed, "xxh3_128")


def test_chunking_does_not_change_the_fingerprint() -> None:
    """A table in many chunks and the same table in one have the same fingerprint."""
    table = pa.Table.from_pandas(frame(50))
    pieces = pa.concat_tables([table.slice(0, 10), table.slice(10, 7), table.slice(17)])
    assert fingerprint_table(table, "xxh3_128") == fingerprint_table(pieces, "xxh3_128")


def test_nested_and_categorical_columns_survive_a_round_trip() -> None:
    """Lists, structs, categoricals, timestamps and nullable booleans: stable through Parquet."""
    data = pd.DataFrame(
        {
            "l": [[1, 2], [], None],
            "st": [{"x": 1, "y": "a"}, {"x": 2, "y": None}, None],
            "c": pd.Categorical(["u", "v", "u"]),
            "t": pd.to_datetime(["2020-01-01", None, "2021-06-30"]),
            "b": pd.array([True, None, False], dtype="boolean"),
        }
    )
    target = ParquetTarget("out/nested.parquet")
    target.dump(data)
    direct = fingerprint_table(pa.Table.from_pandas(data), "xxh3_128")
    assert target.observe(context()).fingerprint == direct
    assert pq.read_table(target.path).num_rows == 3


def test_parquet_keeps_a_meaningful_index() -> None:
    """A non-default index is stored and restored; it is part of the fingerprint."""
    data = frame(4).set_index("s")
    target = ParquetTarget("out/indexed.parquet")
    target.dump(data)
    assert target.load().index.tolist() == data.index.tolist()
    flat = ParquetTarget("out/flat.parquet")
    flat.dump(data.reset_index())
    assert target.observe(context()).fingerprint != flat.observe(context()).fingerprint


def test_parquet_drops_the_index_only_when_told() -> None:
    """index=False is an explicit choice to drop the index."""
    target = ParquetTarget("out/dropped.parquet", index=False)
    target.dump(frame(4).set_index("s"))
    assert "s" not in target.load().columns
    assert list(target.load().index) == [0, 1, 2, 3, 4, 5, 6]


def test_csv_refuses_to_drop_a_meaningful_index() -> None:
    """CSV cannot keep an index: a meaningful one is refused unless written as columns."""
    data = frame(2).set_index("s")
    with pytest.raises(ValueError, match="meaningful index"):
        CsvTarget("out/x.csv").dump(data)
    kept = CsvTarget("out/x.csv", index=True)
    kept.dump(data)
    assert list(kept.load().columns) == ["s", "i", "f"]


def test_unchanged_table_file_is_not_decoded_again() -> None:
    """While the file's stat is unchanged, the table is not read to re-check it."""
    target = ParquetTarget("out/once.parquet")
    target.dump(frame(5))
    first = target.observe(context())
    check = context()
    assert target.observe(check, first).fingerprint == first.fingerprint
    assert check.counters.files_hashed == 0


class Numbers(TaskWithCheckingInputHash):
    """Parses a raw text file into a table."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/numbers.txt")

    def output(self) -> ParquetTarget:
        return ParquetTarget("out/numbers.parquet", compression="snappy")

    def run(self) -> None:
        log_run(self)
        values = [int(v) for v in self.input().open().read().split()]
        self.output().dump(pd.DataFrame({"value": sorted(values)}))


class Stats(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return Numbers()

    def output(self) -> FeatherTarget:
        return FeatherTarget("out/stats.arrow")

    def run(self) -> None:
        log_run(self)
        values = self.input().load()["value"]
        self.output().dump(pd.DataFrame({"total": [int(values.sum())], "n": [len(values)]}))


def test_pipeline_early_cutoff_on_equal_data() -> None:
    """Raw numbers reordered: the sorted table is the same data, so Stats does not rerun."""
    write_raw("numbers", "3 1 2")
    assert build(Stats())
    assert families(runs()) == ["Numbers", "Stats"]
    write_raw("numbers", "2 3 1")
    assert not Stats().complete()
    assert build(Stats())
    assert families(runs()) == ["Numbers"]
    write_raw("numbers", "2 3 1 4")
    assert build(Stats())
    assert families(runs()) == ["Numbers", "Stats"]
    assert Stats().output().load()["total"].tolist() == [10]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_nan_is_the_same_nan(dtype: str) -> None:
    """NaNs with different bit patterns are one value; a NaN and a number are not."""
    quiet = np.array([1.0, np.nan, 3.0], dtype=dtype)
    payload = quiet.copy()
    payload.view(np.uint32 if dtype == "float32" else np.uint64)[1] |= 0x7  # another NaN
    assert np.isnan(payload[1])
    assert quiet.tobytes() != payload.tobytes()
    as_table = lambda values: pa.table({"x": pa.array(values)})  # noqa: E731 - local helper
    assert fingerprint_table(as_table(quiet), "xxh3_128") == fingerprint_table(
        as_table(payload), "xxh3_128"
    )
    number = quiet.copy()
    number[1] = 2.0
    assert fingerprint_table(as_table(number), "xxh3_128") != fingerprint_table(
        as_table(quiet), "xxh3_128"
    )


def table_fingerprint_of(data: Any) -> str:
    target = ParquetTarget(f"out/{fresh_name()}.parquet")
    target.dump(data)
    return target.observe(context()).fingerprint


def test_category_order_and_unused_categories_count() -> None:
    """Categories are data: their order and the unused ones change what a frame means."""
    values = ["S", "M", "L", "M"]
    ordered = pd.Categorical(values, categories=["S", "M", "L"], ordered=True)
    reversed_order = pd.Categorical(values, categories=["L", "M", "S"], ordered=True)
    with_unused = pd.Categorical(values, categories=["S", "M", "L", "XL"], ordered=True)
    fingerprints = {
        table_fingerprint_of(pd.DataFrame({"size": column}))
        for column in (ordered, reversed_order, with_unused)
    }
    assert len(fingerprints) == 3


def test_pandas_dtypes_and_labels_that_load_differently_differ() -> None:
    """Int64 vs int64, a named column index, label 0 vs "0": different frames on load()."""
    base = pd.DataFrame({"a": [1, 2]})
    variants = [
        base,
        base.astype({"a": "Int64"}),
        base.rename_axis(columns="letters"),
        pd.DataFrame({0: [1, 2]}),
        pd.DataFrame({"0": [1, 2]}),
    ]
    assert len({table_fingerprint_of(frame) for frame in variants}) == len(variants)


def test_extension_columns_have_one_fingerprint_everywhere(tmp_path: Path) -> None:
    """A pandas Period column: same fingerprint where its extension type is not registered."""
    import subprocess
    import sys

    target = ParquetTarget("out/periods.parquet")
    target.dump(pd.DataFrame({"p": pd.period_range("2020-01", periods=4, freq="M")}))
    here = target.observe(context(full=True)).fingerprint
    script = (
        "import contextlib, pyarrow as pa, pyarrow.parquet as pq, sys\n"
        "from luigi_repro.tablehash import fingerprint_table\n"
        "with contextlib.suppress(KeyError):\n"
        "    pa.unregister_extension_type('pandas.period')\n"
        "table = pq.read_table(sys.argv[1])\n"
        "assert not isinstance(table.schema.field('p').type, pa.ExtensionType)\n"
        "print(fingerprint_table(table, 'xxh3_128'))\n"
    )
    elsewhere = subprocess.run(
        [sys.executable, "-c", script, target.path], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert elsewhere == here
    days = pd.DataFrame({"p": pd.period_range("1970-01-11", periods=4, freq="D")})
    assert table_fingerprint_of(days) != here


def test_nested_and_exotic_types_ignore_layout() -> None:
    """Fixed-size lists, maps and decimals: stable through row groups and formats; intervals
    (which Parquet cannot store) are fingerprinted whatever their chunking."""
    table = pa.table(
        {
            "fixed": pa.array([[1, 2], None, [3, None]], pa.list_(pa.int64(), 2)),
            "map": pa.array([[("a", 1)], None, []], pa.map_(pa.string(), pa.int64())),
            "dec": pa.array([None, 1, 2], pa.decimal128(5, 2)),
        }
    )
    one, two = ParquetTarget("out/n1.parquet"), ParquetTarget("out/n2.parquet", row_group_size=1)
    one.dump(table)
    two.dump(table)
    feather = FeatherTarget("out/n3.arrow")
    feather.dump(table)
    assert one.observe(context()).fingerprint == two.observe(context()).fingerprint
    assert one.observe(context()).fingerprint == feather.observe(context()).fingerprint
    intervals = pa.table(
        {"iv": pa.array([(1, 2, 3), None, (0, 0, 1)], pa.month_day_nano_interval())}
    )
    pieces = pa.concat_tables([intervals.slice(0, 1), intervals.slice(1)])
    assert fingerprint_table(intervals, "xxh3_128") == fingerprint_table(pieces, "xxh3_128")


def test_names_cannot_imitate_the_encoding() -> None:
    """Column names are length-prefixed: no name can pose as another column's layout."""
    plain = pa.table({"a": ["x"], "b": [7]})
    crafted = pa.table({"a\0string\0V:all\0\x01\0xC\0b": [7]})
    assert fingerprint_table(plain, "xxh3_128") != fingerprint_table(crafted, "xxh3_128")


def test_null_string_is_not_an_empty_string() -> None:
    """A null and an empty string differ; the bytes under a null do not count."""
    assert fingerprint_table(pa.table({"s": ["", "a"]}), "xxh3_128") != fingerprint_table(
        pa.table({"s": [None, "a"]}), "xxh3_128"
    )


def test_csv_fingerprint_is_of_the_cells_as_written() -> None:
    """CSV cells count as text: "007" vs "7" or "NA" vs "" differ; quoting does not count."""
    target = CsvTarget("out/cells.csv")
    fingerprints = []
    for text in (
        "a,b\n007,1.0\n",
        "a,b\n7,1.00\n",
        '"a","b"\n"007","1.0"\n',
        "a,b\nNA,\n",
        "a,b\n,NA\n",
    ):
        Path("out").mkdir(exist_ok=True)
        Path(target.path).write_text(text)
        fingerprints.append(target.observe(context(full=True)).fingerprint)
    assert fingerprints[0] == fingerprints[2]
    assert len({fingerprints[0], fingerprints[1], fingerprints[3], fingerprints[4]}) == 4


def test_csv_delimiter_round_trips() -> None:
    """The delimiter used to write is used to read back."""
    target = CsvTarget("out/semi.csv", delimiter=";")
    target.dump(frame(2))
    assert Path(target.path).read_text().splitlines()[0] == '"i";"f";"s"'
    assert target.load()["s"].tolist() == ["v0", "v1", "v2", "v3", "v4"]


def test_one_file_read_with_two_delimiters_keeps_two_fingerprints(tmp_path: Path) -> None:
    """Another delimiter reads other cells from the same bytes: neither the stat cache, nor a
    record's state, nor one check's memo lets one stand for the other."""
    import attrs

    from luigi_repro.statcache import PersistentStatCache

    Path("out").mkdir(exist_ok=True)
    Path("out/both.csv").write_text("a;b\n1;2\n3;4\n")
    comma, semicolon = CsvTarget("out/both.csv"), CsvTarget("out/both.csv", delimiter=";")
    cache = PersistentStatCache(str(tmp_path / "cache.sqlite3"))
    shared = attrs.evolve(context(), cache=cache)
    seen_by_comma = comma.observe(shared)
    seen_by_semicolon = semicolon.observe(shared)
    assert seen_by_comma.fingerprint != seen_by_semicolon.fingerprint
    assert semicolon.observe(shared, previous=seen_by_comma).fingerprint == (
        seen_by_semicolon.fingerprint
    )
    assert comma.fingerprint_kind != semicolon.fingerprint_kind


def test_a_csv_delimiter_is_one_character() -> None:
    with pytest.raises(ValueError, match="one character"):
        CsvTarget("out/x.csv", delimiter=";;")
