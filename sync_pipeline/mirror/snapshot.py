"""Reading the mirror back into contract frames, restricted to a sync's scope.

Rows stream out of Postgres with ``COPY (SELECT …) TO STDOUT`` as CSV and are parsed by
pyarrow in C, block by block as they arrive: at a million rows this is several times
faster than fetching tuples, and the CSV text is never held whole. JSON columns are
re-serialised once per distinct value.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dataclasses import dataclass

from sync_pipeline import model
from sync_pipeline.entities import catalog
from sync_pipeline.frames import select_rows
from sync_pipeline.model import ENTITIES, LiveKeys, Snapshot, SyncScope
from sync_pipeline.text_columns import is_in

_READ_BLOCK = 4 * 1024 * 1024  # bytes of CSV parsed at a time

_ARROW_TYPES = {
    model.TEXT: pa.large_string(),  # what the frames hold: no cast afterwards
    model.JSON: pa.string(),
    model.BOOL: pa.bool_(),
    model.MILLIS: pa.int64(),
    model.INT: pa.int32(),
}


def millis(column: str) -> str:
    """SQL for a timestamptz column as exact epoch milliseconds (Clerk's unit)."""
    return f"(extract(epoch FROM {column}) * 1000)::bigint"


def _select_list(entity: str) -> tuple[str, dict[str, str]]:
    """The SELECT list for an entity's mirror columns and each column's kind."""
    kinds = {c: k for c, k in model.COLUMNS[entity].items() if c != "raw"}
    kinds.update(model.MIRROR_ONLY_COLUMNS)
    parts = []
    for column, kind in kinds.items():
        if kind == model.MILLIS:
            parts.append(f"{millis(column)} AS {column}")
        elif kind == model.JSON:
            parts.append(f"{column}::text AS {column}")
        else:
            parts.append(column)
    return ", ".join(parts), kinds


def _scope_filter(entity: str, scope: SyncScope) -> tuple[str, dict]:
    """The rows of ``entity`` a scoped sync covers: those the scope names by id, and those
    whose parent it names (a membership of a named user or organization). An entity the
    scope can name neither way is not covered (FALSE): a scoped sync leaves it alone."""
    if scope.is_full:
        return "TRUE", {}
    description = catalog.describe(entity)
    terms, params = [], {}
    if description.scope_ids:
        terms.append("id = ANY(%(self)s)")
        params["self"] = list(scope.ids_of(entity))
    for parent in catalog.scoping_parents(description):
        terms.append(f"{parent.column} = ANY(%({parent.column})s)")
        params[parent.column] = list(scope.ids_of(parent.entity))
    if not terms:
        return "FALSE", {}
    return "(" + " OR ".join(terms) + ")", params


def _canonical_json_column(values: pa.ChunkedArray) -> pd.arrays.ArrowStringArray:
    """Postgres prints jsonb its own way; re-serialise so it compares equal to Clerk's side.

    Each distinct text is parsed and re-serialised once (metadata repeats a lot: ``{}``
    on most rows), then spread back over the rows by an Arrow ``take``.
    """
    encoded = (values.combine_chunks() if values.num_chunks else pa.array([], pa.string())).dictionary_encode()
    texts = encoded.dictionary.to_pylist()
    canonical = pa.array([model.canonical_json(json.loads(text)) for text in texts], type=pa.large_string())
    return pd.arrays.ArrowStringArray(pa.chunked_array([canonical.take(encoded.indices)], type=pa.large_string()))


class _CopyStream(io.RawIOBase):
    """A ``COPY … TO STDOUT`` as a readable binary stream, for pyarrow's streaming CSV reader.

    psycopg hands COPY data over one row at a time; gathering them here in blocks means
    neither the whole CSV text nor a million small ``bytes`` are ever held at once.
    """

    def __init__(self, copy: Any) -> None:
        self._rows = iter(copy)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        parts, size = [self._pending], len(self._pending)
        for row in self._rows:
            parts.append(row)
            size += len(row)
            if size >= wanted:
                break
        data = b"".join(parts)
        buffer[: min(wanted, len(data))] = data[:wanted]
        self._pending = data[wanted:]
        return min(wanted, len(data))


def _read_csv(stream: io.RawIOBase, kinds: dict[str, str]) -> pa.Table | None:
    """The COPY's CSV as one Arrow table (None when it held no row, not even a header)."""
    try:
        reader = pacsv.open_csv(
            io.BufferedReader(stream, buffer_size=_READ_BLOCK),
            read_options=pacsv.ReadOptions(block_size=_READ_BLOCK),
            convert_options=pacsv.ConvertOptions(
                column_types={c: _ARROW_TYPES[k] for c, k in kinds.items()},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,  # "" is an empty string, an unquoted empty field is NULL
                true_values=["t"],
                false_values=["f"],
            ),
        )
    except pa.ArrowInvalid as error:
        if "Empty CSV file" in str(error):
            return None
        raise
    return reader.read_all()


def _frame(table: pa.Table, entity: str, kinds: dict[str, str]) -> pd.DataFrame:
    """Arrow columns -> the contract frame; text stays Arrow (large_string, as the normalizer's)."""
    columns = {}
    for name, kind in kinds.items():
        values = table.column(name)
        if kind == model.JSON:
            columns[name] = _canonical_json_column(values)
        else:
            dtype = pd.api.types.pandas_dtype(model.frame_dtype(kind))
            columns[name] = dtype.__from_arrow__(values)  # Arrow-backed text is not copied
    return pd.DataFrame(columns, copy=False).pipe(model.conform, entity, mirror=True)


def read_entity(
    connection: Connection, schema: str, entity: str, scope: SyncScope, *, ids: list[str] | None = None
) -> pd.DataFrame:
    """The mirror rows of ``entity`` in ``scope`` (or, given ``ids``, those rows only)."""
    select_list, kinds = _select_list(entity)
    where, params = ("id = ANY(%(ids)s)", {"ids": ids}) if ids is not None else _scope_filter(entity, scope)
    query = f'COPY (SELECT {select_list} FROM "{schema}".{entity} WHERE {where} ORDER BY id) TO STDOUT (FORMAT csv, HEADER)'
    raw_connection = connection.connection.driver_connection
    with raw_connection.cursor() as cursor:
        with cursor.copy(query, params or None) as copy:
            table = _read_csv(_CopyStream(copy), kinds)
    if table is None or table.num_rows == 0:
        return model.empty_frame(entity, mirror=True)
    return _frame(table, entity, kinds)


def _live_key_column_frame(connection: Connection, schema: str, entity: str, columns: tuple[str, ...]) -> pd.DataFrame:
    query = (
        f'COPY (SELECT {", ".join(columns)} FROM "{schema}".{entity} WHERE deleted_at IS NULL) '
        "TO STDOUT (FORMAT csv, HEADER)"
    )
    kinds = dict.fromkeys(columns, model.TEXT)
    with connection.connection.driver_connection.cursor() as cursor:
        with cursor.copy(query) as copy:
            table = _read_csv(_CopyStream(copy), kinds)
    dtype = pd.api.types.pandas_dtype(model.frame_dtype(model.TEXT))
    if table is None:
        return pd.DataFrame({c: pd.Series([], dtype=dtype) for c in columns})
    return pd.DataFrame({c: dtype.__from_arrow__(table.column(c)) for c in columns}, copy=False)


def read_live_keys(engine: Engine, schema: str) -> LiveKeys:
    """The ids the mirror holds live, for a full scan to account for; ids only, so cheap
    enough to read while the scan runs (an empty mirror, or none yet, has none)."""
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            exists = connection.execute(
                sa.text("SELECT to_regclass(:table) IS NOT NULL"), {"table": f'"{schema}".{ENTITIES[0]}'}
            ).scalar_one()
            if not exists:
                return LiveKeys.empty()
            frames = {
                entity: _live_key_column_frame(connection, schema, entity, model.key_columns(entity))
                for entity in ENTITIES
            }
    return LiveKeys(frames)


def live_row_counts(connection: Connection, schema: str, entities: Iterable[str] = ENTITIES) -> dict[str, int]:
    """Live rows per mirror table (whole table, whatever the scope): the delete guard's base."""
    counts = {}
    for entity in entities:
        counts[entity] = connection.execute(
            sa.text(f'SELECT count(*) FROM "{schema}".{entity} WHERE deleted_at IS NULL')
        ).scalar_one()
    return counts


def _live_rows_in(frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Live rows of frames holding whole tables: what ``live_row_counts`` would count."""
    return {entity: int(frame["deleted_at"].isna().sum()) for entity, frame in frames.items()}


@dataclass
class MirrorState:
    """The mirror's rows in scope, and each whole table's live row count."""

    snapshot: Snapshot
    live_rows: dict[str, int]


def read_mirror(engine: Engine, schema: str, scope: SyncScope) -> MirrorState:
    """The mirror's rows in scope (live and soft-deleted) and each table's live row count.

    Read in one REPEATABLE READ transaction so the three tables and the counts agree.
    """
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            frames = {entity: read_entity(connection, schema, entity, scope) for entity in ENTITIES}
            # A full scope has just read every row: count them here rather than scan each
            # table again (an index-only count fetches every heap row until a vacuum).
            counts = _live_rows_in(frames) if scope.is_full else live_row_counts(connection, schema)
    return MirrorState(snapshot=Snapshot(scope=scope, **frames), live_rows=counts)


# Past this many ids, reading the whole scope and keeping the ids is faster than a lookup.
_IDS_BY_LOOKUP = 20_000


def _rows_of(
    connection: Connection, schema: str, entity: str, scope: SyncScope, ids: pd.Series
) -> tuple[pd.DataFrame, int | None]:
    """The rows of these ids, and the table's live row count when the read saw the whole table."""
    if len(ids) <= _IDS_BY_LOOKUP:
        return read_entity(connection, schema, entity, scope, ids=ids.dropna().tolist()), None
    frame = read_entity(connection, schema, entity, scope)
    # A full scope has just read every row: count them here rather than scan the table again
    # (after a bulk load an index-only count still visits every heap page, ~0.3 s at 100k users).
    live = _live_rows_in({entity: frame})[entity] if scope.is_full else None
    return select_rows(frame, is_in(frame["id"], ids)), live


def read_mirror_rows(engine: Engine, schema: str, ids: dict[str, pd.Series], scope: SyncScope) -> MirrorState:
    """The mirror rows of these ids (by entity) as a snapshot of ``scope``, and each table's
    live row count: what an apply wrote, read back to check it."""
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            read = {entity: _rows_of(connection, schema, entity, scope, ids[entity]) for entity in ENTITIES}
            uncounted = [entity for entity, (_, live) in read.items() if live is None]
            counts = live_row_counts(connection, schema, uncounted) if uncounted else {}
    frames = {entity: frame for entity, (frame, _) in read.items()}
    counts.update({entity: live for entity, (_, live) in read.items() if live is not None})
    return MirrorState(snapshot=Snapshot(scope=scope, **frames), live_rows={e: counts[e] for e in ENTITIES})


def read_mirror_if_present(engine: Engine, schema: str, scope: SyncScope) -> MirrorState:
    """Like :func:`read_mirror`, but an absent mirror (never synced) reads as empty, unchanged."""
    with engine.connect() as connection:
        exists = connection.execute(
            sa.text("SELECT to_regclass(:table) IS NOT NULL"), {"table": f'"{schema}".{ENTITIES[0]}'}
        ).scalar_one()
    if exists:
        return read_mirror(engine, schema, scope)
    frames = {entity: model.empty_frame(entity, mirror=True) for entity in ENTITIES}
    return MirrorState(snapshot=Snapshot(scope=scope, **frames), live_rows=dict.fromkeys(ENTITIES, 0))
