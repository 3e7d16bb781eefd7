"""Bulk-loading rows to write into a temporary staging table, the fast way into Postgres.

The apply step writes every mirror row from ``stage_<entity>`` with set-based SQL; this
module only gets the rows there. ``COPY FROM STDIN`` is the bulk path Postgres offers.
Into a table that is still empty (a first sync) the rows go straight in, with no staging
table, no join and no conflict to look for: half the work of the staged path.

The rows travel as CSV written by pyarrow in C++ from the frame's Arrow columns (the
text columns are Arrow already, so nothing is converted row by row in Python), a slice
of rows at a time so the CSV never has to fit in memory at once. pyarrow quotes every
string and leaves a null empty and unquoted, which is exactly how Postgres' CSV format
tells an empty string from NULL. Raw text the normalizer spilled to a file is read
once and its pages handed back to the page cache right after (see ``FrameBuilder``).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync_pipeline import model
from sync_pipeline.frames import release_spilled_pages

_SQL_TYPE = {model.TEXT: "text", model.JSON: "jsonb", model.BOOL: "boolean", model.MILLIS: "bigint", model.INT: "integer"}
_ARROW_TYPE = {model.TEXT: pa.large_string(), model.JSON: pa.large_string(), model.BOOL: pa.bool_(),
               model.MILLIS: pa.int64(), model.INT: pa.int32()}
_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="needed", batch_size=4096)
# Rows per CSV slice: about 16 MB for users (whose raw is 1-2 kB), so memory stays flat.
_ROWS_PER_SLICE = 10_000


def stage_columns(entity: str) -> dict[str, str]:
    """Staging column -> SQL type: the contract columns, timestamps still in epoch ms."""
    return {c: _SQL_TYPE[k] for c, k in model.COLUMNS[entity].items()}


def _arrow_column(values: pd.Series, arrow_type: pa.DataType) -> pa.ChunkedArray:
    """A frame column as Arrow; Arrow-backed text is used in place, not copied."""
    array = values.array
    if isinstance(array, pd.arrays.ArrowStringArray | pd.arrays.ArrowExtensionArray):
        column = array.__arrow_array__()
    else:
        column = pa.array(array, from_pandas=True)
    if not isinstance(column, pa.ChunkedArray):
        column = pa.chunked_array([column])
    return column if column.type == arrow_type else column.cast(arrow_type)


def stage_table(entity: str, upserts: pd.DataFrame) -> pa.Table:
    """The staging columns of ``upserts`` (plus ``change_kind``) as one Arrow table."""
    kinds = {**model.COLUMNS[entity], "change_kind": model.TEXT}
    return pa.table({name: _arrow_column(upserts[name], _ARROW_TYPE[kind]) for name, kind in kinds.items()})


def copy_into_stage(connection: Connection, entity: str, upserts: pd.DataFrame) -> None:
    """Bulk-load the rows to write into a temporary table that dies with the transaction."""
    columns = stage_columns(entity)
    definition = ", ".join(f"{c} {t}" for c, t in columns.items())
    connection.execute(sa.text(f"CREATE TEMPORARY TABLE stage_{entity} ({definition}, change_kind text) ON COMMIT DROP"))
    names = [*columns, "change_kind"]
    table = stage_table(entity, upserts)
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY stage_{entity} ({', '.join(names)}) FROM STDIN (FORMAT csv)") as copy:
        _write_csv(copy, table)
    # Statistics for the join on id (and the row count); skipping the other columns keeps
    # ANALYZE from reading every sampled raw document (about a tenth of the staging time).
    connection.execute(sa.text(f"ANALYZE stage_{entity} (id)"))


# Epoch milliseconds the direct load writes as timestamps; outside (years 1900 to 9999)
# a row goes through the staging table, whose SQL conversion handles any value.
_SAFE_MILLIS = (-2_208_988_800_000, 253_402_300_799_999)


def direct_load_table(entity: str, rows: pd.DataFrame) -> pa.Table | None:
    """``rows`` as the mirror table's own columns (timestamps as timestamps), or None when a
    timestamp is out of the range the CSV text round-trips exactly."""
    columns = {}
    for name, kind in model.COLUMNS[entity].items():
        column = _arrow_column(rows[name], _ARROW_TYPE[kind])
        if kind == model.MILLIS:
            low, high = pc.min_max(column).values()
            if (low.is_valid and low.as_py() < _SAFE_MILLIS[0]) or (high.is_valid and high.as_py() > _SAFE_MILLIS[1]):
                return None
            column = column.cast(pa.timestamp("ms", tz="UTC"))
        columns[name] = column
    return pa.table(columns)


def copy_into_table(connection: Connection, schema: str, entity: str, table: pa.Table) -> None:
    """``COPY`` rows straight into an empty mirror table (synced_at and deleted_at take their defaults).

    Its indexes stay: dropping and rebuilding them would lock readers out of the table
    for the whole first sync, for a fifth of the load time.
    """
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f'COPY "{schema}".{entity} ({", ".join(table.column_names)}) FROM STDIN (FORMAT csv)') as copy:
        _write_csv(copy, table)


def _write_csv(copy, table: pa.Table) -> None:  # noqa: ANN001 - psycopg's Copy
    # Slice by slice: the CSV text of a million users never sits in memory at once. (Writing
    # the next slices in a thread while Postgres reads was measured: no gain, Postgres is the
    # bound.)
    for start in range(0, table.num_rows, _ROWS_PER_SLICE):
        rows = table.slice(start, _ROWS_PER_SLICE)
        sink = pa.BufferOutputStream()
        pacsv.write_csv(rows, sink, _CSV_OPTIONS)
        copy.write(sink.getvalue())
        release_spilled_pages(rows.column("raw"))  # read once; back to the page cache
