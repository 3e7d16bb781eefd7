"""Reading the application's tables: the rows in a sync's scope, as small frames the diff can judge.

Only what the rules need is read, never the application's data itself: per row its key,
the Clerk ids it holds, its ``unique_per`` key, where it stands in the order the
duplicate rule keeps rows (ordering values of any SQL type is Postgres' job), and whether
it already holds its anonymized values. Rows stream out with ``COPY … TO STDOUT`` and are
parsed by pyarrow, as the mirror's are.

A scoped sync reads the rows whose user id is one of the scope's users or whose
organization id is one of its organizations, nothing else.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync_pipeline.app_tables.catalog import AppTable, resolve_tables
from sync_pipeline.app_tables.config import ANONYMIZE, NEWEST, AppTablesConfig
from sync_pipeline.model import SyncScope

# The frame every table is read into: Arrow types as read, pandas dtypes as the diff sees them.
ROW_COLUMNS: dict[str, pa.DataType] = {
    "row_key": pa.string(),  # the primary key as text (see catalog.AppTable.row_key)
    "user_id": pa.string(),
    "organization_id": pa.string(),
    "unique_key": pa.string(),  # the unique_per key as JSON text; null when the table has none or a part is null
    "keep_rank": pa.int64(),  # 1 is the row the unique_per rule keeps first (oldest or newest, then the key)
    "anonymized": pa.bool_(),  # already holds every anonymized value
}


_FRAME_DTYPES = {pa.string(): "string", pa.int64(): "Int64", pa.bool_(): "boolean"}


def _as_frame(arrow: pa.Table) -> pd.DataFrame:
    return pd.DataFrame({c: arrow.column(c).to_pandas().astype(_FRAME_DTYPES[t]) for c, t in ROW_COLUMNS.items()})


def empty_rows() -> pd.DataFrame:
    return _as_frame(pa.table({c: pa.array([], type=t) for c, t in ROW_COLUMNS.items()}))


@dataclass
class AppTableState:
    table: AppTable
    rows: pd.DataFrame  # ROW_COLUMNS, the rows in scope that hold a Clerk id
    total_rows: int  # the whole table's rows: the guard's base


@dataclass
class AppTablesSnapshot:
    """Every declared table's rows in scope; no tables when the feature is off."""

    scope: SyncScope = field(default_factory=SyncScope)
    tables: dict[str, AppTableState] = field(default_factory=dict)  # by label (schema.table)
    source: str = ""  # the YAML file, for messages

    @property
    def enabled(self) -> bool:
        return bool(self.tables)


def _scope_filter(table: AppTable, scope: SyncScope) -> tuple[str, dict]:
    spec = table.spec
    holds_an_id = " OR ".join(f"{table.col('t', c)} IS NOT NULL" for c in spec.id_columns)
    if scope.is_full:
        return f"({holds_an_id})", {}
    parts, params = [], {}
    if spec.user_id_column and scope.user_ids:
        parts.append(f"{table.col('t', spec.user_id_column)} = ANY(%(users)s)")
        params["users"] = list(scope.user_ids)
    if spec.organization_id_column and scope.organization_ids:
        parts.append(f"{table.col('t', spec.organization_id_column)} = ANY(%(orgs)s)")
        params["orgs"] = list(scope.organization_ids)
    return (f"({' OR '.join(parts)})" if parts else "FALSE"), params


def rows_query(table: AppTable, scope: SyncScope) -> tuple[str, dict]:
    """The SELECT of a table's rows in scope (psycopg placeholders: identifiers hold no '%', see config)."""
    spec = table.spec
    params: dict = {}
    joins = ""
    anonymized = "false"
    if spec.orphans == ANONYMIZE:
        joins = f" CROSS JOIN {table.typed_values('%(anonymize)s')} AS v"
        params["anonymize"] = json.dumps(spec.anonymize)
        anonymized = table.already_anonymized("t", "v")
    unique_key, keep_rank = "NULL::text", "NULL::bigint"
    if spec.unique:
        unique_key = table.unique_key("t")
        direction = "DESC" if spec.unique.keep == NEWEST else "ASC"
        tie_break = ", ".join(table.col("t", c) for c in table.primary_key)
        keep_rank = f"row_number() OVER (ORDER BY {table.col('t', spec.unique.age_column)} {direction} NULLS LAST, {tie_break})"
    where, scope_params = _scope_filter(table, scope)
    params.update(scope_params)
    query = (
        f"SELECT {table.row_key('t')} AS row_key, {table.id_text('t', 'user')} AS user_id, "
        f"{table.id_text('t', 'organization')} AS organization_id, {unique_key} AS unique_key, "
        f"{keep_rank} AS keep_rank, {anonymized} AS anonymized "
        f"FROM {table.qualified} AS t{joins} WHERE {where}"
    )
    return query, params


def _copy_rows(connection: Connection, query: str, params: dict) -> pd.DataFrame:
    buffer = io.BytesIO()
    with connection.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)", params or None) as copy:
            for chunk in copy:
                buffer.write(chunk)
    if buffer.tell() == 0:
        return empty_rows()
    buffer.seek(0)
    arrow = pacsv.read_csv(
        buffer,
        convert_options=pacsv.ConvertOptions(
            column_types=ROW_COLUMNS,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,  # "" is an empty string, an unquoted empty field is NULL
            true_values=["t"],
            false_values=["f"],
        ),
    )
    return _as_frame(arrow)


def read_table(connection: Connection, table: AppTable, scope: SyncScope) -> AppTableState:
    query, params = rows_query(table, scope)
    rows = _copy_rows(connection, query, params)
    total = connection.execute(sa.text(f"SELECT count(*) FROM {table.qualified}")).scalar_one()
    return AppTableState(table=table, rows=rows, total_rows=int(total))


def read_app_tables(engine: Engine, config: AppTablesConfig | None, scope: SyncScope) -> AppTablesSnapshot:
    """Check every declared table against the catalog, then read its rows in scope.

    One REPEATABLE READ transaction, so all the tables are read as of one moment. A bad
    name or value raises ``ConfigurationError`` here, before the sync writes anything.
    """
    if config is None:
        return AppTablesSnapshot(scope=scope)
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            tables = resolve_tables(connection, config)
            states = {table.label: read_table(connection, table, scope) for table in tables}
    return AppTablesSnapshot(scope=scope, tables=states, source=config.source)
