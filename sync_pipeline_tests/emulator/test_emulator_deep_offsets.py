"""Deep offsets: slower with depth, and past a configurable offset a 504 with Clerk's error body."""

from __future__ import annotations

import time

import httpx

from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.emulator.app import EmulatorSettings


def assert_clerk_timeout(response: httpx.Response) -> None:
    assert response.status_code == 504
    body = response.json()
    assert set(body) == {"errors", "clerk_trace_id"}
    (error,) = body["errors"]
    assert set(error) == {"message", "long_message", "code", "meta"}
    assert error["code"] == "request_timeout" and "starting_after" in error["long_message"]


def test_defaults_time_out_users_past_ten_thousand_and_never_memberships() -> None:
    settings = EmulatorSettings()
    assert settings.users_offset_timeout == 10_000 and settings.memberships_offset_timeout is None
    assert 0 < settings.users_offset_ms_per_1000 < 5


def test_users_time_out_past_the_offset(private_emulator: EmulatorServer, private_client: httpx.Client) -> None:
    assert private_client.get("/users", params={"offset": 250}).status_code == 200  # below the default
    private_emulator.settings.users_offset_timeout = 100
    assert private_client.get("/users", params={"offset": 100, "limit": 5}).status_code == 200
    assert_clerk_timeout(private_client.get("/users", params={"offset": 101, "limit": 5}))
    cursor = private_client.get("/users", params={"limit": 1}).json()[0]["id"]
    walked = private_client.get("/users", params={"starting_after": cursor, "limit": 500})
    assert walked.status_code == 200 and len(walked.json()) == 299  # the cursor is never deep
    misuse = private_client.get("/users", params={"starting_after": cursor, "offset": 200})
    assert misuse.status_code == 422  # a bad request is refused before it is walked
    private_emulator.settings.users_offset_timeout = None
    assert private_client.get("/users", params={"offset": 299, "limit": 5}).status_code == 200


def test_memberships_time_out_only_when_asked(private_emulator: EmulatorServer, private_client: httpx.Client) -> None:
    deep = private_client.get("/organization_memberships", params={"offset": 1_000_000})
    assert deep.status_code == 200 and deep.json()["data"] == []
    private_emulator.settings.memberships_offset_timeout = 50
    assert private_client.get("/organization_memberships", params={"offset": 50}).status_code == 200
    assert_clerk_timeout(private_client.get("/organization_memberships", params={"offset": 51}))


def test_deeper_pages_take_longer(private_emulator: EmulatorServer, private_client: httpx.Client) -> None:
    private_emulator.settings.users_offset_ms_per_1000 = 2_000.0  # 0.5 s at offset 250
    private_emulator.settings.memberships_offset_ms_per_1000 = 2_000.0
    for path in ("/users", "/organization_memberships"):
        started = time.monotonic()
        assert private_client.get(path, params={"offset": 250, "limit": 1}).status_code == 200
        assert time.monotonic() - started >= 0.5  # a floor, never a ceiling: it cannot flake
