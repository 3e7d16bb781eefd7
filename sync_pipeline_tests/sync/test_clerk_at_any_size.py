"""The full and partial syncs against a Clerk that behaves as its spec says, at size:
deep offsets on GET /users time out, thousands of users share one millisecond, the rate
limit is the instance's (shared with its application), and what a membership list says
for a gone parent is undocumented.

Everything runs the real jobs over the emulator (real HTTP) and a real Postgres.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance

from sync_pipeline.clerk.client import ClerkClient
from sync_pipeline.defs.sensors import partial_sync_request
from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.mirror.database import upgrade_schema
from sync_pipeline.webhooks import inbox
from sync_pipeline_tests.harness import SyncHarness, as_json, clerk_ids


def _fetch_stats(result) -> dict:  # noqa: ANN001
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[-1] == "clerk_snapshot":
            return as_json(event.materialization.metadata["fetch_stats"].value)
    raise AssertionError("no clerk_snapshot materialization")


def _assert_mirror_is_clerk(harness: SyncHarness) -> None:
    for entity, ids in clerk_ids(harness.emulator).items():
        assert harness.live_ids(entity) == ids, entity


def test_thirty_thousand_users_with_a_crowd_in_one_millisecond_and_deep_offsets_timing_out(
    engine: sa.Engine, database_url: str, schema: str, dagster_instance: DagsterInstance
) -> None:
    with EmulatorServer(
        users=30_000, orgs=300, seed=7, secret_key="sk_live_big", requests_per_10s=0, users_in_one_millisecond=3_000
    ) as emulator:
        emulator.settings.users_offset_timeout = 5_000  # a /users page past offset 5,000 answers 504
        harness = SyncHarness(emulator=emulator, engine=engine, database_url=database_url, schema=schema, instance=dagster_instance)
        started = time.monotonic()
        result = harness.run()
        seconds = time.monotonic() - started

        assert result.success, result.get_step_failure_events()
        _assert_mirror_is_clerk(harness)
        users = _fetch_stats(result)["users"]
        assert users["user_windows"] > 1
        assert users["rows"] == 30_000  # every user once: no window boundary doubled or lost one
        assert emulator.stats.responses_by_status[504] == 0  # no deep offset was ever asked for
        print(
            f"\n30,000 users (3,000 in one ms): full sync {seconds:.1f} s; users read in {users['user_windows']} windows, "
            f"{users['requests']} requests ({users['endpoints'].get('GET /users/count', {}).get('requests', 0)} counts)"
        )


def test_users_on_window_boundaries_are_read_once_when_clerk_bounds_are_inclusive(harness: SyncHarness) -> None:
    harness.emulator.settings.created_at_bounds_inclusive = True
    result = harness.run(client_settings={"page_size": 10, "max_concurrency": 8})
    assert result.success, result.get_step_failure_events()
    _assert_mirror_is_clerk(harness)
    users = _fetch_stats(result)["users"]
    assert users["user_windows"] > 1 and users["rows"] == len(clerk_ids(harness.emulator)["users"])


def test_a_membership_list_timing_out_at_a_deep_offset_is_read_per_organization(harness: SyncHarness) -> None:
    harness.emulator.settings.memberships_offset_timeout = 100  # pages past offset 100 answer 504
    result = harness.run(client_settings={"page_size": 50, "max_attempts": 2})
    assert result.success, result.get_step_failure_events()
    _assert_mirror_is_clerk(harness)
    memberships = _fetch_stats(result)["organization_memberships"]
    assert [t["offset"] for t in memberships["offset_timeouts"]] == [150]
    assert memberships["offset_timeouts"][0]["list"] == "GET /organization_memberships"
    assert memberships["fallback_requests"] > 0
    assert memberships["endpoints"]["GET /organizations/{id}/memberships"]["requests"] <= memberships["fallback_requests"]


def test_a_first_sync_under_twelve_requests_a_window_is_exact_and_reports_its_429s(harness: SyncHarness) -> None:
    # 12 requests per 1-second window (Clerk's is 10 s: shrunk to keep the test short), a
    # fifth of them taken by the simulated application; the client aims at half of a
    # production key's 1000 per 10 s, so it meets 429s and must slow down.
    harness.emulator.settings.requests_per_10s = 12
    harness.emulator.settings.rate_limit_window_s = 1.0
    result = harness.run(client_settings={"requests_per_10s": None, "page_size": 50})
    assert result.success, result.get_step_failure_events()
    _assert_mirror_is_clerk(harness)
    stats = _fetch_stats(result)
    met = sum(s["responses_429"] for s in stats.values())
    assert met > 0 and met == harness.emulator.stats.too_many_requests
    assert sum(s["waiting_seconds"] for s in stats.values()) > 0
    assert all(s["target_per_10s"] == 500 for s in stats.values())


def test_a_development_key_never_takes_more_than_half_the_instance_in_any_ten_seconds() -> None:
    # Needs more than ten seconds of traffic to measure a ten-second window: ~15 s.
    with EmulatorServer(users=1_400, orgs=10, seed=3, secret_key="sk_test_share") as emulator:
        client = ClerkClient(secret_key="sk_test_share", api_url=emulator.base_url, page_size=20, max_backoff_seconds=0.2)
        result = client.fetch_users()
        assert len({row["id"] for row in result.rows}) == 1_400
        assert emulator.stats.requests > 60  # more than one window's share, so the window below is full
        assert emulator.stats.busiest_window(10.0) <= 50
        assert result.stats.responses_429 == 0  # half for us, a fifth for the application: room left
        assert result.stats.target_per_10s == 50


READINGS = ["404", "403", "422", "empty"]


@pytest.mark.parametrize("reading", READINGS)
@pytest.mark.parametrize("deleted", ["user", "organization"])
def test_a_deleted_parent_partial_run_succeeds_whatever_its_membership_list_answers(
    harness: SyncHarness, reading: str, deleted: str
) -> None:
    assert harness.run().success
    upgrade_schema(harness.engine, harness.schema)  # the webhook inbox
    store = harness.emulator.store
    harness.emulator.settings.gone_parent_answer = reading
    if deleted == "user":
        member = next(m for m in store.iter_memberships())
        gone = member["public_user_data"]["user_id"]
        first_event = len(store.events)
        store.delete_user(gone)
    else:
        member = next(m for m in store.iter_memberships())
        gone = member["organization"]["id"]
        first_event = len(store.events)
        store.delete_organization(gone)
    for i, event in enumerate(store.events[first_event:]):
        inbox.store_delivery(harness.engine, harness.schema, svix_id=f"msg_{i}", svix_timestamp=None, payload=event)
    request = partial_sync_request(inbox.pending_events(harness.engine, harness.schema, limit=100), run_key="t")

    result = harness.run(job="partial_sync_job", run_config=request.run_config)

    assert result.success, result.get_step_failure_events()
    _assert_mirror_is_clerk(harness)
    stats = _fetch_stats(result)
    assert gone in [g for s in stats.values() for g in s.get("gone_parents", [])]
