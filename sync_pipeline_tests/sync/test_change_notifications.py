"""Applications learn what changed: a NOTIFY per applied sync, and sync_changes read as an outbox."""

from __future__ import annotations

import json

import psycopg
from sqlalchemy.engine import make_url

from sync_pipeline.mirror.changes import CHANNEL
from sync_pipeline_tests.harness import SyncHarness


def listener(database_url: str) -> psycopg.Connection:
    url = make_url(database_url).set(drivername="postgresql")
    connection = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
    connection.execute(f"LISTEN {CHANNEL}")
    return connection


def ours(subscriber: psycopg.Connection, schema: str, *, timeout: float) -> list[dict]:
    """This schema's notifications within ``timeout`` (stopping at the first): NOTIFY is database-wide, so
    on a shared server other tests' syncs notify the same channel."""
    found = []
    for notify in subscriber.notifies(timeout=timeout):
        payload = json.loads(notify.payload)
        if payload.get("schema") == schema:
            found.append(payload)
            break
    return found


def test_each_applied_sync_notifies_and_the_outbox_resumes_where_a_consumer_left(harness: SyncHarness) -> None:
    with listener(harness.database_url) as subscriber:
        assert harness.run().success
        (first_payload,) = ours(subscriber, harness.schema, timeout=5)
        assert first_payload["changes"]["users"]["insert"] == 200

        assert harness.run().success  # nothing changed: no notification
        assert ours(subscriber, harness.schema, timeout=1) == []

        user_id = next(iter(harness.emulator.store.iter_users()))["id"]
        harness.emulator.store.update_user(user_id, first_name="Notified")
        assert harness.run().success
        (payload,) = ours(subscriber, harness.schema, timeout=5)

    assert payload["first_change_id"] > first_payload["last_change_id"]
    # A consumer that handled everything up to the first sync resumes from its last id.
    resumed = harness.query(
        "SELECT entity, entity_id, change_kind FROM {schema}.sync_changes WHERE id > :last ORDER BY id",
        last=first_payload["last_change_id"],
    )
    assert len(resumed) == payload["last_change_id"] - payload["first_change_id"] + 1
    assert ("users", user_id, "update") in set(resumed.itertuples(index=False, name=None))
