"""The apply's two ways in: straight COPY into an empty table, and staging + upsert.

A first sync loads each still-empty table directly; every later sync stages and upserts.
Both must leave exactly the same rows and audit trail behind.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pandas as pd
import sqlalchemy as sa

from sync_pipeline.clerk.snapshot import read_clerk
from sync_pipeline.diff.rules import plan_sync
from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.mirror.apply import ApplySettings, SyncRunRecord, apply_plan
from sync_pipeline.mirror.database import upgrade_schema
from sync_pipeline.mirror.snapshot import read_mirror
from sync_pipeline.model import ENTITIES, USERS, SyncScope, key_columns
from sync_pipeline_tests.harness import TEST_CLIENT_SETTINGS



def _record() -> SyncRunRecord:
    return SyncRunRecord(run_id="test", mode="full", dry_run=False, scope={}, started_at=datetime.now(timezone.utc), counts={})


def _sync(engine: sa.Engine, schema: str, emulator: EmulatorServer) -> dict:
    from sync_pipeline.clerk.client import ClerkClient

    client = ClerkClient(secret_key=emulator.secret_key, api_url=emulator.base_url, **TEST_CLIENT_SETTINGS)
    clerk, _ = read_clerk(client, SyncScope())
    mirror = read_mirror(engine, schema, SyncScope())
    plan = plan_sync(clerk, mirror.snapshot, live_rows_before=mirror.live_rows)
    return apply_plan(engine, schema, plan, _record(), ApplySettings()).rows_written


def _rows(engine: sa.Engine, schema: str, entity: str) -> pd.DataFrame:
    with engine.connect() as connection:
        frame = pd.read_sql(sa.text(f'SELECT * FROM "{schema}".{entity} WHERE id <> :planted ORDER BY id'), connection,
                            params={"planted": "user_planted"})
    return frame.drop(columns=["synced_at"])


def _audit(engine: sa.Engine, schema: str) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(
            sa.text(f'SELECT entity, entity_id, change_kind, changes, reason FROM "{schema}".sync_changes '
                    "WHERE entity_id <> 'user_planted' ORDER BY entity, entity_id"),
            connection,
        )


def test_a_first_sync_loaded_directly_equals_one_staged_and_upserted(engine: sa.Engine) -> None:
    direct, staged = (f"t_paths_{uuid.uuid4().hex[:8]}" for _ in range(2))
    try:
        with EmulatorServer(users=120, orgs=12, seed=17, secret_key="sk_live_paths", requests_per_10s=0) as emulator:
            for schema in (direct, staged):
                upgrade_schema(engine, schema)
            # A soft-deleted row the sync never touches keeps this table from being empty: staged path.
            with engine.begin() as connection:
                connection.execute(sa.text(
                    f'INSERT INTO "{staged}".users (id, raw, raw_digest, created_at, updated_at, deleted_at) '
                    "VALUES ('user_planted', '{}', 'x', now(), now(), now())"
                ))
            written = {schema: _sync(engine, schema, emulator) for schema in (direct, staged)}

        assert written[direct] == written[staged]
        assert written[direct][USERS]["insert"] == 120
        for entity in ENTITIES:
            pd.testing.assert_frame_equal(_rows(engine, direct, entity), _rows(engine, staged, entity), check_like=True)
        pd.testing.assert_frame_equal(_audit(engine, direct), _audit(engine, staged))
    finally:
        with engine.begin() as connection:
            for schema in (direct, staged):
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def test_a_table_loaded_directly_has_statistics_for_its_keys_and_deleted_at(engine: sa.Engine) -> None:
    """The checks and the mirror read filter on ``deleted_at IS NULL``: without statistics on it
    the planner assumes that matches almost nothing and picks nested loops over whole tables."""
    schema = f"t_stats_{uuid.uuid4().hex[:8]}"
    try:
        with EmulatorServer(users=60, orgs=6, seed=5, secret_key="sk_live_stats", requests_per_10s=0) as emulator:
            upgrade_schema(engine, schema)
            _sync(engine, schema, emulator)
        with engine.connect() as connection:
            analyzed = {
                (row.tablename, row.attname)
                for row in connection.execute(
                    sa.text("SELECT tablename, attname FROM pg_stats WHERE schemaname = :schema"), {"schema": schema}
                )
            }
        for entity in (USERS, "organizations", "organization_memberships"):
            for column in (*key_columns(entity), "deleted_at"):
                assert (entity, column) in analyzed, f"{entity}.{column} has no statistics"
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
