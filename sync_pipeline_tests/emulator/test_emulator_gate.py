"""Authentication, rate limits, latency and the served-request counts."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from sync_pipeline.emulator import EmulatorServer, EmulatorSettings
from sync_pipeline_tests.emulator.emulator_http import http_client


@pytest.mark.parametrize("authorization", [None, "Bearer sk_test_wrong", "sk_test_emulator", "Basic sk_test_emulator"])
def test_missing_or_wrong_key_is_401(emulator: EmulatorServer, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(f"{emulator.base_url}/users", headers=headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "authentication_invalid"
    assert response.json()["clerk_trace_id"]


@pytest.mark.parametrize("version", ["2021-02-05", "2025-04-10", "2025-11-10", "2026-05-12"])
def test_released_api_versions_are_accepted(emulator: EmulatorServer, version: str) -> None:
    with http_client(emulator) as client:
        assert client.get("/users/count", headers={"Clerk-API-Version": version}).status_code == 200
    key_only = {"Authorization": f"Bearer {emulator.secret_key}"}
    by_query = httpx.get(f"{emulator.base_url}/users/count", headers=key_only, params={"__clerk_api_version": version})
    assert by_query.status_code == 200
    bare = httpx.get(f"{emulator.base_url}/users/count", headers=key_only)
    assert bare.status_code == 200  # naming no version is fine: the instance's default applies


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Clerk-API-Version": "1999-01-01"}, {}),  # well-formed, never released
        ({"Clerk-API-Version": "2025-13-45"}, {}),
        ({"Clerk-API-Version": "latest"}, {}),
        ({"Clerk-API-Version": "v1"}, {}),
        ({}, {"__clerk_api_version": "2025-11"}),
        ({"Clerk-API-Version": "2025-11-10"}, {"__clerk_api_version": "2025-11-10"}),  # both ways at once
    ],
)
def test_a_bad_api_version_is_400_with_a_clerk_error(
    emulator: EmulatorServer, headers: dict[str, str], params: dict[str, str]
) -> None:
    plain = {"Authorization": f"Bearer {emulator.secret_key}", **headers}
    response = httpx.get(f"{emulator.base_url}/users", headers=plain, params=params)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"errors", "clerk_trace_id"}
    assert body["errors"][0]["code"] == "api_version_invalid"
    assert set(body["errors"][0]) == {"message", "long_message", "code", "meta"}
    unauthorized = httpx.get(f"{emulator.base_url}/users", headers={**headers}, params=params)
    assert unauthorized.status_code == 401  # the key is checked first


def test_the_version_check_can_be_turned_off(private_emulator: EmulatorServer) -> None:
    private_emulator.settings.check_api_version = False
    with http_client(private_emulator) as client:
        assert client.get("/users/count", headers={"Clerk-API-Version": "1999-01-01"}).status_code == 200


def test_the_accepted_key_is_configurable() -> None:
    with EmulatorServer(users=5, orgs=1, secret_key="sk_live_custom") as server, http_client(server) as client:
        assert client.get("/users").status_code == 200
        server.settings.secret_key = "sk_live_rotated"  # the next request sees the change
        assert client.get("/users").status_code == 401


def test_clerk_limits_by_key_kind() -> None:
    assert EmulatorSettings(secret_key="sk_test_abc").request_limit() == 100
    assert EmulatorSettings(secret_key="sk_live_abc").request_limit() == 1000
    assert EmulatorSettings(secret_key="sk_live_abc", requests_per_10s=5).request_limit() == 5
    assert EmulatorSettings(requests_per_10s=0).request_limit() is None


def test_over_the_limit_is_429_with_retry_after() -> None:
    with EmulatorServer(users=5, orgs=1, requests_per_10s=3) as server, http_client(server) as client:
        statuses = [client.get("/users/count").status_code for _ in range(3)]
        refused = client.get("/users")
        assert statuses == [200, 200, 200]
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 10
        assert refused.json()["errors"][0]["code"] == "too_many_requests"
        assert server.stats.rate_limited == 1 and server.stats.too_many_requests == 1
        assert server.stats.requests_by_path == {"/v1/users/count": 3, "/v1/users": 1}


def test_the_window_slides() -> None:
    server = EmulatorServer(users=5, orgs=1, requests_per_10s=2, rate_limit_window_s=0.4)
    with server, http_client(server) as client:
        assert [client.get("/users").status_code for _ in range(3)] == [200, 200, 429]
        time.sleep(0.5)
        assert client.get("/users").status_code == 200


def test_latency_overlaps_across_concurrent_requests() -> None:
    async def fetch_concurrently(server: EmulatorServer, count: int) -> list[int]:
        headers = {"Authorization": f"Bearer {server.secret_key}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
            responses = await asyncio.gather(*(client.get("/users/count") for _ in range(count)))
        return [response.status_code for response in responses]

    with EmulatorServer(users=5, orgs=1, latency_ms=300, requests_per_10s=0) as server:
        started = time.monotonic()
        assert asyncio.run(fetch_concurrently(server, 8)) == [200] * 8
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 1.5  # eight requests in parallel, not 8 x 0.3 s in a row


def test_stats_count_requests_per_path(private_emulator: EmulatorServer, private_client: httpx.Client) -> None:
    user = private_client.get("/users", params={"limit": 1}).json()[0]
    private_client.get(f"/users/{user['id']}")
    private_client.get(f"/users/{user['id']}/organization_memberships")
    stats = private_emulator.stats
    assert stats.requests == 3
    assert stats.requests_under("/v1/users/") == 2
    assert stats.responses_by_status[200] == 3
    stats.reset()
    assert stats.requests == 0
