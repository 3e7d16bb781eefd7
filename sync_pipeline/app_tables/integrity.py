"""Constraints the application can lean on: foreign keys to the mirror, unique indexes the policies imply.

For every declared table:

- a foreign key from each id column to the mirror (``users.id``, ``organizations.id``),
  ``ON DELETE`` following the table's orphan policy: ``delete`` -> ``CASCADE``,
  ``anonymize`` clearing that column -> ``SET NULL``, otherwise ``NO ACTION``. The mirror
  soft-deletes by default, so these only fire under ``SYNC_HARD_DELETE``, and the sync
  cleans dependants up before it deletes anyway; a ``NO ACTION`` key would then block the
  mirror's own delete, so with hard deletes it is not offered.
- a unique index on the ``unique_per`` columns.

Each is ``present`` (an equivalent constraint exists, whatever its name), ``ready`` (the
data allows it), ``blocked`` (rows would violate it: they are counted and sampled) or
``not possible``. ``--apply`` creates the ready ones in one transaction under the sync's
write lock, re-checking the data there; the foreign keys are added ``NOT VALID`` and then
validated, which holds a weaker lock on the application's table while the rows are checked.

Caveat worth knowing before turning foreign keys on: an application that inserts a row for
a user the mirror has not received yet (a webhook still in flight) will be refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync_pipeline.app_tables.catalog import AppTable, quote, resolve_tables
from sync_pipeline.app_tables.config import ANONYMIZE, DELETE, MEMBERSHIP, ORGANIZATION, USER, AppTablesConfig
from sync_pipeline.errors import ConfigurationError
from sync_pipeline.mirror.apply import ApplySettings, acquire_write_lock

PRESENT = "present"
READY = "ready"
BLOCKED = "blocked"
NOT_POSSIBLE = "not possible"
CREATED = "created"

SAMPLE_ROWS = 5


@dataclass
class Constraint:
    table: str  # schema.table
    kind: str  # "foreign key" | "unique index"
    name: str
    description: str  # e.g. (clerk_user_id) -> clerk.users(id) ON DELETE CASCADE
    ddl: list[str]
    status: str = READY
    blocking_rows: int = 0
    sample: list[str] = field(default_factory=list)  # row keys (foreign keys) or unique keys (indexes)
    note: str = ""

    def describe(self) -> str:
        line = f"{self.table}: {self.kind} {self.name} {self.description}: {self.status}"
        if self.status == BLOCKED:
            what = "rows point at ids the mirror has never held" if self.kind == "foreign key" else "keys are shared by several rows"
            line += f", {self.blocking_rows} {what} (e.g. {', '.join(self.sample)})"
        if self.note:
            line += f" ({self.note})"
        return line


def _name(*parts: str, suffix: str) -> str:
    """Postgres' own naming (table_column_fkey), shortened with a hash past the 63-byte limit."""
    name = "_".join(parts) + f"_{suffix}"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.md5(name.encode()).hexdigest()[:8]
    return name.encode()[: 63 - len(suffix) - 10].decode(errors="ignore") + f"_{digest}_{suffix}"


def _on_delete(table: AppTable, column: str, entity: str, hard_delete: bool) -> tuple[str | None, str]:
    """The ON DELETE action a column's foreign key takes, or None with the reason it cannot have one."""
    spec = table.spec
    governs = spec.owner == entity or spec.owner == MEMBERSHIP  # does this parent's going orphan the row?
    if governs and spec.orphans == DELETE:
        return "CASCADE", ""
    if governs and spec.orphans == ANONYMIZE and column in spec.anonymize and spec.anonymize[column] is None:
        return "SET NULL", ""
    if hard_delete:
        return None, (
            "SYNC_HARD_DELETE deletes mirror rows, and rows this policy leaves pointing at them would block that; "
            "a delete policy, or anonymize setting this column to null, allows the key"
        )
    return "NO ACTION", ""


def _foreign_keys(connection: Connection, table: AppTable, mirror_schema: str, hard_delete: bool) -> list[Constraint]:
    spec = table.spec
    found = []
    for column, entity, parent in (
        (spec.user_id_column, USER, "users"),
        (spec.organization_id_column, ORGANIZATION, "organizations"),
    ):
        if not column:
            continue
        parent_table = f"{quote(mirror_schema)}.{parent}"
        action, why_not = _on_delete(table, column, entity, hard_delete)
        name = _name(spec.name, column, suffix="fkey")
        description = f"({column}) -> {mirror_schema}.{parent}(id)" + (f" ON DELETE {action}" if action else "")
        constraint = Constraint(spec.label, "foreign key", name, description, ddl=[])
        if action is None:
            constraint.status, constraint.note = NOT_POSSIBLE, why_not
            found.append(constraint)
            continue
        constraint.ddl = [
            f"ALTER TABLE {table.qualified} ADD CONSTRAINT {quote(name)} FOREIGN KEY ({quote(column)}) "
            f"REFERENCES {parent_table} (id) ON DELETE {action} NOT VALID",
            f"ALTER TABLE {table.qualified} VALIDATE CONSTRAINT {quote(name)}",
        ]
        existing = connection.execute(
            sa.text(
                """
                SELECT c.conname FROM pg_catalog.pg_constraint c
                JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attname = :column
                WHERE c.contype = 'f' AND c.conrelid = CAST(:table AS regclass)
                  AND c.confrelid = CAST(:parent AS regclass) AND c.conkey = ARRAY[a.attnum]
                """
            ),
            {"column": column, "table": table.qualified, "parent": parent_table},
        ).scalar()
        if existing:
            constraint.status, constraint.name, constraint.ddl = PRESENT, existing, []
        else:
            blocking = connection.execute(
                sa.text(
                    f"""
                    SELECT {table.row_key('t')} AS row_key, count(*) OVER () AS total
                    FROM {table.qualified} AS t
                    WHERE {table.col('t', column)} IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM {parent_table} AS p WHERE p.id = {table.col('t', column)})
                    ORDER BY 1 LIMIT {SAMPLE_ROWS}
                    """
                )
            ).all()
            if blocking:
                constraint.status, constraint.blocking_rows = BLOCKED, int(blocking[0].total)
                constraint.sample = [row.row_key for row in blocking]
        found.append(constraint)
    return found


def _unique_index(connection: Connection, table: AppTable) -> list[Constraint]:
    spec = table.spec
    if not spec.unique:
        return []
    columns = spec.unique.columns
    name = _name(spec.name, *columns, suffix="key")
    constraint = Constraint(
        spec.label,
        "unique index",
        name,
        f"({', '.join(columns)})",
        ddl=[f"CREATE UNIQUE INDEX {quote(name)} ON {table.qualified} ({', '.join(quote(c) for c in columns)})"],
    )
    # Any unique, non-partial index on exactly these columns (in any order) does the job, the primary key too.
    existing = connection.execute(
        sa.text(
            """
            SELECT ic.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
            WHERE i.indrelid = CAST(:table AS regclass) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
              AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) = CAST(:columns AS text[])
              AND i.indnkeyatts = cardinality(CAST(:columns AS text[]))
            """
        ),
        {"table": table.qualified, "columns": sorted(columns)},
    ).scalar()
    if existing:
        constraint.status, constraint.name, constraint.ddl = PRESENT, existing, []
        return [constraint]
    blocking = connection.execute(
        sa.text(
            f"""
            SELECT {table.unique_key('t')} AS unique_key, count(*) OVER () AS total
            FROM {table.qualified} AS t
            WHERE {' AND '.join(f"{table.col('t', c)} IS NOT NULL" for c in columns)}
            GROUP BY {', '.join(table.col('t', c) for c in columns)} HAVING count(*) > 1
            ORDER BY 1 LIMIT {SAMPLE_ROWS}
            """
        )
    ).all()
    if blocking:
        constraint.status, constraint.blocking_rows = BLOCKED, int(blocking[0].total)
        constraint.sample = [row.unique_key for row in blocking]
    return [constraint]


def _mirror_present(connection: Connection, mirror_schema: str) -> bool:
    return connection.execute(
        sa.text("SELECT to_regclass(:users) IS NOT NULL"), {"users": f"{quote(mirror_schema)}.users"}
    ).scalar_one()


def _survey(connection: Connection, config: AppTablesConfig, mirror_schema: str, hard_delete: bool) -> list[Constraint]:
    if not _mirror_present(connection, mirror_schema):
        raise ConfigurationError(
            f"the mirror schema {mirror_schema!r} has no tables yet: run `sync-pipeline sync` first, "
            "the foreign keys point at it"
        )
    constraints = []
    for table in resolve_tables(connection, config):
        constraints += _foreign_keys(connection, table, mirror_schema, hard_delete)
        constraints += _unique_index(connection, table)
    return constraints


def survey(engine: Engine, config: AppTablesConfig, mirror_schema: str, *, hard_delete: bool) -> list[Constraint]:
    """Every constraint the declarations imply, and whether the data allows it now. Writes nothing."""
    with engine.connect() as connection, connection.begin():
        return _survey(connection, config, mirror_schema, hard_delete)


def create_ready(
    engine: Engine, config: AppTablesConfig, mirror_schema: str, *, hard_delete: bool, settings: ApplySettings
) -> list[Constraint]:
    """Create every constraint the data allows, in one transaction under the sync's write lock.

    The data is surveyed again inside that transaction, so no sync can add a blocking row
    between the check and the DDL.
    """
    with engine.begin() as connection:
        acquire_write_lock(connection, mirror_schema, settings)
        constraints = _survey(connection, config, mirror_schema, hard_delete)
        for constraint in constraints:
            if constraint.status != READY:
                continue
            for statement in constraint.ddl:
                connection.execute(sa.text(statement))
            constraint.status = CREATED
    return constraints
