"""Fingerprints of tables by their data: Arrow schema and column contents, not file bytes.

The same table written twice — other writer metadata, row-group sizes, compression, chunking —
has one fingerprint, so early cutoff works for DataFrame outputs. Any changed value, null, dtype,
column name, column order or row order changes it.

Each column is hashed in a canonical form: its name and a normalized type (``string`` and
``large_string`` are one type; a dictionary column is described by its values, not its index
width), a validity bitmap when it has nulls, then its values — fixed-width values as bytes with
nulls zeroed and NaNs made canonical, variable-width values as lengths plus the concatenated
bytes, anything nested through Arrow's own serialization of the normalized column. pandas' index
description (a ``RangeIndex`` kept only in metadata, or which columns hold the index) is part of
the fingerprint; the rest of the writer's metadata is not.

Needs ``pyarrow`` (``pip install luigi-repro[dataframe]``), imported only when used.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Optional

from luigi_repro.errors import MissingDependency
from luigi_repro.fingerprint import Counters, Hasher, new_hasher

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow

__all__ = ["fingerprint_table", "require_pyarrow"]


def require_pyarrow() -> Any:
    """The ``pyarrow`` module, or :class:`MissingDependency` with the install hint."""
    try:
        import pyarrow
        import pyarrow.compute
    except ImportError as exc:
        raise MissingDependency("pyarrow", "dataframe") from exc
    return pyarrow


def _normalized_type(pa: Any, arrow_type: Any) -> str:
    types = pa.types
    if types.is_dictionary(arrow_type):
        ordered = "ordered" if arrow_type.ordered else "unordered"
        return f"dictionary<{_normalized_type(pa, arrow_type.value_type)},{ordered}>"
    if types.is_large_string(arrow_type) or types.is_string(arrow_type):
        return "string"
    if types.is_large_binary(arrow_type) or types.is_binary(arrow_type):
        return "binary"
    if types.is_large_list(arrow_type) or types.is_list(arrow_type):
        return f"list<{_normalized_type(pa, arrow_type.value_type)}>"
    if types.is_struct(arrow_type):
        fields = (
            f"{arrow_type.field(i).name}:{_normalized_type(pa, arrow_type.field(i).type)}"
            for i in range(arrow_type.num_fields)
        )
        return f"struct<{','.join(fields)}>"
    return str(arrow_type)


def _update_validity(pa: Any, hasher: Hasher, array: Any) -> None:
    import numpy as np

    if array.null_count == 0:
        hasher.update(b"V:all\0")
        return
    valid = pa.compute.is_valid(array).to_numpy(zero_copy_only=False)
    hasher.update(b"V:bits\0")
    hasher.update(np.packbits(valid).tobytes())


def _update_values(pa: Any, hasher: Hasher, array: Any) -> None:
    import numpy as np

    types = pa.types
    kind = array.type
    if types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if array.null_count and not (types.is_list(kind) or types.is_large_list(kind)):
        if types.is_boolean(kind):
            array = pa.compute.fill_null(array, False)
        elif types.is_string(kind) or types.is_large_string(kind):
            array = pa.compute.fill_null(array, "")
        elif types.is_binary(kind) or types.is_large_binary(kind):
            array = pa.compute.fill_null(array, b"")
        elif types.is_integer(kind) or types.is_floating(kind):
            array = pa.compute.fill_null(array, 0)
    if types.is_boolean(kind):
        hasher.update(np.packbits(array.to_numpy(zero_copy_only=False)).tobytes())
    elif types.is_integer(kind) or types.is_floating(kind) or types.is_temporal(kind):
        if types.is_temporal(kind):
            storage = array.view(pa.int32() if kind.bit_width == 32 else pa.int64())
            array = pa.compute.fill_null(storage, 0) if storage.null_count else storage
        values = array.to_numpy(zero_copy_only=False)
        # NaN has many bit patterns; make them one. A dot product (fast, and NaN-propagating)
        # screens out the usual case of no NaN at all before the element-wise pass.
        if types.is_floating(kind) and len(values) and np.isnan(np.dot(values, values)):
            values = np.where(np.isnan(values), np.nan, values)
        hasher.update(np.ascontiguousarray(values).data)
    elif (
        types.is_string(kind)
        or types.is_large_string(kind)
        or types.is_binary(kind)
        or types.is_large_binary(kind)
    ):
        dense = array.cast(pa.large_binary())
        offsets = np.frombuffer(dense.buffers()[1], dtype="<i8")[
            dense.offset : dense.offset + len(dense) + 1
        ]
        hasher.update(np.diff(offsets).astype("<i8").tobytes())
        data = dense.buffers()[2]
        if data is not None and len(dense):
            hasher.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
    elif types.is_list(kind) or types.is_large_list(kind):
        lengths = pa.compute.list_value_length(array)
        lengths = pa.compute.fill_null(lengths, 0) if lengths.null_count else lengths
        hasher.update(lengths.to_numpy(zero_copy_only=False).astype("<i8").tobytes())
        items = array.flatten()  # the values of the non-null lists, whatever the field name
        _update_validity(pa, hasher, items)
        _update_values(pa, hasher, items)
    elif types.is_struct(kind):
        for index, child in enumerate(array.flatten()):
            hasher.update(b"F\0" + kind.field(index).name.encode("utf-8", "surrogatepass") + b"\0")
            _update_validity(pa, hasher, child)
            _update_values(pa, hasher, child)
    else:
        # Anything else (maps, unions, decimals…): Arrow's own serialization of the column.
        sink = pa.BufferOutputStream()
        batch = pa.record_batch([array], names=["c"])
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        hasher.update(memoryview(sink.getvalue()))


def _pandas_index(schema: Any) -> Optional[Any]:
    metadata = schema.metadata or {}
    raw = metadata.get(b"pandas")
    if raw is None:
        return None
    try:
        return json.loads(raw).get("index_columns")
    except (ValueError, AttributeError):
        return None


def fingerprint_table(
    table: pyarrow.Table, algorithm: str, counters: Optional[Counters] = None
) -> str:
    """The data fingerprint of an Arrow table (``"<algorithm>:<hex>"``)."""
    pa = require_pyarrow()
    hasher = new_hasher(algorithm)
    hasher.update(b"luigi_repro-table-1\0")
    index = _pandas_index(table.schema)
    hasher.update(json.dumps(index, sort_keys=True).encode() + b"\0")
    hasher.update(f"rows:{table.num_rows}\0".encode())
    for name, column in zip(table.column_names, table.columns):
        hasher.update(b"C\0" + name.encode("utf-8", "surrogatepass") + b"\0")
        hasher.update(_normalized_type(pa, column.type).encode() + b"\0")
        # One chunk (the usual case after reading a file) is used as it is; several are joined,
        # which copies, so that chunking never changes the fingerprint.
        array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        if isinstance(array, pa.ChunkedArray):  # pragma: no cover - older pyarrow
            array = pa.concat_arrays(array.chunks)
        _update_validity(pa, hasher, array)
        _update_values(pa, hasher, array)
        if counters is not None:
            counters.bytes_hashed += array.nbytes
    if counters is not None:
        counters.files_hashed += 1
    return f"{algorithm}:{hasher.hexdigest()}"
