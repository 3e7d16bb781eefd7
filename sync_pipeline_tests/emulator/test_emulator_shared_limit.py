"""A rate limit shared with the instance's own (simulated) application, and the busiest window."""

from __future__ import annotations

import time

import httpx
import pytest

from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.emulator.app import EmulatorSettings, EmulatorStats, SlidingWindowRateLimiter
from sync_pipeline_tests.emulator.emulator_http import http_client


def admitted(limiter: SlidingWindowRateLimiter, now: float, tries: int, share: float) -> int:
    return sum(limiter.admit("sk", 10, 1.0, now, share) is None for _ in range(tries))


def test_the_application_takes_its_share_of_every_window() -> None:
    limiter = SlidingWindowRateLimiter()
    assert admitted(limiter, 0.0, 20, 0.5) == 9  # the application's first call fell at 0.0
    # One window on, its calls at 0.2, 0.4, 0.6, 0.8 and 1.0 fill half the budget: the sync gets the rest.
    assert admitted(limiter, 1.0, 20, 0.5) == 5
    assert admitted(limiter, 2.0, 20, 0.5) == 5
    # Idle for a long time: only the last window's calls count, none from before it.
    assert admitted(limiter, 100.0, 20, 0.5) == 5
    alone = SlidingWindowRateLimiter()
    assert [admitted(alone, now, 20, 0.0) for now in (0.0, 1.0, 2.0)] == [10, 10, 10]


def test_the_default_share_and_its_bounds() -> None:
    assert EmulatorSettings().application_share == 0.2
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match="application_share"):
            EmulatorSettings(application_share=bad)


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_over_http_the_sync_meets_429s_earlier(share: float) -> None:
    window_s = 2.0
    server = EmulatorServer(users=5, orgs=1, requests_per_10s=20, rate_limit_window_s=window_s)
    server.settings.application_share = share
    with server, http_client(server) as client:
        assert client.get("/users/count").status_code == 200
        time.sleep(window_s)  # the application has spent a window's share by now
        statuses = [client.get("/users/count").status_code for _ in range(21)]
    passed = statuses.count(200)
    assert statuses[passed:] == [429] * (21 - passed)  # refused from the first refusal on
    if share == 0.0:
        assert passed == 20
    else:
        assert 5 <= passed <= 14  # about half, whatever the pace of the burst
    assert server.stats.requests_under("/v1/") == 22  # the application's calls are not requests seen


def test_no_limit_means_no_application() -> None:
    server = EmulatorServer(users=5, orgs=1, requests_per_10s=0, rate_limit_window_s=0.2)
    server.settings.application_share = 0.9
    with server, http_client(server) as client:
        assert all(client.get("/users/count").status_code == 200 for _ in range(50))


def test_busiest_window_counts_api_requests_in_any_window() -> None:
    stats = EmulatorStats()
    for at in (0.0, 0.5, 1.0, 9.0, 10.5, 11.0, 11.2, 11.4, 30.0):
        stats.record_request("/v1/users", at=at)
    assert stats.busiest_window(10.0) == 5  # 9.0 .. 11.4 (1.0 and 11.0 are a whole window apart)
    assert stats.busiest_window(10.5) == 6  # 1.0 .. 11.4
    assert stats.busiest_window(1.0) == 4  # 10.5, 11.0, 11.2, 11.4
    assert stats.busiest_window(0.1) == 1
    stats.reset()
    assert stats.busiest_window() == 0


def test_busiest_window_over_http_leaves_out_the_admin_api(private_emulator: EmulatorServer) -> None:
    with http_client(private_emulator) as client:
        for _ in range(7):
            client.get("/users", params={"limit": 1})
        admin = httpx.post(
            f"{private_emulator.admin_url}/users", json={"first_name": "Ada"},
            headers={"Authorization": f"Bearer {private_emulator.secret_key}"},
        )
        assert admin.status_code == 200
    assert private_emulator.stats.busiest_window(60.0) == 7
