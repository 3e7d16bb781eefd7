"""Clerk JSON objects -> contract frames (``model.COLUMNS``, ``model.conform`` dtypes).

Pure functions: no I/O, no clock, the input dicts are never mutated.

Rules (see ``/work/shared/clerk/README.md`` for the shapes):

- Missing documented fields become null; unknown fields and enum values are kept in
  ``raw`` and never fail. A value of an unexpected type in a typed column (a string
  in ``banned``, a float timestamp, ...) is coerced when that is lossless, else null.
- ``raw`` is the canonical JSON of the whole object (``model.canonical_json``) and
  ``raw_digest`` its md5 (``model.digest``).
- ``include_private_metadata=False`` keeps private metadata out of the mirror: the
  column is null and the ``private_metadata`` key is removed from ``raw`` (for users,
  organizations, memberships, and the organization embedded in a membership).
- Users' ``primary_email``: see :func:`primary_email`.
- Postgres text and jsonb cannot hold U+0000, which JSON allows: in an object holding
  one, every string (keys too) has each NUL replaced by U+FFFD before any column is
  built, so ``raw``, ``raw_digest`` and the typed columns agree. :class:`FrameBuilder`
  lists those ids (``nul_replaced_ids``) for the sync to report.

For large lists use :class:`FrameBuilder`: it turns every page into a small columnar
chunk (one DataFrame, Arrow-backed strings) as it arrives, so the page's dicts can be
dropped, and de-duplicates rows repeated across pages when the frame is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sync_pipeline import model
from sync_pipeline.entities import catalog, readers
from sync_pipeline.entities.description import PRIVATE_METADATA, Column, Entity, value_at
from sync_pipeline.frames import (  # noqa: F401  (re-exported: the builder's readers use them)
    SPILL_AFTER_BYTES,
    SPILL_DIR_VARIABLE,
    RawSpill,
    dedupe_latest,
    drop_rows,
    release_spilled_pages,
    select_rows,
)

__all__ = [
    "FrameBuilder",
    "release_spilled_pages",
    "dedupe_latest",
    "drop_rows",
    "select_rows",
    "normalize",
    "normalize_membership",
    "normalize_one",
    "normalize_organization",
    "normalize_user",
    "primary_email",
    "users_frame",
    "organizations_frame",
    "memberships_frame",
    "strip_private_metadata",
]


# --------------------------------------------------------------------------- values

# The JSON columns are model.canonical_json text; ``raw`` stays the UTF-8 bytes of that
# text (model.canonical_json_bytes) from the encoder to the md5 and into Arrow, so the
# biggest value of a row is never a Python ``str`` (no encode for the digest, none for
# Arrow: about a third of what a user costs to normalize).
_json = model.canonical_json
_raw = model.canonical_json_bytes


def _text(value: Any) -> str | None:
    """Text column value: strings as given, null stays null, anything else as JSON text."""
    if value is None or isinstance(value, str):
        return value
    return _json(value)


def _bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _int(value: Any) -> int | None:
    """Integers as given; integral floats and digit strings converted; else (and beyond int64) null."""
    if isinstance(value, bool):  # bool is an int subclass: not a count
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            return None
    else:
        return None
    return number if -(2**63) <= number < 2**63 else None


def primary_email(user: Mapping[str, Any]) -> str | None:
    """The user's primary e-mail address, as Clerk spells it (:func:`entities.readers.primary_email`)."""
    return _text(readers.primary_email(user))


def strip_private_metadata(entity: str, obj: Mapping[str, Any]) -> dict:
    """A shallow copy of ``obj`` without ``private_metadata`` (also inside embedded objects
    that carry their own, as a membership's organization)."""
    out = {k: v for k, v in obj.items() if k != PRIVATE_METADATA}
    for key in catalog.describe(entity).embedded_private:
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in out[key].items() if k != PRIVATE_METADATA}
    return out


# ------------------------------------------------------------------ rows, per entity
# The row builder of an entity turns one object into a tuple in model.COLUMNS[entity]
# order, from its description's columns: each reads its path (or runs its reader) and
# converts the value by kind. The raw object and its digest close every row.

_CONVERT: dict[str, Callable[[Any], Any]] = {
    model.TEXT: _text,
    model.JSON: _json,
    model.BOOL: _bool,
    model.MILLIS: _int,
    model.INT: _int,
}


def _reader(column: Column) -> Callable[[dict], Any]:
    convert = _CONVERT[column.kind]
    if column.read is not None:
        read = column.read
        return lambda obj: convert(read(obj))
    if len(column.path) == 1:
        (key,) = column.path
        return lambda obj: convert(obj.get(key))
    path = column.path
    return lambda obj: convert(value_at(obj, path))


def _row_builder(entity: Entity) -> Callable[[dict, bool], tuple]:
    names = entity.column_names
    if names[-2:] != ("raw", "raw_digest"):
        raise ValueError(f"{entity.name}: raw and raw_digest must close the columns")
    columns = [c for c in entity.columns if c.name not in ("raw", "raw_digest")]
    if any(c.computed for c in columns):
        raise ValueError(f"{entity.name}: every column but raw and raw_digest needs a path or a reader")
    read = tuple(_reader(c) for c in columns)
    name = entity.name
    digest = model.digest
    leaves_out = frozenset(entity.raw_leaves_out)

    def build(obj: dict, include_private: bool) -> tuple:
        if not include_private:  # also where Clerk's object has a private_metadata no column shows
            obj = strip_private_metadata(name, obj)
        if leaves_out and not leaves_out.isdisjoint(obj):
            obj = {k: v for k, v in obj.items() if k not in leaves_out}
        raw = _raw(obj)
        return (*[r(obj) for r in read], raw, digest(raw))

    return build


_ROW_BUILDERS: dict[str, Callable[[dict, bool], tuple]] = {
    entity.name: _row_builder(entity) for entity in catalog.ENTITIES
}


def _row_dict(entity: str, obj: dict, include_private_metadata: bool) -> dict[str, Any]:
    rows, _ = _rows(entity, [obj], include_private_metadata)
    if not rows:
        raise ValueError(f"a Clerk {entity} object needs a text id, got {obj.get('id')!r}")
    row = dict(zip(model.COLUMNS[entity], rows[0]))
    row["raw"] = row["raw"].decode("utf-8")  # the frame's text; rows carry it as UTF-8 bytes
    return row


def normalize_one(entity: str, obj: Mapping[str, Any], *, include_private_metadata: bool = True) -> dict[str, Any]:
    """One object of ``entity`` as a dict of contract columns (Python values, None for null)."""
    return _row_dict(entity, dict(obj), include_private_metadata)


def normalize_user(obj: Mapping[str, Any], *, include_private_metadata: bool = True) -> dict[str, Any]:
    """One user as a dict of contract columns (Python values, None for null)."""
    return _row_dict(model.USERS, dict(obj), include_private_metadata)


def normalize_organization(
    obj: Mapping[str, Any], *, include_private_metadata: bool = True
) -> dict[str, Any]:
    return _row_dict(model.ORGANIZATIONS, dict(obj), include_private_metadata)


def normalize_membership(
    obj: Mapping[str, Any], *, include_private_metadata: bool = True
) -> dict[str, Any]:
    return _row_dict(model.MEMBERSHIPS, dict(obj), include_private_metadata)


# ------------------------------------------------------------------------- frames

_DTYPES: dict[str, dict[str, str]] = {
    entity: {c: model.frame_dtype(k) for c, k in columns.items()}
    for entity, columns in model.COLUMNS.items()
}


def _raw_column(values: tuple) -> Any:
    """UTF-8 bytes (valid by construction: encoder output) -> a string column, no re-check."""
    binary = pa.array(values, type=pa.large_binary())
    return pd.arrays.ArrowStringArray(pa.chunked_array([binary.view(pa.large_string())]))


def _column(values: tuple, dtype: str) -> Any:
    if dtype == model.TEXT:  # straight to Arrow: what pd.array(..., "string") builds, less checking
        return pd.arrays.ArrowStringArray(pa.chunked_array([pa.array(values, type=pa.large_string())]))
    if dtype in _INT_RANGES:  # a number the column cannot hold is null, not an error
        low, high = _INT_RANGES[dtype]
        if not all(v is None or low <= v <= high for v in values):
            values = tuple(v if v is None or low <= v <= high else None for v in values)
    return pd.array(values, dtype=dtype)


_INT_RANGES = {
    name: (int(np.iinfo(name.lower()).min), int(np.iinfo(name.lower()).max))
    for name in ("Int8", "Int16", "Int32", "Int64")
}


def _columns(entity: str, rows: list[tuple], *, with_raw: bool = True) -> dict[str, Any]:
    """Row tuples -> one pandas array per column (no per-row work); ``raw`` left out on request."""
    dtypes = _DTYPES[entity]
    columns = {}
    for name, values in zip(dtypes, zip(*rows)):
        if name == "raw":
            if with_raw:
                columns[name] = _raw_column(values)
        else:
            columns[name] = _column(values, dtypes[name])
    return columns


def _chunk(entity: str, rows: list[tuple]) -> pd.DataFrame:
    """Row tuples -> one conformed DataFrame."""
    if not rows:
        return model.empty_frame(entity)
    return pd.DataFrame(_columns(entity, rows))


# ------------------------------------------------------------- spilling raw text

@dataclass
class _SpilledPage:
    """A page whose raw text is in the spill file: its other columns, and where its raw is."""

    columns: dict[str, Any]  # every column but raw, as pandas arrays
    offset: int
    length: int
    offsets: np.ndarray  # int64, one per row plus one, relative to ``offset``

    def frame(self, entity: str, mapped: pa.Buffer) -> pd.DataFrame:
        rows = len(self.offsets) - 1
        raw = pa.LargeStringArray.from_buffers(rows, pa.py_buffer(self.offsets), mapped.slice(self.offset, self.length))
        raw_column = pd.arrays.ArrowStringArray(pa.chunked_array([raw]))
        return pd.DataFrame({name: raw_column if name == "raw" else self.columns[name] for name in model.COLUMNS[entity]})


# U+0000 as the canonical JSON writes it. Every row's raw is searched for it, a million
# rows a sync, on bytes already built: first for a backslash alone (memchr, several times
# faster than the six-byte search, and most rows hold no escape at all), and no walk of
# the object unless the escape is there.
_NUL_ESCAPE = b"\\u0000"
_RAW_INDEX = {entity: list(columns).index("raw") for entity, columns in model.COLUMNS.items()}


def _rows(
    entity: str, objects: Iterable[Any], include_private_metadata: bool, nul_replaced: list[str] | None = None
) -> tuple[list[tuple], int]:
    """Row tuples for the objects that are dicts with a text id; also how many were skipped.

    The ids of rows whose NULs were replaced are appended to ``nul_replaced`` when given.
    """
    build = _ROW_BUILDERS[entity]
    raw_index = _RAW_INDEX[entity]
    rows = []
    skipped = 0
    for obj in objects:
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            try:
                row = build(obj, include_private_metadata)
            except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in the JSON): not UTF-8
                obj = _scrub(obj)
                row = build(obj, include_private_metadata)
            raw = row[raw_index]
            if b"\\" in raw and _NUL_ESCAPE in raw:
                cleaned = build(_replace_nul(obj), include_private_metadata)
                # The escape also matches a string holding a backslash then "u0000": no NUL, nothing to report.
                if cleaned[raw_index] != raw:
                    row = cleaned
                    if nul_replaced is not None:
                        nul_replaced.append(row[0])
            rows.append(row)
        else:
            skipped += 1
    return rows, skipped


def _replace_nul(value: Any) -> Any:
    """``value`` with every U+0000 in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_replace_nul(k): _replace_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_nul(v) for v in value]
    return value


def _scrub(value: Any) -> Any:
    """``value`` with lone UTF-16 surrogates in strings replaced by U+FFFD (pairs joined)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def normalize(
    entity: str, objects: Iterable[Mapping[str, Any]], *, include_private_metadata: bool = True
) -> pd.DataFrame:
    """Clerk objects of one entity -> a contract frame, de-duplicated by id (see FrameBuilder)."""
    builder = FrameBuilder(entity, include_private_metadata=include_private_metadata)
    builder.add_page(list(objects))
    return builder.frame()


def users_frame(objects: Iterable[Mapping[str, Any]], *, include_private_metadata: bool = True) -> pd.DataFrame:
    return normalize(model.USERS, objects, include_private_metadata=include_private_metadata)


def organizations_frame(
    objects: Iterable[Mapping[str, Any]], *, include_private_metadata: bool = True
) -> pd.DataFrame:
    return normalize(model.ORGANIZATIONS, objects, include_private_metadata=include_private_metadata)


def memberships_frame(
    objects: Iterable[Mapping[str, Any]], *, include_private_metadata: bool = True
) -> pd.DataFrame:
    return normalize(model.MEMBERSHIPS, objects, include_private_metadata=include_private_metadata)


class FrameBuilder:
    """Accumulates pages of Clerk objects into one contract frame.

    >>> builder = FrameBuilder(model.USERS, include_private_metadata=False)
    >>> for page in pages:            # doctest: +SKIP
    ...     builder.add_page(page)    # the page's dicts can be dropped after this
    >>> users = builder.frame()       # doctest: +SKIP

    Every page becomes one small DataFrame right away (Python lists per column, then
    one pandas array per column: Arrow-backed strings, far smaller than the dicts).
    :meth:`frame` concatenates them and keeps one row per id, the one with the greatest
    ``updated_at`` (ties: the last seen), as offset paging over a live list can repeat
    rows. ``repeats_dropped`` then says how many were dropped; ``skipped`` counts page
    items that were not objects with a text id; ``nul_replaced_ids`` names the rows
    whose NULs were replaced (an id repeats if its row did).

    Past ``spill_after_bytes`` of raw text (default :data:`SPILL_AFTER_BYTES`), the raw
    text of further pages goes to a temporary file, mapped back when the frame is built:
    the ``raw`` column is then backed by the page cache, not by the process's memory.
    """

    def __init__(
        self, entity: str, include_private_metadata: bool = True, *, spill_after_bytes: int | None = None
    ) -> None:
        if entity not in model.COLUMNS:
            raise ValueError(f"unknown entity {entity!r}; expected one of {model.ENTITIES}")
        self.entity = entity
        self.include_private_metadata = include_private_metadata
        self._chunks: list[pd.DataFrame | _SpilledPage] = []
        self._raw_index = list(model.COLUMNS[entity]).index("raw")
        self._spill_after = SPILL_AFTER_BYTES if spill_after_bytes is None else spill_after_bytes
        self._spill: RawSpill | None = None
        self.raw_bytes = 0
        self.rows_seen = 0
        self.skipped = 0
        self.repeats_dropped = 0
        self.repeated_ids: list[str] = []
        self.nul_replaced_ids: list[str] = []

    @property
    def spilled_bytes(self) -> int:
        """Raw text written to the spill file so far."""
        return self._spill.size if self._spill is not None else 0

    def add_page(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Normalize one page; returns how many rows it added."""
        tuples, skipped = _rows(self.entity, rows, self.include_private_metadata, self.nul_replaced_ids)
        self.skipped += skipped
        if tuples:
            raws = [row[self._raw_index] for row in tuples]
            size = sum(map(len, raws))
            if self.raw_bytes + size > self._spill_after:
                self._chunks.append(self._spilled(tuples, raws))
            else:
                self._chunks.append(_chunk(self.entity, tuples))
            self.raw_bytes += size
            self.rows_seen += len(tuples)
        return len(tuples)

    def add_frame(self, frame: pd.DataFrame, *, repeats_dropped: int = 0, nul_replaced_ids: Iterable[str] = ()) -> None:
        """Take a frame another builder made (in another process) as if its pages came here."""
        if len(frame):
            self._chunks.append(frame)
            self.rows_seen += len(frame)
        self.repeats_dropped += repeats_dropped
        self.nul_replaced_ids.extend(nul_replaced_ids)

    def _spilled(self, tuples: list[tuple], raws: list[bytes]) -> _SpilledPage:
        if self._spill is None:
            self._spill = RawSpill()
        offsets = np.zeros(len(raws) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, raws), dtype=np.int64, count=len(raws)), out=offsets[1:])
        offset = self._spill.append(b"".join(raws))
        return _SpilledPage(_columns(self.entity, tuples, with_raw=False), offset, int(offsets[-1]), offsets)

    def frame(self) -> pd.DataFrame:
        """All pages so far as one conformed frame, one row per id."""
        if not self._chunks:
            return model.empty_frame(self.entity)
        if any(isinstance(chunk, _SpilledPage) for chunk in self._chunks):
            mapped = self._spill.mapped()
            self._chunks = [
                chunk.frame(self.entity, mapped) if isinstance(chunk, _SpilledPage) else chunk for chunk in self._chunks
            ]
        frame = self._chunks[0] if len(self._chunks) == 1 else pd.concat(self._chunks, ignore_index=True)
        kept, dropped = dedupe_latest(frame)
        if len(dropped):
            self.repeats_dropped += len(dropped)
            self.repeated_ids += frame["id"].array.take(dropped).tolist()
        # Keep only the result: later pages append to it, and memory holds one copy.
        self._chunks = [kept]
        return kept.copy(deep=False)  # copy-on-write: the caller's edits never reach the builder
