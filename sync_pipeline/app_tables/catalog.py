"""The declared tables checked against the database's catalog, and the SQL that names them.

Every table and column name of the YAML file is looked up in ``pg_catalog`` before any
statement uses it, and always written quoted (:func:`quote`); values (defaults, anonymized
values) only ever travel as bound JSON and are cast by Postgres itself through
``jsonb_populate_record(NULL::<table>, …)``, so a column's own type decides what a value
means. A bad name or a value that does not fit ends the run here, before any write, with
one line naming the key of the file.

Rows are named by their primary key: ``row_key`` is the key's text (a JSON array of texts
for a composite key), which the plan and the audit trail show, and which the writes turn
back into typed key values to find the row through its index.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from sync_pipeline.app_tables.config import (
    ANONYMIZE,
    DELETE,
    AppTablesConfig,
    AppTableSpec,
)
from sync_pipeline.errors import ConfigurationError

# Clerk ids are strings (user_2abc…): the column holding one must be text-like.
_TEXT_TYPES = ("text", "character varying", "citext")


def quote(identifier: str) -> str:
    """A quoted SQL identifier. Names are catalog-checked first; quoting keeps case and reserved words intact."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    sql_type: str  # format_type(): what CAST(... AS <type>) needs
    nullable: bool
    has_default: bool  # a default, an identity or a generated value fills it when not given
    generated: bool


@dataclass(frozen=True)
class AppTable:
    """A declared table whose every name exists in the database, with the SQL fragments that use them."""

    spec: AppTableSpec
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def qualified(self) -> str:
        return f"{quote(self.spec.schema)}.{quote(self.spec.name)}"

    def column(self, name: str) -> ColumnInfo:
        return next(c for c in self.columns if c.name == name)

    def col(self, alias: str, name: str) -> str:
        return f"{alias}.{quote(name)}"

    def row_key(self, alias: str) -> str:
        """The row's primary key as text: the value for a one-column key, a JSON array of texts otherwise."""
        if len(self.primary_key) == 1:
            return f"{self.col(alias, self.primary_key[0])}::text"
        return f"jsonb_build_array({', '.join(f'{self.col(alias, c)}::text' for c in self.primary_key)})::text"

    def row_key_matches(self, alias: str, key_text: str) -> str:
        """SQL true when row ``alias`` has the key ``key_text`` names (typed, so the primary key index is used)."""
        if len(self.primary_key) == 1:
            column = self.column(self.primary_key[0])
            return f"{self.col(alias, column.name)} = CAST({key_text} AS {column.sql_type})"
        ours = ", ".join(self.col(alias, c) for c in self.primary_key)
        theirs = ", ".join(
            f"CAST(({key_text})::jsonb ->> {i} AS {self.column(c).sql_type})" for i, c in enumerate(self.primary_key)
        )
        return f"({ours}) = ({theirs})"

    def id_text(self, alias: str, which: str) -> str:
        """The user or organization id column as text, or NULL when the table has none."""
        name = self.spec.user_id_column if which == "user" else self.spec.organization_id_column
        return f"{self.col(alias, name)}::text" if name else "NULL::text"

    def unique_key(self, alias: str) -> str:
        """The unique_per key as JSON text; NULL when any part is null (a unique index lets nulls repeat)."""
        columns = self.spec.unique.columns
        any_null = " OR ".join(f"{self.col(alias, c)} IS NULL" for c in columns)
        parts = ", ".join(f"{self.col(alias, c)}::text" for c in columns)
        return f"CASE WHEN {any_null} THEN NULL ELSE jsonb_build_array({parts})::text END"

    def typed_values(self, values_param: str) -> str:
        """A one-row record of the table's type holding the bound JSON object's values, cast by Postgres."""
        return f"jsonb_populate_record(NULL::{self.qualified}, CAST({values_param} AS jsonb))"

    def already_anonymized(self, alias: str, values_alias: str) -> str:
        """True when every anonymized column already holds its value (compared as text: json has no '=')."""
        columns = list(self.spec.anonymize)
        ours = ", ".join(f"{self.col(alias, c)}::text" for c in columns)
        theirs = ", ".join(f"{self.col(values_alias, c)}::text" for c in columns)
        return f"ROW({ours}) IS NOT DISTINCT FROM ROW({theirs})"


# ------------------------------------------------------------------------ the checks


def _table_row(connection: Connection, schema: str, name: str) -> tuple[int, str] | None:
    return connection.execute(
        sa.text(
            "SELECT c.oid, c.relkind FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relname = :name"
        ),
        {"schema": schema, "name": name},
    ).first()


def _tables_in_schema(connection: Connection, schema: str) -> list[str]:
    return list(
        connection.execute(
            sa.text(
                "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')"
            ),
            {"schema": schema},
        ).scalars()
    )


def _columns(connection: Connection, oid: int) -> tuple[ColumnInfo, ...]:
    rows = connection.execute(
        sa.text(
            """
            SELECT attname, format_type(atttypid, atttypmod) AS sql_type, NOT attnotnull AS nullable,
                   atthasdef OR attidentity <> '' OR attgenerated <> '' AS has_default, attgenerated <> '' AS generated
            FROM pg_catalog.pg_attribute WHERE attrelid = CAST(:oid AS oid) AND attnum > 0 AND NOT attisdropped ORDER BY attnum
            """
        ),
        {"oid": oid},
    )
    return tuple(ColumnInfo(r.attname, r.sql_type, r.nullable, r.has_default, r.generated) for r in rows)


def _primary_key(connection: Connection, oid: int) -> tuple[str, ...]:
    return tuple(
        connection.execute(
            sa.text(
                """
                SELECT a.attname FROM pg_catalog.pg_index i
                CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
                JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = CAST(:oid AS oid) AND i.indisprimary ORDER BY k.position
                """
            ),
            {"oid": oid},
        ).scalars()
    )


def _missing_privileges(connection: Connection, oid: int, spec: AppTableSpec) -> list[str]:
    needed = ["SELECT"]
    if spec.provision:
        needed.append("INSERT")
    if spec.orphans == DELETE or spec.unique:
        needed.append("DELETE")
    if spec.orphans == ANONYMIZE:
        needed.append("UPDATE")
    held = sa.text("SELECT has_table_privilege(CAST(:oid AS oid), :privilege)")
    return [p for p in needed if not connection.execute(held, {"oid": oid, "privilege": p}).scalar_one()]


class _Checker:
    """The checks of one table; each failure is one line naming the key of the file."""

    def __init__(self, config: AppTablesConfig, spec: AppTableSpec, columns: tuple[ColumnInfo, ...]) -> None:
        self.config, self.spec = config, spec
        self.by_name = {c.name: c for c in columns}

    def fail(self, key: str, problem: str) -> ConfigurationError:
        return self.config.error(f"{self.spec.where}.{key}: {problem}")

    def column(self, key: str, name: str) -> ColumnInfo:
        if name not in self.by_name:
            close = difflib.get_close_matches(name, list(self.by_name), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; its columns: {', '.join(self.by_name)}"
            raise self.fail(key, f"column {name!r} does not exist in {self.spec.label}{hint}")
        return self.by_name[name]

    def id_column(self, key: str, name: str) -> None:
        column = self.column(key, name)
        base = column.sql_type.split("(")[0].split(".")[-1]
        if base not in _TEXT_TYPES:
            raise self.fail(key, f"column {name!r} is {column.sql_type}, but Clerk ids are text (user_…, org_…): use text or varchar")

    def writable(self, key: str, name: str) -> ColumnInfo:
        column = self.column(key, name)
        if column.generated:
            raise self.fail(key, f"column {name!r} is generated; it cannot be set")
        return column


def _check_values(connection: Connection, table: AppTable, values: dict, key: str, checker: _Checker) -> None:
    """Each value cast to its column's type by Postgres now, so a bad one fails before any write."""
    for name, value in values.items():
        if value is None:
            continue
        try:
            with connection.begin_nested():
                connection.execute(
                    sa.text(f"SELECT ({table.typed_values(':values')}).{quote(name)}"),
                    {"values": json.dumps({name: value})},
                )
        except DBAPIError as error:
            reason = str(error.orig).strip().splitlines()[0] if error.orig else "invalid"
            sql_type = table.column(name).sql_type
            raise checker.fail(f"{key}.{name}", f"{value!r} does not fit the column's type {sql_type}: {reason}") from None


def resolve_table(connection: Connection, config: AppTablesConfig, spec: AppTableSpec) -> AppTable:
    """``spec`` checked against the catalog: every name exists, every value fits, the role may write."""
    found = _table_row(connection, spec.schema, spec.name)
    if found is None:
        close = difflib.get_close_matches(spec.name, _tables_in_schema(connection, spec.schema), n=1)
        hint = f" (did you mean {spec.schema}.{close[0]}?)" if close else ""
        raise config.error(f"tables[{spec.position}].table: {spec.label} does not exist in the database{hint}")
    oid, kind = found
    if kind not in ("r", "p"):
        raise config.error(f"tables[{spec.position}].table: {spec.label} is not a table (a view or other relation)")
    columns = _columns(connection, oid)
    checker = _Checker(config, spec, columns)
    primary_key = _primary_key(connection, oid)
    if not primary_key:
        raise checker.fail("table", "has no primary key: the sync names each row by it in the plan and the audit trail")
    table = AppTable(spec=spec, columns=columns, primary_key=primary_key)

    for key, name in (("user_id_column", spec.user_id_column), ("organization_id_column", spec.organization_id_column)):
        if name:
            checker.id_column(key, name)
    for name, value in spec.anonymize.items():
        column = checker.writable(f"anonymize.{name}", name)
        if name in primary_key:
            raise checker.fail(f"anonymize.{name}", "is part of the primary key, which names the row: it cannot be anonymized")
        if value is None and not column.nullable:
            raise checker.fail(f"anonymize.{name}", f"column {name!r} is NOT NULL: give a value instead of null")
    _check_values(connection, table, spec.anonymize, "anonymize", checker)
    if spec.provision:
        for name, value in spec.provision.defaults.items():
            column = checker.writable(f"provision.defaults.{name}", name)
            if value is None and not column.nullable:
                raise checker.fail(f"provision.defaults.{name}", f"column {name!r} is NOT NULL: give a value instead of null")
        filled = set(spec.id_columns) | set(spec.provision.defaults)
        unfilled = [c.name for c in columns if not c.nullable and not c.has_default and c.name not in filled]
        if unfilled:
            raise checker.fail(
                "provision.defaults",
                f"column {unfilled[0]!r} is NOT NULL without a database default: give it a value under defaults",
            )
        _check_values(connection, table, spec.provision.defaults, "provision.defaults", checker)
    if spec.unique:
        for i, name in enumerate(spec.unique.columns):
            checker.column(f"unique_per.columns[{i}]", name)
        if spec.unique.age_column not in checker.by_name:
            if spec.unique.age_column_given:
                checker.column("unique_per.by", spec.unique.age_column)
            raise checker.fail(
                "unique_per.by",
                f"{spec.label} has no {spec.unique.age_column!r} column: name the column that says which duplicate is older",
            )
    missing = _missing_privileges(connection, oid, spec)
    if missing:
        raise checker.fail("table", f"the sync's database role lacks {', '.join(missing)} on {spec.label}")
    return table


def resolve_tables(connection: Connection, config: AppTablesConfig) -> tuple[AppTable, ...]:
    return tuple(resolve_table(connection, config, spec) for spec in config.tables)
