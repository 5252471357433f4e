"""DataFrame targets (Parquet, Feather / Arrow IPC, CSV), fingerprinted by the data they hold.

``ParquetTarget("out/x.parquet").dump(df)`` writes a pandas DataFrame (or an Arrow table)
atomically; ``load()`` reads it back. The fingerprint is of the *data* — Arrow schema and column
contents (:mod:`luigi_repro.tablehash`) — so the same frame written with another compression,
row-group size or library version keeps its fingerprint and early cutoff works; a changed value,
dtype, column name or row order changes it. Like any local file, the fingerprint is reused while
the file's stat is unchanged, so the data is only decoded again after the file changed. The
data is fingerprinted as it is read, batch after batch: memory stays a few batches however large
the file is.

The index is handled explicitly, never silently dropped:

* Parquet and Feather keep it. ``index=None`` (default) stores a default ``RangeIndex`` as
  metadata and any other index as columns, and ``load()`` restores it; ``index=True`` always
  stores it as columns; ``index=False`` drops it — your explicit choice.
* CSV has nowhere to keep an index. ``index=False`` (default) refuses a frame whose index is not
  the default ``RangeIndex`` (``reset_index()`` it, or pass ``index=True`` to write it as leading
  columns, which ``load()`` returns as ordinary columns).

Needs pandas and pyarrow (``pip install luigi-repro[dataframe]``), imported only when used.
"""

from __future__ import annotations

import os
import stat as stat_module
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from luigi_repro.fingerprint import Counters
from luigi_repro.locking import NEW_FILE_FLAGS
from luigi_repro.statcache import fingerprint_file
from luigi_repro.tablehash import NeedsWholeTable, TableDigest, fingerprint_table, require_pyarrow
from luigi_repro.targets.base import (
    FingerprintContext,
    HashableTarget,
    Observation,
    register_target_type,
)
from luigi_repro.targets.local import HashableLocalTarget, file_hint

__all__ = ["CsvTarget", "FeatherTarget", "ParquetTarget"]

#: The kind of state a table target keeps: a stat that vouches for a *table* fingerprint.
_STATE_KIND = "table-file"

#: Decoded bytes of Parquet column chunks read together while fingerprinting: enough to keep
#: both cores decoding, little enough that a table of any size needs a bounded amount of memory.
PARQUET_READ_BYTES = 16 << 20


def _leaf_count(pa: Any, arrow_type: Any) -> int:
    """How many Parquet columns (leaves) hold a field of this Arrow type."""
    if isinstance(arrow_type, pa.ExtensionType):
        return _leaf_count(pa, arrow_type.storage_type)
    if pa.types.is_struct(arrow_type):
        return sum(_leaf_count(pa, child.type) for child in arrow_type)
    if pa.types.is_map(arrow_type):
        return _leaf_count(pa, arrow_type.key_type) + _leaf_count(pa, arrow_type.item_type)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _leaf_count(pa, arrow_type.value_type)
    if pa.types.is_fixed_size_list(arrow_type):
        return _leaf_count(pa, arrow_type.value_type)
    return 1


def _column_sets(sizes: List[int]) -> Iterator[List[int]]:
    """Consecutive fields, each set about :data:`PARQUET_READ_BYTES` (one field at least)."""
    chosen: List[int] = []
    total = 0
    for index, size in enumerate(sizes):
        if chosen and total + size > PARQUET_READ_BYTES:
            yield chosen
            chosen, total = [], 0
        chosen.append(index)
        total += size
    if chosen:
        yield chosen


def _parquet_column_chunks(parquet: Any) -> Iterator[Tuple[int, Any]]:
    """``(field index, chunk)`` of a ``ParquetFile``: each column's chunks in row order.

    The reader holds what it reads whole, so it reads a few column chunks of one row group at a
    time; the digest keeps every column's streams apart, so columns may come in any order.
    """
    pa = require_pyarrow()
    metadata = parquet.metadata
    leaves = [_leaf_count(pa, field.type) for field in parquet.schema_arrow]
    if sum(leaves) != metadata.num_columns:
        raise NeedsWholeTable("the file's columns do not match its Arrow schema")
    spans = [range(sum(leaves[:index]), sum(leaves[: index + 1])) for index in range(len(leaves))]
    for group in range(metadata.num_row_groups):
        columns = metadata.row_group(group)
        sizes = [
            sum(columns.column(leaf).total_uncompressed_size for leaf in span) for span in spans
        ]
        for fields in _column_sets(sizes):
            indices = [leaf for index in fields for leaf in spans[index]]
            piece = parquet.reader.read_row_group(group, column_indices=indices)
            for index, column in zip(fields, piece.columns):
                for chunk in column.chunks:
                    yield index, chunk


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        from luigi_repro.errors import MissingDependency

        raise MissingDependency("pandas", "dataframe") from exc
    return pandas


def _new_file(path: str) -> BinaryIO:
    """``path`` created by us, exclusively and without following a symlink planted there."""
    return os.fdopen(os.open(path, NEW_FILE_FLAGS, 0o666), "wb")


class _TableTarget(HashableLocalTarget):
    """A local file holding one table; subclasses read and write a format."""

    fingerprint_kind = "table"

    def __init__(self, path: Any, index: Optional[bool] = None, **options: Any) -> None:
        super().__init__(path)
        self.index = index
        self.options = options

    # --- reading and writing (per format) ------------------------------------------------------

    def _read(self, path: str) -> Any:
        raise NotImplementedError

    def _write(self, table: Any, stream: BinaryIO) -> None:
        raise NotImplementedError

    def _to_table(self, data: Any) -> Any:
        pa = require_pyarrow()
        if isinstance(data, pa.Table):
            return data
        return pa.Table.from_pandas(data, preserve_index=self.index)

    def dump(self, data: Any) -> None:
        """Write a pandas DataFrame or an Arrow table, atomically (replacing any earlier one)."""
        table = self._to_table(data)
        with self.temporary_path() as tmp, _new_file(tmp) as stream:
            self._write(table, stream)

    def load_table(self) -> Any:
        """The content as an Arrow table."""
        return self._read(self.path)

    def load(self) -> Any:
        """The content as a pandas DataFrame (index restored where the format keeps it)."""
        _pandas()
        return self.load_table().to_pandas()

    # --- fingerprint of the data ---------------------------------------------------------------

    def _read_for_fingerprint(self, path: str) -> Any:
        """The whole table, as it is fingerprinted (used when it cannot be streamed)."""
        return self._read(path)

    def _streamed_digest(self, path: str, algorithm: str) -> TableDigest:
        """The digest of the table :meth:`_read_for_fingerprint` reads, fed a piece at a time."""
        raise NotImplementedError

    def _digest(self, path: str, algorithm: str, counters: Optional[Counters]) -> Tuple[str, int]:
        size = os.path.getsize(path)
        try:
            digest = self._streamed_digest(path, algorithm)
            # A table without rows is hashed with its readers' empty chunks, as it always was.
            if digest.num_rows:
                return digest.hexdigest(counters), size
        except NeedsWholeTable:
            pass
        table = self._read_for_fingerprint(path)
        return fingerprint_table(table, algorithm, counters), size

    @property
    def _state_kind(self) -> str:
        """The kind of state in a record: a table read one way never vouches for another."""
        return _STATE_KIND if self.fingerprint_kind == "table" else f"{self.fingerprint_kind}-file"

    def observe(
        self, context: FingerprintContext, previous: Optional[Observation] = None
    ) -> Observation:
        st = os.stat(self.path)
        context.counters.files_statted += 1
        if not stat_module.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"{self.path} is not a file; a table target is one file")
        entry = fingerprint_file(
            self.path,
            context.algorithm,
            hint=None if context.full else file_hint(previous, self._state_kind),
            cache=None if context.full else context.cache,
            racy_window_ns=context.racy_window_ns,
            counters=context.counters,
            stat=st,
            kind=self.fingerprint_kind,
            digest=self._digest,
        )
        state = {}
        if entry.stat is not None:
            state = {
                "kind": self._state_kind,
                "stat": entry.stat.to_json(),
                "taken_at_ns": entry.taken_at_ns,
            }
        return Observation(entry.fingerprint, entry.size, state, None, entry.stat is not None)


class ParquetTarget(_TableTarget):
    """A Parquet file. ``options`` go to ``pyarrow.parquet.write_table`` (compression…)."""

    def describe(self) -> Optional[Dict[str, Any]]:
        return {"type": "parquet"}

    def _read(self, path: str) -> Any:
        require_pyarrow()
        import pyarrow.parquet as pq

        return pq.read_table(path)

    def _streamed_digest(self, path: str, algorithm: str) -> TableDigest:
        require_pyarrow()
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as parquet:
            digest = TableDigest(parquet.schema_arrow, algorithm)
            for index, chunk in _parquet_column_chunks(parquet):
                digest.add_chunk(index, chunk)
            digest.num_rows = parquet.metadata.num_rows
        return digest

    def _write(self, table: Any, stream: BinaryIO) -> None:
        require_pyarrow()
        import pyarrow.parquet as pq

        pq.write_table(table, stream, **self.options)


class FeatherTarget(_TableTarget):
    """A Feather v2 (Arrow IPC) file. ``options`` go to ``pyarrow.feather.write_feather``."""

    def describe(self) -> Optional[Dict[str, Any]]:
        return {"type": "feather"}

    def _read(self, path: str) -> Any:
        require_pyarrow()
        import pyarrow.feather as feather

        return feather.read_table(path)

    def _streamed_digest(self, path: str, algorithm: str) -> TableDigest:
        pa = require_pyarrow()
        import pyarrow.ipc as ipc

        # Read, not memory-mapped: mapped pages would stay in the process until evicted.
        with pa.OSFile(path) as source:
            try:
                reader = ipc.open_file(source)
            except pa.ArrowInvalid:  # Feather version 1 is not Arrow IPC
                raise NeedsWholeTable("not an Arrow IPC file") from None
            digest = TableDigest(reader.schema, algorithm)
            for index in range(reader.num_record_batches):
                digest.add(reader.get_batch(index))
        return digest

    def _write(self, table: Any, stream: BinaryIO) -> None:
        require_pyarrow()
        import pyarrow.feather as feather

        feather.write_feather(table, stream, **self.options)


class CsvTarget(_TableTarget):
    """A CSV file (a header line, then rows), read and written by ``pyarrow.csv``.

    Its fingerprint is of the cells *as written*, each read as text: ``007`` and ``7``, or
    ``1.0`` and ``1.00``, differ, as they do for anything that reads the file as text; quoting
    and line endings do not. ``load()`` infers types as usual.
    """

    def __init__(self, path: Any, index: bool = False, delimiter: str = ",") -> None:
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise ValueError(f"a CSV delimiter is one character, not {delimiter!r}")
        super().__init__(path, index)
        self.delimiter = delimiter
        # The cells depend on the delimiter: another one reads other data from the same bytes,
        # so its fingerprints are kept apart (stat cache, records' state, one check's memo).
        if delimiter != ",":
            self.fingerprint_kind = f"table:csv-delimiter-{ord(delimiter)}"

    def describe(self) -> Optional[Dict[str, Any]]:
        return {"type": "csv", "delimiter": self.delimiter}

    def _to_table(self, data: Any) -> Any:
        pa = require_pyarrow()
        if isinstance(data, pa.Table):
            return data
        pandas = _pandas()
        default_index = isinstance(data.index, pandas.RangeIndex) and (
            data.index.start == 0 and data.index.step == 1
        )
        if not default_index:
            if not self.index:
                raise ValueError(
                    f"{self.path}: the DataFrame has a meaningful index, which CSV cannot keep; "
                    "pass index=True to write it as columns, or reset_index() first."
                )
            data = data.reset_index()
        return pa.Table.from_pandas(data, preserve_index=False)

    def _parse_options(self) -> Any:
        require_pyarrow()
        import pyarrow.csv as csv

        return csv.ParseOptions(delimiter=self.delimiter)

    def _read(self, path: str) -> Any:
        import pyarrow.csv as csv

        return csv.read_csv(path, parse_options=self._parse_options())

    def _as_text(self, path: str) -> Any:
        """Conversion options that read every cell as the text written."""
        pa = require_pyarrow()
        import pyarrow.csv as csv

        with csv.open_csv(path, parse_options=self._parse_options()) as reader:
            names = reader.schema.names
        return csv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )

    def _read_for_fingerprint(self, path: str) -> Any:
        import pyarrow.csv as csv

        as_text = self._as_text(path)
        return csv.read_csv(path, parse_options=self._parse_options(), convert_options=as_text)

    def _streamed_digest(self, path: str, algorithm: str) -> TableDigest:
        import pyarrow.csv as csv

        as_text = self._as_text(path)
        with csv.open_csv(
            path, parse_options=self._parse_options(), convert_options=as_text
        ) as reader:
            digest = TableDigest(reader.schema, algorithm)
            for batch in reader:
                digest.add(batch)
        return digest

    def _write(self, table: Any, stream: BinaryIO) -> None:
        require_pyarrow()
        import pyarrow.csv as csv

        csv.write_csv(table, stream, write_options=csv.WriteOptions(delimiter=self.delimiter))


def _type_resolver(
    cls: Callable[..., _TableTarget], *options: str
) -> Callable[[str, Mapping[str, Any]], HashableTarget]:
    """Rebuilds a ``cls`` target from a record's location and description.

    An option this version does not know may change how the data is read, so it is refused
    rather than ignored.
    """

    def resolve(uri: str, description: Mapping[str, Any]) -> HashableTarget:
        unknown = sorted(set(description) - {"type", *options})
        if unknown:
            raise ValueError(f"its description has options this version does not know: {unknown}")
        if not os.path.isabs(uri) or "\0" in uri:
            raise ValueError(f"{uri!r} is not the absolute path of a local file")
        return cls(uri, **{name: description[name] for name in options if name in description})

    return resolve


register_target_type("parquet", _type_resolver(ParquetTarget))
register_target_type("feather", _type_resolver(FeatherTarget))
register_target_type("csv", _type_resolver(CsvTarget, "delimiter"))
