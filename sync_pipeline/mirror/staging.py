"""Bulk-loading rows to write into a temporary staging table, the fast way into Postgres.

The apply step writes every mirror row from ``stage_<entity>`` with set-based SQL; this
module only gets the rows there. ``COPY FROM STDIN`` is the bulk path Postgres offers.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync_pipeline import model

_SQL_TYPE = {model.TEXT: "text", model.JSON: "jsonb", model.BOOL: "boolean", model.MILLIS: "bigint", model.INT: "integer"}


def stage_columns(entity: str) -> dict[str, str]:
    """Staging column -> SQL type: the contract columns, timestamps still in epoch ms."""
    return {c: _SQL_TYPE[k] for c, k in model.COLUMNS[entity].items()}


def copy_into_stage(connection: Connection, entity: str, upserts: pd.DataFrame) -> None:
    """Bulk-load the rows to write into a temporary table that dies with the transaction."""
    columns = stage_columns(entity)
    definition = ", ".join(f"{c} {t}" for c, t in columns.items())
    connection.execute(sa.text(f"CREATE TEMPORARY TABLE stage_{entity} ({definition}, change_kind text) ON COMMIT DROP"))
    names = [*columns, "change_kind"]
    values = [upserts[c].astype(object).where(upserts[c].notna(), None).tolist() for c in names]
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY stage_{entity} ({', '.join(names)}) FROM STDIN") as copy:
        for row in zip(*values):
            copy.write_row(row)
    connection.execute(sa.text(f"ANALYZE stage_{entity}"))
