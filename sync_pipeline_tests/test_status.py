"""`sync-pipeline status` answers "is the mirror right?" from the audit trail and the inbox."""

from __future__ import annotations

import sqlalchemy as sa

from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.mirror.database import upgrade_schema
from sync_pipeline.status import FAILING, LAGGING, NEVER_SYNCED, OK, STALE, mirror_status
from sync_pipeline.webhooks import inbox
from sync_pipeline_tests.fixtures import load
from sync_pipeline_tests.harness import SyncHarness


def status(harness: SyncHarness):  # noqa: ANN201
    return mirror_status(harness.engine, harness.schema, max_wait_seconds=300)


def test_the_verdict_follows_what_the_syncs_and_the_inbox_say(harness: SyncHarness) -> None:
    assert status(harness).verdict == NEVER_SYNCED
    upgrade_schema(harness.engine, harness.schema)
    assert status(harness).verdict == NEVER_SYNCED

    assert harness.run().success
    healthy = status(harness)
    assert healthy.verdict == OK and healthy.healthy
    assert healthy.last_full.written == sum(healthy.live_rows.values())
    assert "OK" in healthy.render()

    with EmulatorServer(users=0, orgs=0, secret_key="sk_live_empty", requests_per_10s=0) as empty:
        assert not harness.run(emulator=empty).success  # refused by the guard
    failing = status(harness)
    assert failing.verdict == FAILING and "refused" in failing.reasons[0]
    assert failing.last_full is not None  # the last good one is still shown

    assert harness.run().success
    with harness.engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE \"{harness.schema}\".sync_runs SET started_at = started_at - interval '30 hours'"))
    assert status(harness).verdict == STALE


def test_events_waiting_too_long_make_the_mirror_lagging(harness: SyncHarness) -> None:
    assert harness.run().success
    inbox.store_delivery(harness.engine, harness.schema, svix_id="msg_old", svix_timestamp=None, payload=load("webhook_user.updated.json"))
    assert status(harness).verdict == OK  # pending, but not for long
    with harness.engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE \"{harness.schema}\".webhook_events SET received_at = now() - interval '1 hour'"))

    lagging = status(harness)
    assert lagging.verdict == LAGGING
    assert lagging.pending_events == 1 and "pending" in lagging.reasons[0]
