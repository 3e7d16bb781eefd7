"""Foreign keys to the mirror and the unique indexes the policies imply, created once the data allows."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sync_pipeline.app_tables import integrity
from sync_pipeline.app_tables.config import parse_config
from sync_pipeline.errors import ConfigurationError
from sync_pipeline.mirror.apply import ApplySettings
from sync_pipeline.mirror.database import upgrade_schema

TABLES = """
INSERT INTO {mirror}.users (id, raw, raw_digest) VALUES ('user_1', '{}', ''), ('user_2', '{}', '');
INSERT INTO {mirror}.organizations (id, raw, raw_digest) VALUES ('org_1', '{}', '');
CREATE TABLE {app}.user_settings (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), clerk_user_id text NOT NULL,
                                  created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE {app}.user_profile (user_id text, organization_id text, created_at timestamptz DEFAULT now(),
                                 PRIMARY KEY (user_id, organization_id));
CREATE TABLE {app}.tasks (id bigint PRIMARY KEY, owner_id varchar(64) NOT NULL);
CREATE TABLE {app}.comments (id text PRIMARY KEY, author_id text, author_name text);
CREATE TABLE {app}.notes (id bigint PRIMARY KEY, user_id text);
INSERT INTO {app}.user_settings (clerk_user_id) VALUES ('user_1'), ('user_1'), ('user_ghost');
INSERT INTO {app}.user_profile VALUES ('user_1', 'org_1');
INSERT INTO {app}.tasks VALUES (1, 'user_1'), (2, 'user_2');
INSERT INTO {app}.comments VALUES ('c1', 'user_2', 'Two');
INSERT INTO {app}.notes VALUES (1, 'user_1');
"""
DECLARATIONS = """
tables:
  - {table: {app}.user_settings, user_id_column: clerk_user_id, orphans: delete, unique_per: [clerk_user_id]}
  - {table: {app}.user_profile, user_id_column: user_id, organization_id_column: organization_id, orphans: delete,
     unique_per: [organization_id, user_id]}
  - {table: {app}.tasks, user_id_column: owner_id, orphans: delete}
  - {table: {app}.comments, user_id_column: author_id, orphans: anonymize, anonymize: {author_id: null, author_name: gone}}
  - {table: {app}.notes, user_id_column: user_id, orphans: keep}
"""


def by_name(constraints: list[integrity.Constraint]) -> dict[str, integrity.Constraint]:
    """Constraints as "<table> fk <column>" or "<table> unique"."""
    named = {}
    for c in constraints:
        table = c.table.split(".")[1]
        named[f"{table} fk {c.description[1:].split(')')[0]}" if c.kind == "foreign key" else f"{table} unique"] = c
    return named


class Database:
    def __init__(self, engine: sa.Engine, mirror: str, app: str) -> None:
        self.engine, self.mirror, self.app = engine, mirror, app
        self.config = parse_config(DECLARATIONS.replace("{app}", app), "t.yaml")

    def execute(self, sql: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.text(sql.replace("{app}", f'"{self.app}"').replace("{mirror}", f'"{self.mirror}"')))

    def survey(self, *, hard_delete: bool = False) -> dict[str, integrity.Constraint]:
        return by_name(integrity.survey(self.engine, self.config, self.mirror, hard_delete=hard_delete))

    def create(self) -> dict[str, integrity.Constraint]:
        return by_name(integrity.create_ready(self.engine, self.config, self.mirror, hard_delete=False, settings=ApplySettings()))

    def on_delete(self, table: str) -> str:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT confdeltype FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) AND contype = 'f'"),
                {"t": f'"{self.app}".{table}'},
            ).scalar_one()


@pytest.fixture
def database(engine: sa.Engine, schema: str, app_schema: str) -> Database:
    upgrade_schema(engine, schema)
    db = Database(engine, schema, app_schema)
    db.execute(TABLES)
    return db


def test_the_survey_reports_what_blocks_each_constraint_and_writes_nothing(database: Database) -> None:
    found = database.survey()

    ghost = found["user_settings fk clerk_user_id"]
    assert ghost.status == integrity.BLOCKED and ghost.blocking_rows == 1  # user_ghost: never in the mirror
    assert "ON DELETE CASCADE" in ghost.description
    assert "1 rows point at ids the mirror has never held" in ghost.describe()
    duplicates = found["user_settings unique"]
    assert duplicates.status == integrity.BLOCKED and duplicates.sample == ['["user_1"]']
    # The primary key on (user_id, organization_id) already makes the pair unique, whatever the order.
    assert found["user_profile unique"].status == integrity.PRESENT
    assert "ON DELETE SET NULL" in found["comments fk author_id"].description
    assert "ON DELETE NO ACTION" in found["notes fk user_id"].description
    ready = ("tasks fk owner_id", "comments fk author_id", "notes fk user_id", "user_profile fk user_id", "user_profile fk organization_id")
    assert all(found[name].status == integrity.READY for name in ready)
    with pytest.raises(sa.exc.NoResultFound):  # nothing was created
        database.on_delete("tasks")


def test_ready_constraints_are_created_with_on_delete_per_policy_and_blocked_ones_wait(database: Database) -> None:
    created = database.create()

    assert created["tasks fk owner_id"].status == integrity.CREATED
    assert created["user_settings fk clerk_user_id"].status == integrity.BLOCKED
    assert created["user_settings unique"].status == integrity.BLOCKED
    assert database.on_delete("tasks") == "c"  # CASCADE
    assert database.on_delete("comments") == "n"  # SET NULL
    assert database.on_delete("notes") == "a"  # NO ACTION

    # What `app-tables sync --apply` would do: the orphan deleted, one of the two duplicates.
    database.execute(
        "DELETE FROM {app}.user_settings WHERE clerk_user_id = 'user_ghost' "
        "OR id = (SELECT max(id::text)::uuid FROM {app}.user_settings WHERE clerk_user_id = 'user_1')"
    )
    again = database.create()

    assert again["user_settings fk clerk_user_id"].status == integrity.CREATED
    assert again["user_settings unique"].status == integrity.CREATED
    assert again["tasks fk owner_id"].status == integrity.PRESENT
    with pytest.raises(sa.exc.IntegrityError):  # the unique index holds now
        database.execute("INSERT INTO {app}.user_settings (clerk_user_id) VALUES ('user_1')")
    with pytest.raises(sa.exc.IntegrityError):  # and the foreign key
        database.execute("INSERT INTO {app}.tasks VALUES (3, 'user_unknown')")


def test_with_hard_deletes_a_key_that_would_block_the_mirror_is_not_offered(database: Database) -> None:
    found = database.survey(hard_delete=True)

    assert found["notes fk user_id"].status == integrity.NOT_POSSIBLE
    assert "SYNC_HARD_DELETE" in found["notes fk user_id"].describe()
    assert found["tasks fk owner_id"].status == integrity.READY


def test_the_mirror_must_exist_first(engine: sa.Engine, app_schema: str) -> None:
    config = parse_config(DECLARATIONS.replace("{app}", app_schema), "t.yaml")

    with pytest.raises(ConfigurationError, match="run `sync-pipeline sync` first"):
        integrity.survey(engine, config, "no_such_mirror", hard_delete=False)
