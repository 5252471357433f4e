"""Fingerprints of tables by their data: Arrow schema and column contents, not file bytes.

The same table written twice — other writer metadata, row-group sizes, compression, chunking —
has one fingerprint, so early cutoff works for DataFrame outputs. Any changed value, null, dtype,
column name, column order, row order, category list or pandas dtype changes it.

Encoding. Every column is cut into *streams* — validity (one byte per value), lengths, value
bytes, and the same again for nested children — each hashed separately, chunk after chunk,
and the stream digests are combined at the end. A stream is a plain concatenation, so a table
in one chunk and the same table in many give the same streams: chunking never matters, and no
column is ever copied to join its chunks. Nulls contribute only their validity (the bytes under
a null are ignored); every NaN counts as one NaN. Names and type descriptions are
length-prefixed, so no two layouts can share an encoding. Types are normalized (``string`` and
``large_string`` are one type; a dictionary column is its dictionary plus its codes, whatever
the index width; an extension type is its name, its metadata and its storage, whether or not it
is registered where the check runs). pandas' metadata is included without the parts that name
its writer (versions), so that ``Int64`` and ``int64`` or an index differ.

Streaming. :class:`TableDigest` takes the table record batch after record batch, so a file is
fingerprinted without ever being in memory whole; its value is that of :func:`fingerprint_table`
on the table the batches make. A dictionary column's dictionary is unified batch after batch as
Arrow unifies a whole column (first appearance order), which needs only the dictionary so far.

Needs ``pyarrow`` (``pip install luigi-repro[dataframe]``), imported only when used.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, Optional

from luigi_repro.errors import MissingDependency
from luigi_repro.fingerprint import Counters, Hasher, new_hasher

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow

__all__ = ["NeedsWholeTable", "TableDigest", "fingerprint_table", "require_pyarrow"]

_EXTENSION_NAME = b"ARROW:extension:name"
_EXTENSION_METADATA = b"ARROW:extension:metadata"


class NeedsWholeTable(Exception):
    """This table's fingerprint cannot be computed batch after batch; hash the whole table.

    Only a dictionary column in several batches whose first dictionary repeats a value is like
    that: unifying the whole column merges the repeats and renumbers the first batch's codes.
    """


def require_pyarrow() -> Any:
    """The ``pyarrow`` module, or :class:`MissingDependency` with the install hint."""
    try:
        import pyarrow
        import pyarrow.compute
    except ImportError as exc:
        raise MissingDependency("pyarrow", "dataframe") from exc
    return pyarrow


def _framed(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    return len(data).to_bytes(8, "little") + data


class _Streams:
    """One digest per stream name; combined, in name order, into the table's fingerprint."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.hashers: Dict[str, Hasher] = {}

    def feed(self, name: str, data: Any) -> None:
        hasher = self.hashers.get(name)
        if hasher is None:
            hasher = self.hashers[name] = new_hasher(self.algorithm)
        hasher.update(data)

    def digest_into(self, hasher: Hasher) -> None:
        for name in sorted(self.hashers):
            hasher.update(_framed(name))
            hasher.update(_framed(self.hashers[name].hexdigest()))


def _describe_type(pa: Any, arrow_type: Any, field: Any = None) -> str:
    """A type description that ignores representation details (widths of offsets, names of
    list items), and includes what changes meaning (extension identity, dictionary order)."""
    types = pa.types
    metadata = (field.metadata or {}) if field is not None else {}
    if isinstance(arrow_type, pa.ExtensionType):
        name, serialized = arrow_type.extension_name, arrow_type.__arrow_ext_serialize__()
        return f"extension<{name},{serialized.hex()},{_describe_type(pa, arrow_type.storage_type)}>"
    if _EXTENSION_NAME in metadata:  # an extension type not registered in this process
        name = metadata[_EXTENSION_NAME].decode("utf-8", "replace")
        serialized = metadata.get(_EXTENSION_METADATA, b"")
        return f"extension<{name},{serialized.hex()},{_describe_type(pa, arrow_type)}>"
    if types.is_dictionary(arrow_type):
        ordered = "ordered" if arrow_type.ordered else "unordered"
        return f"dictionary<{_describe_type(pa, arrow_type.value_type)},{ordered}>"
    if types.is_large_string(arrow_type) or types.is_string(arrow_type):
        return "string"
    if types.is_large_binary(arrow_type) or types.is_binary(arrow_type):
        return "binary"
    if types.is_fixed_size_list(arrow_type):
        return f"list<{_describe_type(pa, arrow_type.value_type)}>[{arrow_type.list_size}]"
    if types.is_large_list(arrow_type) or types.is_list(arrow_type):
        return f"list<{_describe_type(pa, arrow_type.value_type)}>"
    if types.is_map(arrow_type):
        key, item = (
            _describe_type(pa, arrow_type.key_type),
            _describe_type(pa, arrow_type.item_type),
        )
        return f"map<{key},{item}>"
    if types.is_struct(arrow_type):
        fields = (
            f"{len(arrow_type.field(i).name)}:{arrow_type.field(i).name}:"
            f"{_describe_type(pa, arrow_type.field(i).type)}"
            for i in range(arrow_type.num_fields)
        )
        return f"struct<{','.join(fields)}>"
    return str(arrow_type)


def _hash_array(pa: Any, streams: _Streams, path: str, array: Any) -> None:
    """Feed one chunk of a column (or of a nested child) into the streams below ``path``."""
    import numpy as np

    pc = pa.compute
    types = pa.types
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    kind = array.type
    valid = None
    if array.null_count:
        valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
        streams.feed(path + "/valid", valid.astype(np.uint8).tobytes())
    else:
        streams.feed(path + "/valid", b"\1" * len(array))
    if types.is_dictionary(kind):
        codes = array.indices.cast(pa.int64())
        codes = pc.fill_null(codes, 0) if codes.null_count else codes
        streams.feed(path + "/codes", codes.to_numpy(zero_copy_only=False).tobytes())
        return  # the dictionary itself is hashed once per column, by the caller
    if types.is_boolean(kind):
        values = pc.fill_null(array, False) if array.null_count else array
        streams.feed(
            path + "/data", values.to_numpy(zero_copy_only=False).astype(np.uint8).tobytes()
        )
    elif (
        types.is_integer(kind)
        or types.is_floating(kind)
        or (types.is_temporal(kind) and getattr(kind, "bit_width", 0) in (32, 64))
    ):
        if types.is_temporal(kind):
            array = array.view(pa.int32() if kind.bit_width == 32 else pa.int64())
        values = (pc.fill_null(array, 0) if array.null_count else array).to_numpy(
            zero_copy_only=False
        )
        # NaN has many bit patterns: make them one. A dot product (fast, NaN-propagating)
        # screens out the usual case of no NaN before the element-wise pass.
        if types.is_floating(kind) and len(values):
            with np.errstate(over="ignore"):  # a sum of squares overflows to inf, never NaN
                screened = np.dot(values, values)
            if np.isnan(screened):
                values = np.where(np.isnan(values), np.nan, values)
        streams.feed(path + "/data", np.ascontiguousarray(values).data)
    elif types.is_decimal(kind) or types.is_fixed_size_binary(kind):
        text = array.cast(pa.string()) if types.is_decimal(kind) else array.cast(pa.binary())
        _hash_array(pa, streams, path + "/as", text)
    elif (
        types.is_string(kind)
        or types.is_large_string(kind)
        or types.is_binary(kind)
        or (types.is_large_binary(kind))
    ):
        dense = array.cast(pa.large_binary())
        if valid is not None:
            dense = pc.fill_null(dense, b"")  # a null is its validity only, never its bytes
        offsets = np.frombuffer(dense.buffers()[1], dtype="<i8")[
            dense.offset : dense.offset + len(dense) + 1
        ]
        streams.feed(path + "/lengths", np.diff(offsets).astype("<i8").tobytes())
        data = dense.buffers()[2]
        if data is not None and len(dense):
            streams.feed(path + "/data", memoryview(data)[int(offsets[0]) : int(offsets[-1])])
    elif types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        lengths = pc.list_value_length(array)
        lengths = pc.fill_null(lengths, 0) if lengths.null_count else lengths
        streams.feed(
            path + "/lengths", lengths.to_numpy(zero_copy_only=False).astype("<i8").tobytes()
        )
        if types.is_fixed_size_list(kind):
            items = pc.list_flatten(array.filter(pc.is_valid(array)))
        else:
            items = array.flatten()  # the values of the non-null lists, whatever the item name
        _hash_array(pa, streams, path + "/items", items)
    elif types.is_map(kind):
        lengths = np.diff(array.offsets.to_numpy(zero_copy_only=False)).astype("<i8")
        if valid is not None:
            lengths = np.where(valid, lengths, 0)
        streams.feed(path + "/lengths", lengths.tobytes())
        present = array.filter(pc.is_valid(array)) if array.null_count else array
        _hash_array(pa, streams, path + "/keys", present.keys)
        _hash_array(pa, streams, path + "/values", present.items)
    elif types.is_struct(kind):
        for index, child in enumerate(array.flatten()):
            name = kind.field(index).name
            _hash_array(pa, streams, f"{path}/{len(name)}:{name}", child)
    else:
        # Anything else (unions, intervals…): Python values, one framed repr each.
        for value in array.to_pylist():
            streams.feed(path + "/repr", _framed(repr(value)))


def _pandas_metadata(schema: Any) -> Optional[Any]:
    """pandas' description of the frame, without what names the writer (versions)."""
    raw = (schema.metadata or {}).get(b"pandas")
    if raw is None:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    return {key: document.get(key) for key in ("index_columns", "column_indexes", "columns")}


class _UnifiedDictionary:
    """The dictionary of one dictionary column, unified batch after batch.

    Arrow keeps the dictionary of a column in one chunk as it is, and otherwise unifies the
    dictionaries in order of first appearance. Both are reproduced here holding only the
    dictionary so far: its new values are hashed as they appear (a stream is a concatenation),
    and each chunk's codes are translated to the unified dictionary before they are hashed.
    """

    def __init__(self) -> None:
        self.values: Any = None
        self.distinct = False

    def recode(self, pa: Any, streams: _Streams, chunk: Any) -> Any:
        """``chunk`` with codes into the dictionary so far, whose new values are hashed."""
        if self.values is None:
            self.values = chunk.dictionary
            _hash_array(pa, streams, "dictionary", self.values)
            return chunk
        if not self.distinct:  # Arrow unifies any column of two chunks or more
            if pa.compute.count_distinct(self.values, mode="all").as_py() != len(self.values):
                raise NeedsWholeTable("a dictionary column's first dictionary repeats a value")
            self.distinct = True
        if chunk.dictionary.equals(self.values):
            return chunk
        so_far = pa.DictionaryArray.from_arrays(
            pa.array([], type=chunk.type.index_type), self.values, ordered=chunk.type.ordered
        )
        unified = pa.chunked_array([so_far, chunk], type=chunk.type).unify_dictionaries()
        recoded = unified.chunk(1)
        grown = recoded.dictionary
        if len(grown) > len(self.values):
            _hash_array(pa, streams, "dictionary", grown.slice(len(self.values)))
        self.values = grown
        return recoded


class TableDigest:
    """A table's data fingerprint, fed record batch after record batch.

    ``TableDigest(schema, algorithm)``, then :meth:`add` every batch in order, then
    :meth:`hexdigest`: the value :func:`fingerprint_table` gives for the table they make, when it
    has rows (without rows, a table's fingerprint depends on whether its columns have one empty
    chunk or none, which batches do not tell).
    Memory is one batch plus the dictionaries of dictionary columns.
    """

    def __init__(self, schema: pyarrow.Schema, algorithm: str) -> None:
        self._pa = require_pyarrow()
        self.schema = schema
        self.algorithm = algorithm
        self.num_rows = 0
        self.bytes_hashed = 0
        self._streams = [_Streams(algorithm) for _ in schema]
        self._dictionaries = [
            _UnifiedDictionary() if self._pa.types.is_dictionary(field.type) else None
            for field in schema
        ]

    def add(self, batch: pyarrow.RecordBatch) -> None:
        """Hash the next rows (a record batch, or a table, with this digest's columns)."""
        if batch.schema.types != self.schema.types:
            raise ValueError(
                f"a batch with columns {batch.schema.types} does not belong to a table "
                f"with columns {self.schema.types}"
            )
        for index, column in enumerate(batch.columns):
            for chunk in getattr(column, "chunks", (column,)):
                self.add_chunk(index, chunk)
        self.num_rows += batch.num_rows

    def add_chunk(self, index: int, chunk: pyarrow.Array) -> None:
        """Hash the next piece of column ``index``; who adds pieces sets :attr:`num_rows`."""
        dictionary = self._dictionaries[index]
        streams = self._streams[index]
        if dictionary is not None:
            chunk = dictionary.recode(self._pa, streams, chunk)
        _hash_array(self._pa, streams, "column", chunk)
        self.bytes_hashed += chunk.nbytes

    def hexdigest(self, counters: Optional[Counters] = None) -> str:
        """The fingerprint (``"<algorithm>:<hex>"``) of every row added so far."""
        hasher = new_hasher(self.algorithm)
        hasher.update(b"luigi_repro-table-2\0")
        metadata = _pandas_metadata(self.schema)
        hasher.update(_framed(json.dumps(metadata, sort_keys=True)))
        hasher.update(_framed(f"rows:{self.num_rows}"))
        for field, streams in zip(self.schema, self._streams):
            hasher.update(_framed(field.name))
            hasher.update(_framed(_describe_type(self._pa, field.type, field)))
            streams.digest_into(hasher)
        if counters is not None:
            counters.files_hashed += 1
            counters.bytes_hashed += self.bytes_hashed
        return f"{self.algorithm}:{hasher.hexdigest()}"


def fingerprint_table(
    table: pyarrow.Table, algorithm: str, counters: Optional[Counters] = None
) -> str:
    """The data fingerprint of an Arrow table (``"<algorithm>:<hex>"``)."""
    pa = require_pyarrow()
    digest = TableDigest(table.schema, algorithm)
    for index, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type):
            # The whole column is at hand: unify it at once, whatever its first dictionary.
            column = column.unify_dictionaries()
        for chunk in column.chunks:
            digest.add_chunk(index, chunk)
    digest.num_rows = table.num_rows
    return digest.hexdigest(counters)
