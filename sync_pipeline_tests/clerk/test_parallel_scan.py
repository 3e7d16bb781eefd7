"""A large instance's full scan reads the memberships in a second process, the rate divided by the pages each reads.

The threshold is lowered here so a small emulator takes that path; what the two processes
read together must be exactly what one process reads alone.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from sync_pipeline.clerk import snapshot as clerk_snapshot
from sync_pipeline.clerk.client import ClerkClient
from sync_pipeline.clerk.errors import ClerkAuthError, ClerkUnavailableError
from sync_pipeline.emulator import EmulatorServer, FaultKind
from sync_pipeline.model import ENTITIES, MEMBERSHIPS, SyncScope
from sync_pipeline_tests.harness import clerk_ids, written_rows

KEY = "sk_live_parallel"


@pytest.fixture(scope="module")
def emulator():  # noqa: ANN201
    with EmulatorServer(users=600, orgs=60, seed=23, secret_key=KEY, requests_per_10s=0) as server:
        yield server


def _client(emulator: EmulatorServer, **settings) -> ClerkClient:
    defaults = {"requests_per_10s": 2000, "page_size": 100, "max_backoff_seconds": 0.2, "timeout_seconds": 5}
    return ClerkClient(secret_key=KEY, api_url=emulator.base_url, **{**defaults, **settings})


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


def _read(client: ClerkClient, monkeypatch: pytest.MonkeyPatch, threshold: int):  # noqa: ANN202
    monkeypatch.setattr(clerk_snapshot, "PARALLEL_SCAN_MIN_USERS", threshold)
    return clerk_snapshot.read_clerk(client, SyncScope())


def test_two_processes_read_what_one_reads(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    alone, _ = _read(_client(emulator), monkeypatch, threshold=10**9)
    together, report = _read(_client(emulator), monkeypatch, threshold=0)

    for entity in ENTITIES:
        # Rows keep the order their pages arrived in, which concurrent requests make vary from
        # one read to the next (in one process as in two): the same rows, compared in id order.
        pd.testing.assert_frame_equal(_by_id(together.frame(entity)), _by_id(alone.frame(entity)))
    assert report.fetch_stats["organization_memberships"]["rows"] == len(together.frame(MEMBERSHIPS))
    sizes = report.fetch_stats["list_sizes"]
    assert sizes["requests"] == len(ENTITIES)  # one size per list, the users' count among them
    assert "GET /users/count" in sizes["endpoints"]
    assert "/users/count" not in str(report.fetch_stats["users"])  # the scan started from the count it was given


def test_the_rate_is_divided_by_the_pages_each_process_reads() -> None:
    # 100,000 users, 10,000 organizations, 100,441 memberships and 70 pages of short lists, 500 a page.
    sizes = {"users": 100_000, "organizations": 10_000, "organization_memberships": 100_441, "organization_roles": 35_000}
    here, there = clerk_snapshot.split_rate(950, sizes, 500)
    assert (here, there) == (561, 389)  # 290 pages here, 201 there: both end after about 5.2 s
    assert here + there == 950
    # A list that announced no size counts as one page; the memberships' process always gets some rate.
    assert clerk_snapshot.split_rate(950, {"users": 100_000, "organization_memberships": None}, 500) == (945, 5)
    assert clerk_snapshot.split_rate(2, {"users": 10, "organization_memberships": 10**6}, 500) == (1, 1)


def test_a_membership_scan_that_fails_in_the_other_process_fails_the_read(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.faults.add(FaultKind.SERVER_ERROR, status=503, path_prefix="/v1/organization_memberships", times=None)
    try:
        with pytest.raises(ClerkUnavailableError, match="organization_memberships"):
            _read(_client(emulator, max_attempts=2), monkeypatch, threshold=0)
    finally:
        emulator.faults.clear()


def test_a_failure_here_stops_the_other_process_at_once(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The memberships are slow (5 s a page); the users fail at once on a revoked key.
    emulator.faults.add(FaultKind.SLOW, delay_s=5, path_prefix="/v1/organization_memberships", times=None)
    emulator.faults.add(FaultKind.UNAUTHORIZED, path_prefix="/v1/users", skip=1, times=None)  # the count passes
    started = time.monotonic()
    try:
        with pytest.raises(ClerkAuthError):
            _read(_client(emulator, timeout_seconds=30), monkeypatch, threshold=0)
    finally:
        emulator.faults.clear()
    assert time.monotonic() - started < 15  # not the memberships' minutes


def test_the_sync_job_mirrors_clerk_through_the_two_processes(harness, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(clerk_snapshot, "PARALLEL_SCAN_MIN_USERS", 0)

    result = harness.run()

    assert result.success
    for entity, ids in clerk_ids(harness.emulator).items():
        assert harness.live_ids(entity) == ids, entity
    again = harness.run()
    assert again.success and written_rows(again) == 0  # the frame handed back compares equal to the mirror
