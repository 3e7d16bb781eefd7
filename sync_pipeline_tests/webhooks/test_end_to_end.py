"""Emulator -> receiver -> sensor tick -> partial run -> mirror, over real HTTP and a real Postgres."""

from __future__ import annotations

import time

from dagster import build_sensor_context

from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.defs.sensors import clerk_webhook_sensor
from sync_pipeline.model import USERS
from sync_pipeline.webhooks import inbox
from sync_pipeline.webhooks.receiver import WEBHOOK_PATH, create_app
from sync_pipeline_tests.harness import SyncHarness, clerk_ids
from sync_pipeline_tests.servers import serve_in_thread

SECRET = "whsec_ZW5kLXRvLWVuZC10ZXN0LXNpZ25pbmctc2VjcmV0IQ=="


def test_a_change_in_clerk_reaches_the_mirror_through_webhooks(harness: SyncHarness) -> None:
    assert harness.run().success  # the mirror starts in step, and the inbox table exists
    store = harness.emulator.store
    users = [u["id"] for u in store.iter_users()]

    with serve_in_thread(create_app(harness.engine, harness.schema, secret=SECRET)) as receiver:
        # At least once, in no guaranteed order: duplicates and a shuffled window.
        dispatcher = harness.emulator.deliver_webhooks_to(
            receiver + WEBHOOK_PATH, SECRET, background=True, duplicate_rate=0.5, reorder_window=4, seed=7
        )
        started = time.monotonic()
        store.update_user(users[0], first_name="Changed in Clerk")
        store.delete_user(users[1])
        created = store.create_user(email_addresses=["fresh@example.com"], first_name="Fresh")
        assert dispatcher.wait_idle(timeout=10)
        received = time.monotonic()

    assert dispatcher.stats.duplicates > 0  # the receiver met redeliveries
    with build_sensor_context(
        instance=harness.instance,
        resources={"mirror_db": MirrorDatabase(database_url=harness.database_url, db_schema=harness.schema)},
    ) as context:
        (request,) = clerk_webhook_sensor(context).run_requests
    result = harness.run(job="partial_sync_job", run_config=request.run_config)
    applied = time.monotonic()

    assert result.success
    assert harness.row(USERS, users[0])["first_name"] == "Changed in Clerk"
    assert harness.row(USERS, users[1])["deleted_at"] is not None
    assert harness.row(USERS, created["id"])["first_name"] == "Fresh"
    assert harness.live_ids(USERS) == clerk_ids(harness.emulator)[USERS]
    assert inbox.pending_events(harness.engine, harness.schema, limit=10) == []
    print(f"\nwebhook path: delivered in {received - started:.2f}s, mirrored {applied - started:.2f}s after the change")
