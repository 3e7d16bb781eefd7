"""Declarations checked against the real catalog: every bad name or value is one line, before any write."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from sync_pipeline.app_tables import apply as app_apply
from sync_pipeline.app_tables.catalog import resolve_tables
from sync_pipeline.app_tables.config import parse_config
from sync_pipeline.app_tables.rules import plan_app_tables
from sync_pipeline.app_tables.snapshot import read_app_tables
from sync_pipeline.errors import ConfigurationError
from sync_pipeline.mirror.database import upgrade_schema
from sync_pipeline.model import SyncScope
from sync_pipeline_tests import fixtures as fx

TABLES = """
CREATE TABLE {app}.user_settings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_user_id text NOT NULL,
    theme text NOT NULL,
    weekly_digest boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {app}.keyed_by_uuid (id uuid PRIMARY KEY, owner uuid);
CREATE TABLE {app}.no_key (user_id text);
CREATE VIEW {app}.settings_view AS SELECT * FROM {app}.user_settings;
"""


@pytest.fixture
def tables(engine: sa.Engine, app_schema: str) -> str:
    with engine.begin() as connection:
        connection.execute(sa.text(TABLES.replace("{app}", f'"{app_schema}"')))
    return app_schema


def resolve(engine: sa.Engine, schema: str, entry: str) -> str:
    """The one-line error resolving ``entry`` raises."""
    config = parse_config(f"tables:\n  - {entry.replace('{app}', schema)}\n", "t.yaml")
    with pytest.raises(ConfigurationError) as raised, engine.connect() as connection, connection.begin():
        resolve_tables(connection, config)
    message = str(raised.value)
    assert "\n" not in message
    return message.replace(schema, "app")


SETTINGS = "{table: {app}.user_settings, user_id_column: clerk_user_id, orphans: delete"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{table: {app}.user_setings, user_id_column: u, orphans: delete}",
         "tables[0].table: app.user_setings does not exist in the database (did you mean app.user_settings?)"),
        (SETTINGS.replace("clerk_user_id", "clerk_userid") + "}",
         "tables[0] (app.user_settings).user_id_column: column 'clerk_userid' does not exist in app.user_settings "
         "(did you mean 'clerk_user_id'?)"),
        ("{table: {app}.keyed_by_uuid, user_id_column: owner, orphans: delete}",
         "user_id_column: column 'owner' is uuid, but Clerk ids are text"),
        ("{table: {app}.no_key, user_id_column: user_id, orphans: delete}", "(app.no_key).table: has no primary key"),
        ("{table: {app}.settings_view, user_id_column: clerk_user_id, orphans: delete}",
         "tables[0].table: app.settings_view is not a table"),
        (SETTINGS + ", provision: {per: user, defaults: {theme: x, weekly_digest: maybe}}}",
         "provision.defaults.weekly_digest: 'maybe' does not fit the column's type boolean"),
        (SETTINGS + ", provision: user}",
         "provision.defaults: column 'theme' is NOT NULL without a database default: give it a value under defaults"),
        (SETTINGS + ", provision: {per: user, defaults: {theme: null}}}",
         "provision.defaults.theme: column 'theme' is NOT NULL: give a value instead of null"),
        (SETTINGS + ", provision: {per: user, defaults: {them: dark}}}",
         "provision.defaults.them: column 'them' does not exist in app.user_settings (did you mean 'theme'?)"),
        ("{table: {app}.user_settings, user_id_column: clerk_user_id, orphans: anonymize, anonymize: {theme: null}}",
         "anonymize.theme: column 'theme' is NOT NULL: give a value instead of null"),
        ("{table: {app}.user_settings, user_id_column: clerk_user_id, orphans: anonymize, anonymize: {id: null}}",
         "anonymize.id: is part of the primary key"),
        (SETTINGS + ", unique_per: {columns: [clerk_user_id], by: made_at}}",
         "unique_per.by: column 'made_at' does not exist"),
    ],
)
def test_each_mismatch_with_the_database_names_its_key(engine: sa.Engine, tables: str, entry: str, expected: str) -> None:
    assert expected in resolve(engine, tables, entry)


def test_a_role_without_the_needed_privileges_is_told_which(engine: sa.Engine, tables: str) -> None:
    role = f"r_{uuid.uuid4().hex[:12]}"
    config = parse_config(
        f"tables:\n  - {SETTINGS.replace('{app}', tables)}, provision: {{per: user, defaults: {{theme: x}}}}}}\n", "t.yaml"
    )
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE ROLE "{role}"; GRANT USAGE ON SCHEMA "{tables}" TO "{role}"'))
        connection.execute(sa.text(f'GRANT SELECT ON "{tables}".user_settings TO "{role}"'))
    try:
        with pytest.raises(ConfigurationError, match=r"the sync's database role lacks INSERT, DELETE on"):
            with engine.connect() as connection, connection.begin():
                connection.execute(sa.text(f'SET LOCAL ROLE "{role}"'))
                resolve_tables(connection, config)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"'))


def test_names_are_quoted_so_mixed_case_and_reserved_words_work(engine: sa.Engine, app_schema: str, schema: str) -> None:
    """Prisma-style camelCase names and a column called "order": written through the real apply."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f'CREATE TABLE "{app_schema}"."UserSettings" ("Id" uuid PRIMARY KEY DEFAULT gen_random_uuid(), '
                '"clerkUserId" text NOT NULL, "order" int NOT NULL, "createdAt" timestamptz NOT NULL DEFAULT now())'
            )
        )
        connection.execute(
            sa.text(f'INSERT INTO "{app_schema}"."UserSettings" ("clerkUserId", "order") VALUES (\'user_9\', 1), (\'user_1\', 1), (\'user_1\', 2)')
        )
    upgrade_schema(engine, schema)
    config = parse_config(
        f"tables:\n  - {{table: {app_schema}.UserSettings, user_id_column: clerkUserId, orphans: delete, "
        "provision: {per: user, defaults: {order: 7}}, unique_per: {columns: [clerkUserId], by: order}}\n",
        "t.yaml",
    )
    clerk = fx.clerk_snapshot(users=[fx.user("user_1"), fx.user("user_2")])
    plans = plan_app_tables(read_app_tables(engine, config, SyncScope()), clerk)
    plan = plans[f"{app_schema}.UserSettings"]
    assert plan.counts() == {"missing": 1, "orphaned": 1, "duplicate": 1}

    with engine.begin() as connection:
        run = connection.execute(
            sa.text(f"INSERT INTO \"{schema}\".sync_runs (mode, dry_run, scope, started_at, outcome) "
                    "VALUES ('test', false, '{}', now(), 'running') RETURNING id")
        ).scalar_one()
        assert app_apply.clean_up(connection, schema, plan, run) == {"delete": 2, "anonymize": 0}
        assert app_apply.provision(connection, schema, plan, run) == 1

    with engine.connect() as connection:
        rows = connection.execute(sa.text(f'SELECT "clerkUserId", "order" FROM "{app_schema}"."UserSettings" ORDER BY 1')).all()
    assert [tuple(r) for r in rows] == [("user_1", 1), ("user_2", 7)]
