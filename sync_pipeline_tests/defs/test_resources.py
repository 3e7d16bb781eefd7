"""The mirror database resource: made ready (reachable, migrated) once per instance, not once per step."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.errors import DatabaseUnavailableError


def _schema_exists(engine: sa.Engine, schema: str) -> bool:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :schema)"), {"schema": schema}
        ).scalar_one()


def test_ensure_ready_migrates_once_per_resource_instance(database_url: str, engine: sa.Engine, schema: str) -> None:
    mirror_db = MirrorDatabase(database_url=database_url, db_schema=schema)
    mirror_db.ensure_ready()
    assert _schema_exists(engine, schema)

    # Every step and check of a run asks again; only the first call touches the database.
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    mirror_db.ensure_ready()
    assert not _schema_exists(engine, schema)

    # A new instance (the next run, or another step process) checks and migrates again.
    MirrorDatabase(database_url=database_url, db_schema=schema).ensure_ready()
    assert _schema_exists(engine, schema)


def test_an_unreachable_database_gives_the_same_clear_error_on_every_call() -> None:
    # Port 1 on the loopback refuses at once: a database that is down.
    mirror_db = MirrorDatabase(database_url="postgresql://postgres@127.0.0.1:1/test", db_schema="clerk")
    for _ in range(2):  # a failure is not remembered as ready
        with pytest.raises(DatabaseUnavailableError, match="cannot connect to the database"):
            mirror_db.ensure_ready()
