"""Every injectable fault, as a client sees it through httpx."""

from __future__ import annotations

import json

import httpx
import pytest

from sync_pipeline.emulator import EmulatorServer, FaultInjector, FaultKind
from sync_pipeline_tests.emulator.emulator_http import http_client


@pytest.fixture
def server(private_emulator: EmulatorServer) -> EmulatorServer:
    return private_emulator


@pytest.fixture
def client(private_client: httpx.Client) -> httpx.Client:
    return private_client


def test_server_error(server: EmulatorServer, client: httpx.Client) -> None:
    fault = server.faults.add(FaultKind.SERVER_ERROR, status=503)
    failed = client.get("/users")
    assert failed.status_code == 503
    assert failed.json()["errors"][0]["code"] == "internal_clerk_error"
    assert client.get("/users").status_code == 200  # times=1: once only
    assert fault.fired == 1 and server.faults.fired[FaultKind.SERVER_ERROR] == 1


def test_injected_429_carries_the_given_retry_after(server: EmulatorServer, client: httpx.Client) -> None:
    server.faults.add(FaultKind.RATE_LIMITED, retry_after_s=7)
    response = client.get("/organizations")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert server.stats.too_many_requests == 1 and server.stats.rate_limited == 0


def test_slow_answer_outlasts_the_client_timeout(server: EmulatorServer) -> None:
    server.faults.add(FaultKind.SLOW, delay_s=5)
    with http_client(server, timeout=0.3) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.get("/users")
    with http_client(server, timeout=0.3) as client:
        assert client.get("/users").status_code == 200  # the server is not stuck behind it


def test_slow_answer_arrives_eventually(server: EmulatorServer, client: httpx.Client) -> None:
    server.faults.add(FaultKind.SLOW, delay_s=0.2)
    assert client.get("/users").status_code == 200


def test_connection_dropped_mid_body(server: EmulatorServer, client: httpx.Client) -> None:
    server.faults.add(FaultKind.DROPPED_CONNECTION)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get("/users", params={"limit": 100})
    assert len(client.get("/users", params={"limit": 100}).json()) == 100  # a new connection works


def test_truncated_body(server: EmulatorServer, client: httpx.Client) -> None:
    server.faults.add(FaultKind.TRUNCATED_BODY)
    response = client.get("/organization_memberships")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_non_json_body(server: EmulatorServer, client: httpx.Client) -> None:
    server.faults.add(FaultKind.NON_JSON)
    response = client.get("/users/count")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()
    server.faults.add(FaultKind.NON_JSON, status=502)
    assert client.get("/users/count").status_code == 502


def test_key_revoked_mid_run_until_cleared(server: EmulatorServer, client: httpx.Client) -> None:
    assert client.get("/users").status_code == 200
    server.faults.add(FaultKind.UNAUTHORIZED, times=None)
    assert [client.get("/users").status_code for _ in range(3)] == [401, 401, 401]
    assert client.get("/users").json()["errors"][0]["code"] == "authentication_invalid"
    server.faults.clear()
    assert client.get("/users").status_code == 200


def test_short_page_keeps_total_count(server: EmulatorServer, client: httpx.Client) -> None:
    server.faults.add(FaultKind.SHORT_PAGE, missing_rows=3, times=2)
    memberships = client.get("/organization_memberships", params={"limit": 20}).json()
    assert len(memberships["data"]) == 17 and memberships["total_count"] == server.store.membership_count
    assert len(client.get("/users", params={"limit": 20}).json()) == 17  # bare arrays too
    assert len(client.get("/users", params={"limit": 20}).json()) == 20


def test_faults_target_a_path_prefix_and_can_skip(server: EmulatorServer, client: httpx.Client) -> None:
    server.faults.add(FaultKind.SERVER_ERROR, path_prefix="/v1/organizations", skip=2)
    assert client.get("/users").status_code == 200  # other paths untouched
    statuses = [client.get("/organizations").status_code for _ in range(4)]
    assert statuses == [200, 200, 500, 200]


def test_probability_is_seeded_and_repeatable() -> None:
    def pattern() -> list[bool]:
        faults = FaultInjector()
        faults.add(FaultKind.SERVER_ERROR, probability=0.3, seed=5, times=None)
        return [faults.take("/v1/users") is not None for _ in range(200)]

    first = pattern()
    assert first == pattern()
    assert 30 <= sum(first) <= 90


def test_faults_can_be_removed(server: EmulatorServer, client: httpx.Client) -> None:
    fault = server.faults.add(FaultKind.SERVER_ERROR, times=None)
    assert client.get("/users").status_code == 500
    server.faults.remove(fault)
    assert server.faults.armed == []
    assert client.get("/users").status_code == 200
