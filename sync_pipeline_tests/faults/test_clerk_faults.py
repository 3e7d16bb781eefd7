"""Clerk misbehaving under a running sync: each case ends in a mirror equal to Clerk, or in a
failed run that wrote nothing (row versions by xmin unchanged).

One Clerk emulator and one mirror serve the whole module, synced once: each case changes
Clerk a little (an update, a deletion, a creation), arms its faults and runs the real job.
A case that ends in a correct mirror leaves the next one in step; cases that end in a
failed run leave their changes for the next to apply, so every run also proves that
what a failed run left behind is picked up later.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from itertools import count

import pytest
import sqlalchemy as sa

from sync_pipeline.clerk import snapshot as clerk_snapshot_module
from sync_pipeline.clerk.client import ClerkClient
from sync_pipeline.emulator import EmulatorServer, FaultKind
from sync_pipeline.model import USERS
from sync_pipeline_tests.faults.report import FaultReport
from sync_pipeline_tests.faults.support import (
    assert_mirror_equals_clerk,
    assert_nothing_written,
    failure,
    mirror_against_clerk,
    run,
)
from sync_pipeline_tests.harness import SyncHarness, clerk_ids

KEY = "sk_live_fault_suite_clerk_key_0123456789"
USERS_N, ORGS_N = 200, 20
_serial = count()


@pytest.fixture(scope="module")
def clerk_side(engine: sa.Engine, database_url: str, dagster_instance, fault_report: FaultReport) -> Iterator[SyncHarness]:  # noqa: ANN001
    """A Clerk and a mirror in step, shared by the module's cases."""
    schema = f"t_faults_{uuid.uuid4().hex[:8]}"
    with EmulatorServer(users=USERS_N, orgs=ORGS_N, seed=23, secret_key=KEY, requests_per_10s=0) as emulator:
        harness = SyncHarness(emulator=emulator, engine=engine, database_url=database_url, schema=schema, instance=dagster_instance)
        assert run(harness, fault_report).success
        try:
            yield harness
        finally:
            for kind, fired in emulator.faults.fired.items():
                fault_report.fault(f"clerk {kind.value}", fired)
            with engine.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
def clerk(clerk_side: SyncHarness) -> Iterator[SyncHarness]:
    """The shared Clerk, restored after each case: no fault armed, the key valid again."""
    yield clerk_side
    clerk_side.emulator.faults.clear()
    clerk_side.emulator.settings.secret_key = KEY


def change_clerk(harness: SyncHarness) -> dict[str, str]:
    """A little of everything the mirror must follow: an update, a deletion, a creation."""
    store = harness.emulator.store
    n = next(_serial)
    users = [u["id"] for u in store.iter_users()]
    updated, deleted = users[(7 * n) % len(users)], users[(7 * n + 3) % len(users)]
    store.update_user(updated, first_name=f"Changed {n}")
    store.delete_user(deleted)
    created = store.create_user(email_addresses=[f"new{n}@example.com"], first_name=f"New {n}")
    org = next(iter(store.iter_organizations()))["id"]
    store.create_membership(org, created["id"])
    return {"updated": updated, "deleted": deleted, "created": created["id"]}


def snapshot_metadata(result) -> dict:  # noqa: ANN001
    from sync_pipeline.defs.metadata import table_counts

    metadata = result.asset_materializations_for_node("clerk_snapshot")[0].metadata
    # The read report's table (a row per entity), as "<column>.<entity>" keys.
    counts = {f"{column}.{entity}": n for entity, row in table_counts(metadata["rows_read"]).items() for column, n in row.items()}
    return {**{k: v.value for k, v in metadata.items()}, **counts}


# ------------------------------------------------------------ the client alone

def test_a_short_first_or_last_page_is_counted_and_the_scan_reads_on(fault_report: FaultReport) -> None:
    """Found here: a short *first* page ended the scan whatever total_count said (the rest of
    the list unread), and a short *last* page inside the announced range went uncounted."""
    with EmulatorServer(users=10, orgs=120, seed=5, secret_key=KEY, requests_per_10s=0) as emulator:
        client = ClerkClient(secret_key=KEY, api_url=emulator.base_url, page_size=50, max_backoff_seconds=0.2, timeout_seconds=5)
        emulator.faults.add(FaultKind.SHORT_PAGE, path_prefix="/v1/organizations", missing_rows=1)
        first_short = client.fetch_organizations()
        assert len(first_short.rows) == 119 and first_short.stats.early_short_pages == 1
        emulator.faults.add(FaultKind.SHORT_PAGE, path_prefix="/v1/organizations", skip=2, missing_rows=3)
        last_short = client.fetch_organizations()
        assert len(last_short.rows) == 117 and last_short.stats.early_short_pages == 1
        assert len(client.fetch_organizations().rows) == 120
        fault_report.fault("clerk short_page", 2)


# ------------------------------------------------------------ faults a sync must ride out


def test_a_429_storm_with_a_long_retry_after_is_waited_out(clerk: SyncHarness, fault_report: FaultReport) -> None:
    change_clerk(clerk)
    # Three 429s with Retry-After: 3, mid-run: every request of the call pauses for the full wait.
    clerk.emulator.faults.add(FaultKind.RATE_LIMITED, retry_after_s=3, skip=2, times=3)
    started = time.monotonic()

    result = run(clerk, fault_report)

    assert result.success, failure(result)
    assert time.monotonic() - started >= 3.0  # Retry-After honoured, not cut short
    assert snapshot_metadata(result)["responses_429"] == 3
    assert_mirror_equals_clerk(clerk, fault_report)


def test_5xx_and_timeouts_on_random_pages_are_retried(clerk: SyncHarness, fault_report: FaultReport) -> None:
    change_clerk(clerk)
    faults = clerk.emulator.faults
    for status, times in ((500, 2), (502, 1), (503, 1), (504, 1)):
        faults.add(FaultKind.SERVER_ERROR, status=status, probability=0.3, seed=status, times=times)
    faults.add(FaultKind.SLOW, delay_s=4, probability=0.3, seed=1, times=2)
    # 7 faults in all, fewer than max_attempts: even if one request met them all, it would pass.
    result = run(clerk, fault_report, client={"timeout_seconds": 1.0, "max_attempts": 8})

    assert result.success, failure(result)
    assert faults.fired[FaultKind.SERVER_ERROR] >= 5 and faults.fired[FaultKind.SLOW] >= 2
    assert snapshot_metadata(result)["retries"] >= 7
    assert_mirror_equals_clerk(clerk, fault_report)


def test_a_connection_reset_mid_body_is_retried(clerk: SyncHarness, fault_report: FaultReport) -> None:
    change_clerk(clerk)
    clerk.emulator.faults.add(FaultKind.DROPPED_CONNECTION, probability=0.5, seed=3, times=3)

    result = run(clerk, fault_report)

    assert result.success, failure(result)
    assert clerk.emulator.faults.fired[FaultKind.DROPPED_CONNECTION] >= 3
    assert_mirror_equals_clerk(clerk, fault_report)


def test_truncated_and_non_json_bodies_are_retried(clerk: SyncHarness, fault_report: FaultReport) -> None:
    change_clerk(clerk)
    faults = clerk.emulator.faults
    faults.add(FaultKind.TRUNCATED_BODY, probability=0.5, seed=4, times=2)
    faults.add(FaultKind.NON_JSON, probability=0.5, seed=5, times=1)  # a 200 HTML page from a proxy
    faults.add(FaultKind.NON_JSON, status=502, probability=0.5, seed=6, times=1)

    result = run(clerk, fault_report)

    assert result.success, failure(result)
    assert faults.fired[FaultKind.TRUNCATED_BODY] == 2 and faults.fired[FaultKind.NON_JSON] == 2
    assert_mirror_equals_clerk(clerk, fault_report)


def test_rows_changing_ahead_of_the_reader_are_all_seen(clerk: SyncHarness, fault_report: FaultReport) -> None:
    """Clerk changes while the users are paged: an update and a deletion on pages not read yet are
    seen by this run; a user created after the scan began belongs to the next run (or its webhook)."""
    store = clerk.emulator.store
    users = [u["id"] for u in store.iter_users()]  # in paging order (+created_at)
    changed: dict[str, str] = {}

    def change_ahead() -> None:
        store.update_user(users[180], first_name="Updated while paging")
        store.delete_user(users[120])
        changed["created"] = store.create_user(email_addresses=["mid-read@example.com"])["id"]

    # One request at a time, so "ahead of the reader" is exact: count, page 0, then the change.
    store_fault = clerk.emulator.faults.add(FaultKind.CALLBACK, path_prefix="/v1/users", skip=2, action=change_ahead)

    result = run(clerk, fault_report, client={"max_concurrency": 1})

    assert result.success, failure(result)
    assert store_fault.fired == 1
    assert clerk.row(USERS, users[180])["first_name"] == "Updated while paging"
    assert clerk.row(USERS, users[120])["deleted_at"] is not None
    assert changed["created"] not in clerk.live_ids(USERS)  # created after the scan's upper bound
    assert run(clerk, fault_report).success
    assert clerk.row(USERS, changed["created"])["deleted_at"] is None
    assert_mirror_equals_clerk(clerk, fault_report)


# --------------------------------------------- pages that lose rows: absences read again by id

# Found here: a full scan that skipped rows (a short page, or a deletion behind the reader
# shifting the rest up) was planned as complete, and the rows it skipped were soft-deleted.
# Every live mirror id a full scan misses is now read again by id before it is believed gone.


def test_a_page_with_fewer_rows_than_total_count_promised_deletes_nobody(clerk: SyncHarness, fault_report: FaultReport) -> None:
    # The organizations' one page comes back a row short while total_count still counts it.
    clerk.emulator.faults.add(FaultKind.SHORT_PAGE, path_prefix="/v1/organizations", missing_rows=1)

    result = run(clerk, fault_report)

    assert result.success, failure(result)
    metadata = snapshot_metadata(result)
    assert metadata["fetch_stats"]["organizations"]["early_short_pages"] == 1
    assert (metadata["absent_from_scan.organizations"], metadata["refound_by_id.organizations"]) == (1, 1)
    assert_mirror_equals_clerk(clerk, fault_report)


def test_a_short_users_page_loses_no_row_the_cursor_reads_on(clerk: SyncHarness, fault_report: FaultReport) -> None:
    # A users page that comes back short mid-list ends no window: the walk asks for one more
    # page after the last row received, the withheld rows arrive there and nothing is absent.
    short = clerk.emulator.faults.add(FaultKind.SHORT_PAGE, path_prefix="/v1/users", skip=1, missing_rows=1)

    result = run(clerk, fault_report)

    assert result.success, failure(result)
    assert short.fired >= 1
    assert snapshot_metadata(result)["absent_from_scan.users"] == 0
    assert_mirror_equals_clerk(clerk, fault_report)


def test_a_deletion_behind_the_reader_loses_no_row(clerk: SyncHarness, fault_report: FaultReport) -> None:
    """A user on a page already read is deleted. Under offset paging every later row moved up and
    one was skipped; a cursor walk skips nothing."""
    store = clerk.emulator.store
    users = [u["id"] for u in store.iter_users()]
    clerk.emulator.faults.add(FaultKind.CALLBACK, path_prefix="/v1/users", skip=3, action=lambda: store.delete_user(users[10]))

    result = run(clerk, fault_report, client={"max_concurrency": 1})

    assert result.success, failure(result)
    metadata = snapshot_metadata(result)
    assert metadata["absent_from_scan.users"] == 0
    # The deleted one had been read before it went: this run mirrors it as read, the next one follows.
    assert clerk.row(USERS, users[10])["deleted_at"] is None
    assert run(clerk, fault_report).success
    assert clerk.row(USERS, users[10])["deleted_at"] is not None
    assert_mirror_equals_clerk(clerk, fault_report)


def test_a_deletion_behind_the_reader_balanced_by_a_creation_loses_no_row(clerk: SyncHarness, fault_report: FaultReport) -> None:
    """Under offset paging every page came back full, hiding the skip; a cursor walk skips nothing,
    and the user created after the scan began waits for the next run."""
    store = clerk.emulator.store
    users = [u["id"] for u in store.iter_users()]
    created: list[str] = []

    def delete_one_create_one() -> None:
        store.delete_user(users[10])
        created.append(store.create_user(email_addresses=["balanced@example.com"], first_name="Balanced")["id"])

    clerk.emulator.faults.add(FaultKind.CALLBACK, path_prefix="/v1/users", skip=3, action=delete_one_create_one)

    result = run(clerk, fault_report, client={"max_concurrency": 1})

    assert result.success, failure(result)
    metadata = snapshot_metadata(result)
    assert metadata["absent_from_scan.users"] == 0
    assert created[0] not in clerk.live_ids(USERS)  # created after the scan's upper bound
    assert run(clerk, fault_report).success
    assert clerk.row(USERS, users[10])["deleted_at"] is not None
    assert clerk.row(USERS, created[0])["deleted_at"] is None
    assert_mirror_equals_clerk(clerk, fault_report)


def test_a_membership_skipped_by_the_scan_is_read_again_through_its_user(clerk: SyncHarness, fault_report: FaultReport) -> None:
    clerk.emulator.faults.add(FaultKind.SHORT_PAGE, path_prefix="/v1/organization_memberships", skip=1, missing_rows=1)

    result = run(clerk, fault_report)

    assert result.success, failure(result)
    metadata = snapshot_metadata(result)
    assert metadata["refound_by_id.organization_memberships"] == 1
    assert "confirm_memberships_of_users" in metadata["fetch_stats"] or "confirm_memberships_of_organizations" in metadata["fetch_stats"]
    assert_mirror_equals_clerk(clerk, fault_report)


def test_too_many_absences_after_a_short_scan_fail_the_run_and_delete_nothing(
    clerk: SyncHarness, fault_report: FaultReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes = change_clerk(clerk)  # a deletion is waiting: it must not happen
    before = clerk.row_versions()
    runs_before = len(clerk.sync_runs())
    monkeypatch.setattr(clerk_snapshot_module, "MAX_CONFIRM_REQUESTS", 0)  # nothing may be read by id
    clerk.emulator.faults.add(FaultKind.SHORT_PAGE, path_prefix="/v1/organizations", missing_rows=1)

    result = run(clerk, fault_report)

    assert not result.success
    text = failure(result)
    assert "ClerkIncompleteListError" in text and "organizations" in text, text
    assert_nothing_written(clerk, fault_report, before)
    assert clerk.row(USERS, changes["deleted"])["deleted_at"] is None
    assert len(clerk.sync_runs()) == runs_before  # failed reading Clerk, before sync_plan


def test_too_many_absences_after_a_clean_scan_are_believed_and_reported(
    clerk: SyncHarness, fault_report: FaultReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes = change_clerk(clerk)
    gone = clerk.live_ids(USERS) - clerk_ids(clerk.emulator)["users"]  # this deletion, and any an earlier case left
    monkeypatch.setattr(clerk_snapshot_module, "MAX_CONFIRM_REQUESTS", 0)

    result = run(clerk, fault_report)

    assert result.success, failure(result)
    assert changes["deleted"] in gone
    assert snapshot_metadata(result)["absences_unconfirmed.users"] == len(gone)
    assert clerk.row(USERS, changes["deleted"])["deleted_at"] is not None
    assert_mirror_equals_clerk(clerk, fault_report)


# ------------------------------------------------ faults that never clear: fail, delete nothing

PERSISTENT = {
    "5xx": (dict(kind=FaultKind.SERVER_ERROR, status=503), {}),
    # 429s never use up attempts: the run fails once no request has succeeded for the stall timeout.
    "429 forever": (dict(kind=FaultKind.RATE_LIMITED, retry_after_s=1), {"stall_timeout_seconds": 3}),
    "timeouts": (dict(kind=FaultKind.SLOW, delay_s=2), {"timeout_seconds": 0.3, "max_attempts": 2}),
    "connection reset": (dict(kind=FaultKind.DROPPED_CONNECTION), {"max_attempts": 3}),
    "truncated body": (dict(kind=FaultKind.TRUNCATED_BODY), {"max_attempts": 3}),
    "non-JSON body": (dict(kind=FaultKind.NON_JSON), {"max_attempts": 3}),
    "401": (dict(kind=FaultKind.UNAUTHORIZED), {}),
}


@pytest.mark.parametrize("case", list(PERSISTENT))
def test_a_fault_that_never_clears_fails_the_run_and_deletes_nothing(
    clerk: SyncHarness, fault_report: FaultReport, case: str
) -> None:
    changes = change_clerk(clerk)  # a deletion is waiting: it must not happen
    before = clerk.row_versions()
    runs_before = len(clerk.sync_runs())
    fault, client = PERSISTENT[case]
    # Users and organizations are read first; the memberships, read last, fail from their second page on.
    armed = clerk.emulator.faults.add(path_prefix="/v1/organization_memberships", skip=1, times=None, **fault)

    result = run(clerk, fault_report, client=client)

    assert not result.success
    assert armed.fired >= 1
    assert_nothing_written(clerk, fault_report, before)
    assert clerk.row(USERS, changes["deleted"])["deleted_at"] is None
    assert len(clerk.sync_runs()) == runs_before  # it failed reading Clerk, before any plan was applied
    text = failure(result)
    assert ("ClerkAuthError" if case == "401" else "ClerkUnavailableError") in text, text
    assert KEY not in text


def test_a_key_revoked_mid_run_fails_at_once_and_deletes_nothing(clerk: SyncHarness, fault_report: FaultReport) -> None:
    changes = change_clerk(clerk)
    before = clerk.row_versions()
    settings = clerk.emulator.settings

    def revoke() -> None:
        settings.secret_key = "sk_live_the_key_after_rotation"

    clerk.emulator.faults.add(FaultKind.CALLBACK, path_prefix="/v1/organizations", skip=0, action=revoke)
    answered_401 = clerk.emulator.stats.responses_by_status[401]

    result = run(clerk, fault_report)

    assert not result.success
    text = failure(result)
    assert "ClerkAuthError" in text and "CLERK_SECRET_KEY" in text and KEY not in text
    # A 401 is not retried: each request in flight when the key went away met it once.
    assert clerk.emulator.stats.responses_by_status[401] - answered_401 <= 16
    assert_nothing_written(clerk, fault_report, before)
    assert clerk.row(USERS, changes["deleted"])["deleted_at"] is None


def test_after_every_fault_a_clean_run_converges(clerk: SyncHarness, fault_report: FaultReport) -> None:
    """Whatever the failed runs above left undone, the next run does."""
    result = run(clerk, fault_report)

    assert result.success, failure(result)
    assert_mirror_equals_clerk(clerk, fault_report)
    assert mirror_against_clerk(clerk).none
