"""Partial syncs answer webhook events: same result whatever the order or number of deliveries."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from sync_pipeline.emulator import FaultKind
from sync_pipeline.model import MEMBERSHIPS, ORGANIZATIONS, USERS
from sync_pipeline.webhooks import inbox
from sync_pipeline_tests.harness import SyncHarness, as_json, clerk_ids


def deliver(harness: SyncHarness, events: list[dict], *, prefix: str = "msg", duplicate_every: int = 0, seed: int = 3) -> list[str]:
    """Store events in the inbox as the receiver would: shuffled, some delivered twice."""
    deliveries = [(f"{prefix}_{i:05d}", event) for i, event in enumerate(events)]
    if duplicate_every:
        deliveries += deliveries[::duplicate_every]
    random.Random(seed).shuffle(deliveries)
    for svix_id, payload in deliveries:
        inbox.store_delivery(harness.engine, harness.schema, svix_id=svix_id, svix_timestamp=None, payload=payload)
    return sorted({svix_id for svix_id, _ in deliveries})


def answer_pending(harness: SyncHarness, **client_settings):  # noqa: ANN201
    """What the sensor would launch for everything pending, as one run."""
    from sync_pipeline.defs.sensors import partial_sync_request

    events = inbox.pending_events(harness.engine, harness.schema, limit=10_000)
    request = partial_sync_request(events, run_key="test")
    return harness.run(job="partial_sync_job", run_config=request.run_config, client_settings=client_settings)


def assert_mirror_equals_clerk(harness: SyncHarness) -> None:
    for entity, ids in clerk_ids(harness.emulator).items():
        assert harness.live_ids(entity) == ids, entity
    for user_id, raw in harness.query("SELECT id, raw FROM {schema}.users WHERE deleted_at IS NULL").itertuples(index=False):
        assert as_json(raw) == harness.emulator.store.get_user(user_id)


def changes_in_clerk(harness: SyncHarness) -> dict:
    """A bit of everything: creates, updates, deletes of each kind, an e-mail swap."""
    store = harness.emulator.store
    users = [u["id"] for u in store.iter_users()]
    orgs = sorted(store.iter_organizations(), key=lambda o: o["members_count"])
    created = store.create_user(email_addresses=["new.person@example.com"], first_name="Ünïcødé")
    store.update_user(users[0], first_name="Renamed")
    store.update_user(users[0], last_name="Twice")  # two updates: only the last state counts
    store.delete_user(users[1])
    store.swap_primary_emails(users[2], users[3]) if all(
        store.get_user(u)["primary_email_address_id"] for u in users[2:4]
    ) else None
    store.update_organization(orgs[-1]["id"], name="Bigger Org")
    small_org = next(o for o in orgs if 0 < o["members_count"] <= 5)  # under the guard's 10% of memberships
    store.delete_organization(small_org["id"])
    membership = next(iter(store.iter_memberships()))
    store.delete_membership(membership["id"])
    store.create_membership(orgs[-1]["id"], created["id"], role="org:admin")
    return {"deleted_user": users[1], "deleted_org": small_org["id"], "created_user": created["id"]}


def test_out_of_order_and_duplicated_deliveries_end_in_the_right_mirror(harness: SyncHarness) -> None:
    assert harness.run().success
    first_event = len(harness.emulator.store.events)
    changed = changes_in_clerk(harness)
    svix_ids = deliver(harness, harness.emulator.store.events[first_event:], duplicate_every=3)

    result = answer_pending(harness)

    assert result.success, result.get_step_failure_events()
    assert_mirror_equals_clerk(harness)
    assert harness.row(USERS, changed["deleted_user"])["deleted_at"] is not None
    assert harness.row(ORGANIZATIONS, changed["deleted_org"])["deleted_at"] is not None
    processed = harness.query("SELECT svix_id, status, processed_run_id, delivery_count FROM {schema}.webhook_events")
    assert sorted(processed["svix_id"]) == svix_ids  # a redelivery is one row
    assert set(processed["status"]) == {"processed"}
    assert set(processed["processed_run_id"]) == {result.run_id}
    assert processed["delivery_count"].max() == 2


def test_an_organization_deleted_takes_its_memberships_along(harness: SyncHarness) -> None:
    assert harness.run().success
    store = harness.emulator.store
    org = max(store.iter_organizations(), key=lambda o: o["members_count"])
    members = {m["id"] for m in store.iter_memberships() if m["organization"]["id"] == org["id"]}
    first_event = len(store.events)
    store.delete_organization(org["id"])  # only organization.deleted: no membership events
    deliver(harness, store.events[first_event:])

    result = harness.run(
        job="partial_sync_job",
        webhook_event_ids=[e.svix_id for e in inbox.pending_events(harness.engine, harness.schema, limit=10)],
        allow_mass_delete=True,
    )

    assert result.success
    assert harness.row(ORGANIZATIONS, org["id"])["deleted_at"] is not None
    assert not members & harness.live_ids(MEMBERSHIPS)
    assert_mirror_equals_clerk(harness)


def test_a_partial_run_leaves_every_other_row_alone(harness: SyncHarness) -> None:
    assert harness.run().success
    store = harness.emulator.store
    target, bystander = [u["id"] for u in store.iter_users()][:2]
    first_event = len(store.events)
    store.update_user(target, first_name="Target")
    deliver(harness, store.events[first_event:])
    store.update_user(bystander, first_name="No event arrived for me")  # a lost webhook
    versions = harness.row_versions()

    assert answer_pending(harness).success

    assert harness.row(USERS, target)["first_name"] == "Target"
    assert harness.row(USERS, bystander)["first_name"] != "No event arrived for me"
    touched = set(harness.changes_of_last_run()["entity_id"])
    assert target in touched
    after = harness.row_versions()
    for entity, rows in versions.items():
        for object_id, version in rows.items():
            if object_id not in touched:
                assert after[entity][object_id] == version
    # The daily full sync catches what the lost webhook missed.
    assert harness.run().success
    assert harness.row(USERS, bystander)["first_name"] == "No event arrived for me"


def test_a_failed_partial_run_leaves_its_events_pending(harness: SyncHarness) -> None:
    assert harness.run().success
    store = harness.emulator.store
    first_event = len(store.events)
    store.update_user(next(iter(store.iter_users()))["id"], first_name="Pending")
    deliver(harness, store.events[first_event:])
    harness.emulator.faults.add(FaultKind.SERVER_ERROR, path_prefix="/v1/users", times=None)

    failed = answer_pending(harness)
    assert not failed.success
    assert len(inbox.pending_events(harness.engine, harness.schema, limit=10)) == 1

    harness.emulator.faults.clear()
    assert answer_pending(harness).success
    assert inbox.pending_events(harness.engine, harness.schema, limit=10) == []


def test_replaying_a_window_repairs_the_mirror(harness: SyncHarness) -> None:
    assert harness.run().success
    store = harness.emulator.store
    user_id = next(iter(store.iter_users()))["id"]
    first_event = len(store.events)
    store.update_user(user_id, first_name="Correct")
    deliver(harness, store.events[first_event:], prefix="old")
    assert answer_pending(harness).success
    # A bug (or a hand edit) breaks the row after the event was processed.
    with harness.engine.begin() as connection:
        connection.execute(sa.text(f'UPDATE "{harness.schema}".users SET first_name = \'Broken\', raw_digest = \'x\' WHERE id = :id'), {"id": user_id})
    since = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()

    replay = harness.run(job="partial_sync_job", replay_since=since)

    assert replay.success
    assert harness.row(USERS, user_id)["first_name"] == "Correct"
    events = harness.query("SELECT processed_run_id FROM {schema}.webhook_events")
    assert set(events["processed_run_id"]) == {replay.run_id}
    assert harness.sync_runs().iloc[-1]["mode"] == "replay"


def test_a_full_sync_answers_the_events_pending_when_it_starts(harness: SyncHarness) -> None:
    assert harness.run().success
    store = harness.emulator.store
    first_event = len(store.events)
    store.update_user(next(iter(store.iter_users()))["id"], first_name="Whoever")
    deliver(harness, store.events[first_event:])

    full = harness.run()

    assert full.success
    assert inbox.pending_events(harness.engine, harness.schema, limit=10) == []
    metadata = full.asset_materializations_for_node("clerk_webhook_inbox")[0].metadata
    assert metadata["answered_by_this_run"].value == 1
    assert metadata["pending"].value == 0
