"""A file format for objects holding large DataFrames: Arrow sections, memory-mapped back.

:func:`dump_object` stores any picklable object in one file, where every
``pandas.DataFrame`` inside it is an uncompressed Arrow IPC section and the rest of the
object graph is a small pickle that refers to them. :func:`load_object` memory-maps the
file: Arrow-backed columns (every text and JSON column of the contract frames) are read
in place, not copied; other columns (nullable integers and booleans, numpy columns) are
rebuilt from Arrow, and object columns (lists, dicts, Python objects) travel inside
the pickle. A loaded object equals the stored one, dtypes included.

Dagster's steps hand their outputs over in it (``sync_pipeline.defs.io_managers``), and a
scan read in another process hands its frame back the same way (``sync_pipeline.clerk``).
Writes go to a temporary file moved into place, so a reader still holding the previous
file keeps reading it.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sync_pipeline.frames import release_spilled_pages

MAGIC = b"SPFRAME1"
_TRAILER = struct.Struct("<QQ8s")  # pickle offset, pickle length, magic
_ALIGN = 64
PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL


# ----------------------------------------------------------------------------- columns


def _arrow_column(values: Any) -> pa.ChunkedArray | None:
    """The column as Arrow without copying text, or None when it must be pickled instead."""
    dtype = values.dtype
    if isinstance(values, pd.arrays.ArrowExtensionArray | pd.arrays.ArrowStringArray):
        chunked = values.__arrow_array__()
        return chunked if isinstance(chunked, pa.ChunkedArray) else pa.chunked_array([chunked])
    if isinstance(dtype, pd.BooleanDtype | pd.Int8Dtype | pd.Int16Dtype | pd.Int32Dtype | pd.Int64Dtype
                  | pd.UInt8Dtype | pd.UInt16Dtype | pd.UInt32Dtype | pd.UInt64Dtype | pd.Float32Dtype | pd.Float64Dtype):
        return pa.chunked_array([pa.array(values)])
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return pa.chunked_array([pa.array(values)])
    return None  # object, datetimes, categoricals, python-backed strings...: pickled as they are


def _pandas_column(chunked: pa.ChunkedArray, dtype: Any) -> Any:
    if isinstance(dtype, np.dtype):  # numbers: small, and pandas wants them writable
        return np.array(chunked.to_numpy(), dtype=dtype)
    return dtype.__from_arrow__(chunked)


# ----------------------------------------------------------------------------- writing


class _Writer(pickle.Pickler):
    """Pickles an object graph; each DataFrame in it goes to an Arrow section of ``sink``."""

    def __init__(self, buffer: io.BytesIO, sink: Any) -> None:
        super().__init__(buffer, protocol=PICKLE_PROTOCOL)
        self._sink = sink
        self._seen: dict[int, tuple[pd.DataFrame, Any]] = {}  # one frame reached twice is stored once

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is not pd.DataFrame:
            return None
        seen = self._seen.get(id(obj))
        if seen is not None:
            return seen[1]
        pid = self._frame_id(obj)
        if pid is not None:
            self._seen[id(obj)] = (obj, pid)
        return pid

    def _frame_id(self, obj: pd.DataFrame) -> Any:
        index = obj.index
        if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1) or obj.columns.has_duplicates:
            return None  # rare shapes: plain pickle keeps them exact
        arrow: dict[int, pa.ChunkedArray] = {}
        pickled: dict[int, Any] = {}
        dtypes: list[Any] = []
        for position, name in enumerate(obj.columns):
            values = obj[name].array if not isinstance(obj[name].dtype, np.dtype) else obj[name].to_numpy(copy=False)
            dtypes.append(obj[name].dtype)
            column = _arrow_column(values)
            if column is None:
                pickled[position] = obj[name].to_numpy(dtype=object) if obj[name].dtype == object else obj[name].array
            else:
                arrow[position] = column
        section = None
        if arrow:
            table = pa.table({f"c{p}": c for p, c in arrow.items()})
            section = self._write_section(table)
            for column in arrow.values():  # raw text spilled by the normalizer: read once, let go
                release_spilled_pages(column)
        description = {
            "key": len(self._seen),
            "rows": len(obj),
            "columns": obj.columns,
            "dtypes": dtypes,
            "arrow": list(arrow),
            "pickled": pickled,
            "section": section,
            "attrs": dict(obj.attrs),
        }
        return ("frame", description)

    def _write_section(self, table: pa.Table) -> tuple[int, int]:
        sink = self._sink
        position = sink.tell()
        padding = (-position) % _ALIGN
        if padding:
            sink.write(b"\0" * padding)
            position += padding
        with pa.ipc.new_file(pa.PythonFile(sink, mode="w"), table.schema) as writer:
            writer.write_table(table, max_chunksize=None)
        return position, sink.tell() - position


def dump_object(obj: Any, path: Path) -> None:
    """Store ``obj`` at ``path`` (atomically: a temporary file, then a rename)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as sink:
            sink.write(MAGIC)
            buffer = io.BytesIO()
            _Writer(buffer, sink).dump(obj)
            offset = sink.tell()
            payload = buffer.getbuffer()
            sink.write(payload)
            sink.write(_TRAILER.pack(offset, len(payload), MAGIC))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- reading


def _slice(mapped: pa.MemoryMappedFile, offset: int, length: int) -> pa.Buffer:
    """A zero-copy view of ``length`` bytes at ``offset`` of the mapped file."""
    mapped.seek(offset)
    return mapped.read_buffer(length)


class _Reader(pickle.Unpickler):
    def __init__(self, buffer: io.BytesIO, mapped: pa.MemoryMappedFile) -> None:
        super().__init__(buffer)
        self._mapped = mapped
        self._loaded: dict[int, pd.DataFrame] = {}

    def persistent_load(self, pid: Any) -> Any:
        kind, description = pid
        if kind != "frame":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        frame = self._loaded.get(description["key"])
        if frame is None:
            frame = self._loaded[description["key"]] = self._frame(description)
        return frame

    def _frame(self, description: dict[str, Any]) -> pd.DataFrame:
        columns: dict[int, Any] = dict(description["pickled"])
        if description["section"] is not None:
            offset, length = description["section"]
            table = pa.ipc.open_file(_slice(self._mapped, offset, length)).read_all()
            for position, chunked in zip(description["arrow"], table.columns):
                columns[position] = _pandas_column(chunked, description["dtypes"][position])
        frame = pd.DataFrame(
            {position: columns[position] for position in range(len(description["dtypes"]))},
            index=pd.RangeIndex(description["rows"]),
            copy=False,
        )
        for position, dtype in enumerate(description["dtypes"]):
            if position in description["pickled"] and frame[position].dtype != dtype:
                frame[position] = frame[position].astype(dtype)
        frame.columns = description["columns"]
        frame.attrs.update(description["attrs"])
        return frame


def load_object(path: Path) -> Any:
    """The object stored at ``path``; its text columns stay memory-mapped (not copied)."""
    mapped = pa.memory_map(str(path), "r")
    size = mapped.size()
    if size < len(MAGIC) + _TRAILER.size or _slice(mapped, 0, len(MAGIC)).to_pybytes() != MAGIC:
        raise ValueError(f"{path} is not a file written by {__name__}")
    offset, length, magic = _TRAILER.unpack(_slice(mapped, size - _TRAILER.size, _TRAILER.size).to_pybytes())
    if magic != MAGIC:
        raise ValueError(f"{path} is truncated")
    payload = _slice(mapped, offset, length).to_pybytes()
    return _Reader(io.BytesIO(payload), mapped).load()


def stored_frames(path: Path) -> Iterator[tuple[int, int]]:
    """(offset, length) of every Arrow section in a stored file, for tests and diagnostics."""
    obj_path = Path(path)
    mapped = pa.memory_map(str(obj_path), "r")
    offset, length, _ = _TRAILER.unpack(_slice(mapped, mapped.size() - _TRAILER.size, _TRAILER.size).to_pybytes())
    sections: list[tuple[int, int]] = []

    class _Collector(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if pid[1]["section"] is not None and pid[1]["section"] not in sections:
                sections.append(pid[1]["section"])
            return None

    _Collector(io.BytesIO(_slice(mapped, offset, length).to_pybytes())).load()
    yield from sections
