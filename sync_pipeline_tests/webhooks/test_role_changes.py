"""A role's or a permission's change reaches every membership it changes: Clerk sends no
membership event after role.* or permission.*, so the partial run finds the memberships of
the changed roles in the mirror and re-reads their organizations.

Emulator -> signed events -> receiver -> sensor tick -> partial run -> mirror, over real HTTP
and a real Postgres."""

from __future__ import annotations

import json

from dagster import SkipReason, build_sensor_context

from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.defs.sensors import clerk_webhook_sensor
from sync_pipeline.webhooks import inbox
from sync_pipeline.webhooks.receiver import WEBHOOK_PATH, create_app
from sync_pipeline_tests.harness import SyncHarness
from sync_pipeline_tests.servers import serve_in_thread

SECRET = "whsec_ZW5kLXRvLWVuZC10ZXN0LXNpZ25pbmctc2VjcmV0IQ=="


def _sensor_run(harness: SyncHarness):
    with build_sensor_context(
        instance=harness.instance,
        resources={"mirror_db": MirrorDatabase(database_url=harness.database_url, db_schema=harness.schema)},
    ) as context:
        evaluation = clerk_webhook_sensor(context)
    stored = harness.query("SELECT event_type, status, problem FROM {schema}.webhook_events ORDER BY received_at")
    assert not isinstance(evaluation, SkipReason), (evaluation, stored.to_dict("records"))
    (request,) = evaluation.run_requests
    return harness.run(job="partial_sync_job", run_config=request.run_config)


def _fetch_stats(result) -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "clerk_snapshot")
    return event.materialization.metadata["fetch_stats"].value


def _mirrored_permissions_of_role(harness: SyncHarness, key: str) -> list[list[str]]:
    rows = harness.query(
        "SELECT permissions FROM {schema}.organization_memberships WHERE deleted_at IS NULL AND role = :key", key=key
    )
    return [json.loads(p) if isinstance(p, str) else p for p in rows["permissions"]]


def test_a_role_granted_a_permission_reaches_every_membership_of_it(harness: SyncHarness) -> None:
    store = harness.emulator.store
    assert harness.run().success
    member_role = next(r for r in store.iter_roles() if r["key"] == "org:member")
    holders = _mirrored_permissions_of_role(harness, "org:member")
    assert holders, "the emulator's data should give some memberships the member role"

    with serve_in_thread(create_app(harness.engine, harness.schema, secret=SECRET)) as receiver:
        dispatcher = harness.emulator.deliver_webhooks_to(receiver + WEBHOOK_PATH, SECRET, background=True)
        permission = store.create_permission("Export ledgers", "org:ledgers:export")
        store.assign_permission(member_role["id"], permission["id"])
        assert dispatcher.wait_idle(timeout=10)
        assert dispatcher.stats.sent >= 2, dispatcher.stats

    result = _sensor_run(harness)

    assert result.success
    assert all("org:ledgers:export" in permissions for permissions in _mirrored_permissions_of_role(harness, "org:member"))
    assert len(_mirrored_permissions_of_role(harness, "org:member")) == len(holders)
    role_row = harness.row("organization_roles", member_role["id"])
    assert "org:ledgers:export" in (json.loads(role_row["permissions"]) if isinstance(role_row["permissions"], str) else role_row["permissions"])
    # The run's scope says what the change cost.
    scope_event = next(
        e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "sync_scope"
    )
    assert scope_event.materialization.metadata["role_change_requests"].value > 0
    requests = sum(s.get("requests", 0) for s in _fetch_stats(result).values())
    print(f"\nrole change: {scope_event.materialization.metadata['role_change'].value}; the run made {requests} request(s)")
    assert inbox.pending_events(harness.engine, harness.schema, limit=10) == []


def test_a_renamed_permission_updates_its_row_and_the_roles_holding_it(harness: SyncHarness) -> None:
    store = harness.emulator.store
    permission = store.create_permission("Audit books", "org:books:audit")
    admin = next(r for r in store.iter_roles() if r["key"] == "org:admin")
    store.assign_permission(admin["id"], permission["id"])
    assert harness.run().success

    with serve_in_thread(create_app(harness.engine, harness.schema, secret=SECRET)) as receiver:
        dispatcher = harness.emulator.deliver_webhooks_to(receiver + WEBHOOK_PATH, SECRET, background=True)
        store.update_permission(permission["id"], name="Read all reports")
        assert dispatcher.wait_idle(timeout=10)

    result = _sensor_run(harness)

    assert result.success
    assert harness.row("organization_permissions", permission["id"])["name"] == "Read all reports"
    assert admin["id"] in json.loads(harness.sync_runs().iloc[-1]["scope"] if isinstance(harness.sync_runs().iloc[-1]["scope"], str) else json.dumps(harness.sync_runs().iloc[-1]["scope"]))["role_ids"]
