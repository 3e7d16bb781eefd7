"""Tests of the Clerk client against a small in-memory fake of Clerk's Backend API.

The fake sits behind ``httpx.MockTransport`` (injected through the client's private
``_transport`` hook), so every request goes through the real httpx client, limiter,
retry and paging code; faults are scripted per page at the HTTP edge.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import dagster as dg
import httpx
import pytest

from sync_pipeline.clerk import (
    ClerkAuthError,
    ClerkBadIdError,
    ClerkClient,
    ClerkConfigError,
    ClerkError,
    ClerkRequestError,
    ClerkUnavailableError,
    FetchStats,
    parse_retry_after,
)

KEY = "sk_test_Zm9vYmFyYmF6cXV4c2VjcmV0"

ERROR_422 = {
    "errors": [
        {
            "message": "is invalid",
            "long_message": "limit must be between 1 and 500",
            "code": "form_param_value_invalid",
            "meta": {"param_name": "limit"},
        }
    ],
    "clerk_trace_id": "3f1c0b7e9a4d",
}


def _user(i: int) -> dict[str, Any]:
    return {
        "id": f"user_{i:05d}",
        "object": "user",
        "first_name": f"First{i}",
        "created_at": 1_700_000_000_000 + i,
        "updated_at": 1_700_000_000_000 + i,
        "some_future_field": {"kind": "brand_new_enum_value", "n": i},
    }


def _org(i: int) -> dict[str, Any]:
    return {
        "id": f"org_{i:05d}",
        "object": "organization",
        "name": f"Org {i}",
        "members_count": 1,
        "created_at": 1_700_000_000_000 + i,
        "updated_at": 1_700_000_000_000 + i,
    }


def _membership(i: int, user_id: str, org_id: str) -> dict[str, Any]:
    return {
        "id": f"orgmem_{i:05d}",
        "object": "organization_membership",
        "role": "org:custom_role_nobody_documented",
        "organization": {"id": org_id, "object": "organization"},
        "public_user_data": {"user_id": user_id},
        "created_at": 1_700_000_000_000 + i,
        "updated_at": 1_700_000_000_000 + i,
    }


class FakeClerk:
    """Just enough of Clerk's Backend API, with scripted faults.

    ``script[(path, offset)]`` is a list consumed one entry per matching request: an
    ``httpx.Response`` to answer with, or an exception to raise (a dropped connection).
    ``offset`` is the ``offset`` query value as a string, or None for requests without one.
    """

    def __init__(self, users: int = 0, orgs: int = 0) -> None:
        self.users = [_user(i) for i in range(users)]
        self.orgs = [_org(i) for i in range(orgs)]
        self.memberships: list[dict[str, Any]] = []
        self.reported_user_count: int | None = None
        self.script: dict[tuple[str, str | None], list[Any]] = {}
        self.requests: list[tuple[float, httpx.Request]] = []
        self.latency = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.after_response: Any = None  # callable(request) run after each answer

    # --- helpers for tests
    def add_memberships(self, user_index: int, org_indices: list[int]) -> None:
        for j in org_indices:
            self.memberships.append(
                _membership(len(self.memberships), self.users[user_index]["id"], self.orgs[j]["id"])
            )

    def requests_to(self, path: str, offset: str | None = "*") -> list[httpx.Request]:
        return [
            r
            for _, r in self.requests
            if r.url.path == path and (offset == "*" or r.url.params.get("offset") == offset)
        ]

    def client(self, **overrides: Any) -> ClerkClient:
        config: dict[str, Any] = dict(
            secret_key=KEY,
            api_url="https://clerk.test/v1",
            page_size=10,
            max_backoff_seconds=0.01,
            max_attempts=4,
            timeout_seconds=5.0,
            requests_per_10s=100_000,
        )
        config.update(overrides)
        client = ClerkClient(**config)
        client._transport = httpx.MockTransport(self.handle)
        return client

    # --- the transport
    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((time.monotonic(), request))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            scripted = self.script.get((request.url.path, request.url.params.get("offset")))
            if scripted:
                entry = scripted.pop(0)
                if isinstance(entry, BaseException):
                    raise entry
                return entry
            return self.route(request)
        finally:
            self.in_flight -= 1
            if self.after_response is not None:
                self.after_response(request)

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"errors": [{"message": "Unauthorized", "code": "authentication_invalid"}]})
        path = request.url.path.removeprefix("/v1")
        params = request.url.params
        parts = path.strip("/").split("/")
        try:
            limit = int(params.get("limit", "10"))
            offset = int(params.get("offset", "0"))
        except ValueError:
            return httpx.Response(422, json=ERROR_422)
        if not 1 <= limit <= 500:
            return httpx.Response(422, json=ERROR_422)

        def page(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return rows[offset : offset + limit]

        def listing(rows: list[dict[str, Any]]) -> httpx.Response:
            return httpx.Response(200, json={"data": page(rows), "total_count": len(rows)})

        def created_window(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:  # exclusive bounds
            after, before = params.get("created_at_after"), params.get("created_at_before")
            return [
                u for u in rows
                if (after is None or u["created_at"] > int(after)) and (before is None or u["created_at"] < int(before))
            ]

        if path == "/users/count":
            total = len(created_window(self.users)) if self.reported_user_count is None else self.reported_user_count
            return httpx.Response(200, json={"object": "total_count", "total_count": total})
        if path == "/users":
            ids = params.get_list("user_id")
            rows = [u for u in self.users if u["id"] in ids] if ids else created_window(self.users)
            cursor = params.get("starting_after")
            if cursor is not None:
                if offset:
                    return httpx.Response(422, json=ERROR_422)
                positions = [i for i, u in enumerate(rows) if u["id"] == cursor]
                if not positions:
                    return httpx.Response(422, json=ERROR_422)
                rows = rows[positions[0] + 1 :]
            return httpx.Response(200, json=page(rows))
        if parts[0] == "users" and len(parts) == 2:
            user = next((u for u in self.users if u["id"] == parts[1]), None)
            return httpx.Response(200, json=user) if user else httpx.Response(404, json={"errors": [{"code": "resource_not_found"}]})
        if path == "/organizations":
            return listing(self.orgs)
        if path == "/organization_memberships":
            return listing(self.memberships)
        if parts[0] == "organizations" and len(parts) == 2:
            org = next((o for o in self.orgs if o["id"] == parts[1]), None)
            return httpx.Response(200, json=org) if org else httpx.Response(404, json={"errors": [{"code": "resource_not_found"}]})
        if parts[0] == "organizations" and parts[2:] == ["memberships"]:
            if not any(o["id"] == parts[1] for o in self.orgs):
                return httpx.Response(404, json={"errors": [{"code": "resource_not_found"}]})
            return listing([m for m in self.memberships if m["organization"]["id"] == parts[1]])
        if parts[0] == "users" and parts[2:] == ["organization_memberships"]:
            if not any(u["id"] == parts[1] for u in self.users):
                return httpx.Response(404, json={"errors": [{"code": "resource_not_found"}]})
            return listing([m for m in self.memberships if m["public_user_data"]["user_id"] == parts[1]])
        return httpx.Response(404, json={"errors": [{"code": "resource_not_found"}]})


def ids_of(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]


# --------------------------------------------------------------------------------------
# Requests, headers, full scans
# --------------------------------------------------------------------------------------


def test_sends_bearer_key_pinned_version_user_agent_and_stable_order():
    fake = FakeClerk(users=3, orgs=2)
    fake.client(api_version="2025-11-10").fetch_users()
    fake.client().fetch_organizations()
    for _, request in fake.requests:
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        assert request.headers["Clerk-API-Version"] == "2025-11-10"
        assert "sync_pipeline" in request.headers["User-Agent"]
        assert request.url.host == "clerk.test" and request.url.path.startswith("/v1/")
    users_page = fake.requests_to("/v1/users")[0]
    assert users_page.url.params["order_by"] == "+created_at"
    assert users_page.url.params["limit"] == "10"
    orgs_page = fake.requests_to("/v1/organizations")[0]
    assert orgs_page.url.params["order_by"] == "+created_at"
    assert orgs_page.url.params["include_members_count"] == "true"


def test_fetch_users_walks_created_at_windows_by_cursor_concurrently_and_in_order():
    fake = FakeClerk(users=95)
    fake.latency = 0.02
    result = fake.client().fetch_users()
    assert ids_of(result.rows) == [f"user_{i:05d}" for i in range(95)]  # each once, oldest first
    assert result.rows == fake.users  # unknown fields and enum values untouched
    assert fake.max_in_flight > 1
    stats = result.stats
    assert stats.user_windows >= 2 and stats.total_count == 95
    pages = fake.requests_to("/v1/users")
    assert all("offset" not in r.url.params and r.url.params["order_by"] == "+created_at" for r in pages)
    assert any("starting_after" in r.url.params for r in pages)
    assert stats.rows == 95 and stats.retries == 0 and stats.seconds > 0
    assert "created_at window" in stats.summary()


def test_users_created_after_the_scan_began_are_left_to_the_next_sync():
    fake = FakeClerk(users=12)
    fake.users.append({**_user(12), "created_at": int(time.time() * 1000) + 86_400_000})
    result = fake.client().fetch_users()
    assert ids_of(result.rows) == [f"user_{i:05d}" for i in range(12)]


def test_a_window_is_walked_by_cursor_until_a_short_page():
    fake = FakeClerk(users=20)
    result = fake.client().fetch_users()
    assert len(result.rows) == 20
    cursors = [r.url.params.get("starting_after") for r in fake.requests_to("/v1/users")]
    assert cursors == [None, "user_00009", "user_00019"]

def test_empty_instance():
    fake = FakeClerk()
    assert fake.client().fetch_users().rows == []
    assert fake.client().fetch_organizations().rows == []
    assert fake.client().fetch_memberships().rows == []


def test_organizations_first_page_gives_total_then_rest_and_past_the_end():
    fake = FakeClerk(orgs=35)
    grown = False

    def grow(request: httpx.Request) -> None:  # 12 organizations appear after the first page
        nonlocal grown
        if not grown:
            grown = True
            fake.orgs.extend(_org(i) for i in range(35, 47))

    fake.after_response = grow
    result = fake.client().fetch_organizations()
    assert ids_of(result.rows) == [f"org_{i:05d}" for i in range(47)]
    assert result.stats.total_count == 35
    assert sorted(int(r.url.params["offset"]) for r in fake.requests_to("/v1/organizations")) == [0, 10, 20, 30, 40]


def test_rows_repeated_across_pages_are_all_passed_through():
    fake = FakeClerk(orgs=25)
    inserted = False

    def insert_at_front(request: httpx.Request) -> None:  # shifts every later page by one
        nonlocal inserted
        if not inserted:
            inserted = True
            fake.orgs.insert(0, {**_org(999), "id": "org_new"})

    fake.after_response = insert_at_front
    rows = fake.client().fetch_organizations().rows
    counts = Counter(ids_of(rows))
    assert counts["org_00009"] == 2  # seen on page 0 and again on page 1
    assert len(rows) == 26


def test_a_short_page_inside_the_announced_range_is_counted():
    fake = FakeClerk(orgs=30)
    fake.script[("/v1/organizations", "10")] = [httpx.Response(200, json={"data": fake.orgs[10:13], "total_count": 30})]
    result = fake.client().fetch_organizations()
    assert len(result.rows) == 23
    assert result.stats.early_short_pages == 1
    assert result.stats.to_metadata()["clerk_early_short_pages"] == 1


def test_fetch_memberships_scans_the_instance_wide_list():
    fake = FakeClerk(users=3, orgs=3)
    for u in range(3):
        fake.add_memberships(u, [0, 1, 2])
    fake.add_memberships(0, [0] * 5)  # 14 memberships in all
    result = fake.client().fetch_memberships()
    assert result.rows == fake.memberships
    assert result.stats.endpoints["GET /organization_memberships"].pages == 2


def test_accepts_wrapped_user_lists_too():
    fake = FakeClerk(users=3)
    fake.script[("/v1/users", "0")] = [httpx.Response(200, json={"data": fake.users, "total_count": 3})]
    assert ids_of(fake.client().fetch_users().rows) == ids_of(fake.users)


# --------------------------------------------------------------------------------------
# Rate, concurrency
# --------------------------------------------------------------------------------------


def test_rate_limit_holds_in_every_window():
    fake = FakeClerk(users=12)
    client = fake.client(requests_per_10s=5, page_size=1)
    client._rate_window_seconds = 0.25  # "10 s" shrunk to a quarter second
    started = time.monotonic()
    assert len(client.fetch_users().rows) == 12
    times = sorted(t for t, _ in fake.requests)
    assert len(times) >= 14  # the count, the window planning, 12 pages and the empty ones ending each window
    for i, t in enumerate(times):
        in_window = sum(1 for u in times[i:] if u < t + 0.25)
        assert in_window <= 5, (i, in_window)
    # 14 requests at 5 per window cannot fit in less than two windows
    assert time.monotonic() - started >= 0.5


def test_concurrency_never_exceeds_max_concurrency():
    fake = FakeClerk(users=200)
    fake.latency = 0.01
    result = fake.client(max_concurrency=3).fetch_users()
    assert len(result.rows) == 200
    assert 1 < fake.max_in_flight <= 3


def test_default_rate_follows_the_key_kind():
    # Half of Clerk's limit by default: the application shares the instance's budget.
    assert ClerkClient(secret_key="sk_test_x").rate_limit_per_10s == 50
    assert ClerkClient(secret_key="sk_live_x").rate_limit_per_10s == 500
    assert ClerkClient(secret_key="something_else").rate_limit_per_10s == 50
    assert ClerkClient(secret_key="sk_live_x", rate_share=0.2).rate_limit_per_10s == 200
    assert ClerkClient(secret_key="sk_live_x", rate_share=0.2, requests_per_10s=300).rate_limit_per_10s == 300


# --------------------------------------------------------------------------------------
# Retries and errors
# --------------------------------------------------------------------------------------


def test_429_waits_exactly_retry_after_and_pauses_the_other_requests():
    fake = FakeClerk(orgs=60)
    fake.script[("/v1/organizations", "20")] = [httpx.Response(429, headers={"Retry-After": "1"})]
    result = fake.client(max_concurrency=4).fetch_organizations()
    assert len(result.rows) == 60
    assert result.stats.responses_429 == 1 and result.stats.retries == 1
    page_20 = [t for t, r in fake.requests if r.url.path == "/v1/organizations" and r.url.params["offset"] == "20"]
    assert len(page_20) == 2 and page_20[1] - page_20[0] >= 0.95
    # Nothing new was sent during the pause (requests already on their way may land just after).
    throttled_at = page_20[0]
    assert not [t for t, _ in fake.requests if throttled_at + 0.1 < t < throttled_at + 0.95]


def test_429_without_retry_after_backs_off_and_retries():
    fake = FakeClerk(orgs=3)
    fake.script[("/v1/organizations", "0")] = [httpx.Response(429), httpx.Response(429)]
    result = fake.client().fetch_organizations()
    assert len(result.rows) == 3
    assert result.stats.responses_429 == 2 and result.stats.retries == 2


def test_parse_retry_after():
    now = datetime(2025, 11, 10, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("Mon, 10 Nov 2025 12:00:05 GMT", now=now) == 5.0
    assert parse_retry_after("Mon, 10 Nov 2025 11:59:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None


def test_transient_failures_are_survived():
    fake = FakeClerk(orgs=25)
    fake.script[("/v1/organizations", "10")] = [
        httpx.Response(500),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset by peer"),
        httpx.ReadTimeout("timed out"),
        httpx.Response(200, content=b"<html>502 Bad Gateway</html>"),  # not JSON
        httpx.Response(200, json={"unexpected": "shape"}),
        httpx.Response(503),
    ]
    result = fake.client(max_attempts=8).fetch_organizations()
    assert ids_of(result.rows) == ids_of(fake.orgs)
    assert result.stats.endpoints["GET /organizations"].retries == 7
    assert result.stats.retries == 7


def test_a_page_that_keeps_failing_raises_unavailable_naming_path_and_status():
    fake = FakeClerk(orgs=25)
    fake.script[("/v1/organizations", "10")] = [httpx.Response(503)] * 10
    with pytest.raises(ClerkUnavailableError) as caught:
        fake.client(max_attempts=3).fetch_organizations()
    error = caught.value
    assert error.last_status == 503 and error.attempts == 3
    assert error.path == "GET /organizations offset=10" and "GET /organizations offset=10" in str(error)
    assert "HTTP 503" in str(error) and "\n" not in str(error)
    assert len(fake.requests_to("/v1/organizations", "10")) == 3
    assert isinstance(error, ClerkError)


def test_a_connection_that_keeps_dropping_raises_unavailable():
    fake = FakeClerk(orgs=3)
    fake.script[("/v1/organizations", "0")] = [httpx.RemoteProtocolError("Server disconnected")] * 5
    with pytest.raises(ClerkUnavailableError, match="RemoteProtocolError") as caught:
        fake.client(max_attempts=2).fetch_organizations()
    assert caught.value.last_status is None


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_raises_auth_error_at_once_without_the_key(status: int):
    fake = FakeClerk(users=5)
    fake.script[("/v1/users/count", None)] = [httpx.Response(status, json={"errors": [{"message": KEY}]})]
    with pytest.raises(ClerkAuthError) as caught:
        fake.client().fetch_users()
    message = str(caught.value)
    assert message == f"Clerk rejected the secret key (HTTP {status}): check CLERK_SECRET_KEY"
    assert KEY not in message and KEY not in repr(caught.value)
    assert len(fake.requests) == 1  # no retries


def test_wrong_key_is_rejected_by_the_fake_and_not_echoed():
    fake = FakeClerk(users=5)
    with pytest.raises(ClerkAuthError) as caught:
        fake.client(secret_key="sk_test_wrongwrongwrong").fetch_users()
    assert "sk_test_wrongwrongwrong" not in str(caught.value)


def test_422_raises_request_error_with_clerks_long_message():
    fake = FakeClerk(orgs=5)
    fake.script[("/v1/organizations", "0")] = [httpx.Response(422, json=ERROR_422)]
    with pytest.raises(ClerkRequestError) as caught:
        fake.client().fetch_organizations()
    error = caught.value
    assert error.status == 422 and error.code == "form_param_value_invalid"
    assert "limit must be between 1 and 500" in str(error)
    assert "3f1c0b7e9a4d" in str(error)
    assert len(fake.requests_to("/v1/organizations")) == 1


def test_clerk_text_is_scrubbed_of_the_key():
    fake = FakeClerk(orgs=5)
    body = {"errors": [{"long_message": f"bad key {KEY} here", "code": "x"}]}
    fake.script[("/v1/organizations", "0")] = [httpx.Response(400, json=body)]
    with pytest.raises(ClerkRequestError) as caught:
        fake.client().fetch_organizations()
    assert KEY not in str(caught.value) and "[secret key]" in str(caught.value)


@pytest.mark.parametrize("key", ["", "   ", "sk_test_abc\n def"])
def test_missing_or_bad_key_raises_config_error_before_any_request(key: str):
    fake = FakeClerk(users=5)
    with pytest.raises(ClerkConfigError, match="CLERK_SECRET_KEY"):
        fake.client(secret_key=key).fetch_users()
    assert fake.requests == []


@pytest.mark.parametrize(
    "overrides", [{"page_size": 501}, {"page_size": 0}, {"max_concurrency": 0}, {"requests_per_10s": 0}, {"max_attempts": 0}]
)
def test_bad_settings_raise_config_error(overrides: dict[str, int]):
    fake = FakeClerk(users=5)
    with pytest.raises(ClerkConfigError):
        fake.client(**overrides).fetch_users()
    assert fake.requests == []


def test_errors_pickle_with_their_attributes():
    error = ClerkUnavailableError(path="GET /users", attempts=3, last_status=503, last_error="HTTP 503")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.last_status == 503
    auth = pickle.loads(pickle.dumps(ClerkAuthError(401, path="GET /users")))
    assert auth.status == 401 and "check CLERK_SECRET_KEY" in str(auth)


# --------------------------------------------------------------------------------------
# By id
# --------------------------------------------------------------------------------------


def test_users_by_id_are_fetched_100_ids_per_request():
    fake = FakeClerk(users=300)
    wanted = [f"user_{i:05d}" for i in range(0, 500, 2)]  # 250 ids, 100 of them unknown
    result = fake.client(page_size=500).fetch_users_by_id(wanted + wanted[:10])  # duplicates ignored
    assert sorted(ids_of(result.rows)) == sorted(i for i in wanted if int(i[5:]) < 300)
    requests = fake.requests_to("/v1/users")
    assert sorted(len(r.url.params.get_list("user_id")) for r in requests) == [50, 100, 100]
    assert all(r.url.params["limit"] == "100" for r in requests)
    assert fake.client().fetch_users_by_id([]).rows == []


def test_organizations_by_id_404_means_absent():
    fake = FakeClerk(orgs=3)
    result = fake.client().fetch_organizations_by_id(["org_00001", "org_gone", "org_00002"])
    assert ids_of(result.rows) == ["org_00001", "org_00002"]
    assert result.stats.not_found == 1
    assert all(r.url.params["include_members_count"] == "true" for _, r in fake.requests)


def test_memberships_of_users_page_per_user_and_404_means_none():
    fake = FakeClerk(users=3, orgs=12)
    fake.add_memberships(0, list(range(12)))  # 12 memberships: pages of 5, 5, 2
    fake.add_memberships(1, [3])
    result = fake.client(page_size=5).fetch_memberships_of_users(["user_00000", "user_00001", "user_gone"])
    assert ids_of(result.rows) == ids_of(fake.memberships)
    assert result.stats.gone_parents == ["user_gone"]  # the list's 404, confirmed by GET /users/user_gone
    assert result.stats.not_found == 2
    assert len(fake.requests_to("/v1/users/user_00000/organization_memberships")) == 3


def test_memberships_of_organizations_page_per_org_and_404_means_none():
    fake = FakeClerk(users=12, orgs=2)
    for u in range(12):
        fake.add_memberships(u, [0])
    fake.add_memberships(0, [1])
    result = fake.client(page_size=5).fetch_memberships_of_organizations(["org_00000", "org_00001", "org_gone"])
    assert ids_of(result.rows) == ids_of(fake.memberships)
    assert result.stats.gone_parents == ["org_gone"]
    assert result.stats.not_found == 2
    assert result.stats.endpoints["GET /organizations/{id}/memberships"].pages == 4
    assert all(r.url.params["order_by"] == "+created_at" for r in fake.requests_to("/v1/organizations/org_00000/memberships"))


@pytest.mark.parametrize("bad", ["org_a/../users", "..", "org a", "org_a?x=1", "x" * 200])
def test_ids_that_cannot_be_clerks_are_refused_before_any_request(bad: str):
    fake = FakeClerk()
    for method in ("fetch_organizations_by_id", "fetch_memberships_of_organizations", "fetch_memberships_of_users", "fetch_users_by_id"):
        with pytest.raises(ClerkBadIdError, match="not a Clerk id"):
            getattr(fake.client(), method)(["org_ok", bad])
    assert fake.requests == []


# --------------------------------------------------------------------------------------
# Streaming, threads, observability, Dagster
# --------------------------------------------------------------------------------------


def test_on_page_streams_pages_from_one_thread_one_at_a_time():
    fake = FakeClerk(users=95)
    fake.latency = 0.005
    seen: list[str] = []
    threads: set[int] = set()
    active = 0
    overlaps = 0

    def on_page(rows: list[dict[str, Any]]) -> None:
        nonlocal active, overlaps
        active += 1
        overlaps += active > 1
        threads.add(threading.get_ident())
        time.sleep(0.001)
        seen.extend(ids_of(rows))
        active -= 1

    result = fake.client().fetch_users(on_page=on_page)
    assert result.rows == []
    assert sorted(seen) == ids_of(fake.users)
    assert threads == {threading.get_ident()} and overlaps == 0
    assert result.stats.rows == 95


def test_an_error_in_on_page_stops_the_fetch_and_propagates():
    fake = FakeClerk(users=95)

    def on_page(rows: list[dict[str, Any]]) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        fake.client(max_concurrency=2).fetch_users(on_page=on_page)
    assert len(fake.requests) < 11


def test_works_from_a_thread_without_an_event_loop():
    fake = FakeClerk(users=15)
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(rows=fake.client().fetch_users().rows))
    thread.start()
    thread.join(10)
    assert len(out["rows"]) == 15


def test_works_when_the_calling_thread_already_runs_an_event_loop():
    fake = FakeClerk(users=15)

    async def caller() -> int:
        return len(fake.client().fetch_users().rows)

    assert asyncio.run(caller()) == 15


def test_stats_metadata_and_merge():
    fake = FakeClerk(users=12, orgs=3)
    users = fake.client().fetch_users().stats
    orgs = fake.client().fetch_organizations().stats
    merged = users.merge(orgs)
    assert merged.rows == 15 and merged.requests == users.requests + orgs.requests
    metadata = merged.to_metadata()
    assert metadata["clerk_rows"] == 15
    assert set(metadata["clerk_endpoints"]) == {"GET /users", "GET /users/count", "GET /organizations"}
    json.dumps(metadata)  # plain values only
    assert KEY not in json.dumps(metadata)
    assert isinstance(FetchStats().to_metadata()["clerk_requests"], int)


def test_stats_as_dict_is_plain_json():
    fake = FakeClerk(orgs=3)
    fake.script[("/v1/organizations", "0")] = [httpx.Response(429, headers={"Retry-After": "0"})]
    result = fake.client().fetch_organizations()
    as_dict = result.stats.as_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict == result.as_dict()
    assert (as_dict["requests"], as_dict["retries"], as_dict["responses_429"], as_dict["rows"]) == (2, 1, 1, 3)
    assert as_dict["operation"] == "fetch_organizations" and as_dict["total_count"] == 3
    assert as_dict["endpoints"]["GET /organizations"]["pages"] == 1


def test_key_is_not_in_the_resource_repr():
    client = ClerkClient(secret_key=KEY)
    assert KEY not in repr(client) and KEY not in str(client)


def test_resource_is_wired_from_env_var_in_dagster(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CLERK_SECRET_KEY", "sk_live_fromenv")

    @dg.asset
    def probe(clerk: ClerkClient) -> None:
        assert clerk.secret_key == "sk_live_fromenv"
        assert clerk.rate_limit_per_10s == 500

    result = dg.materialize([probe], resources={"clerk": ClerkClient(secret_key=dg.EnvVar("CLERK_SECRET_KEY"))})
    assert result.success


# --------------------------------------------------------------------------------------
# The fair share: 429s, stalls, the adaptive rate, progress
# --------------------------------------------------------------------------------------


def test_429s_never_use_up_attempts_while_the_instance_answers():
    fake = FakeClerk(orgs=25)
    fake.script[("/v1/organizations", "10")] = [httpx.Response(429, headers={"Retry-After": "0"})] * 10
    result = fake.client(max_attempts=2).fetch_organizations()
    assert len(result.rows) == 25
    assert result.stats.responses_429 == 10 and result.stats.retries == 10


def test_a_sync_that_meets_only_429s_fails_after_the_stall_timeout_with_one_line():
    fake = FakeClerk(orgs=5)
    fake.script[("/v1/organizations", "0")] = [httpx.Response(429, headers={"Retry-After": "0.05"})] * 1000
    started = time.monotonic()
    with pytest.raises(ClerkUnavailableError) as caught:
        fake.client(stall_timeout_seconds=0.5).fetch_organizations()
    assert 0.5 <= time.monotonic() - started < 5
    message = str(caught.value)
    assert "answered no request of this sync successfully" in message and "CLERK_STALL_TIMEOUT_SECONDS" in message
    assert "\n" not in message and KEY not in message and caught.value.stalled_seconds >= 0.5


def test_a_429_halves_the_rate_once_per_pause_and_good_windows_climb_back():
    from sync_pipeline.clerk.rate import RateControl

    async def scenario() -> list[float]:
        control = RateControl(40, window_seconds=0.05, max_burst=4, stall_timeout=60, stats=FetchStats())
        seen = [control.current]
        control.rate_limited(0.01)
        control.rate_limited(0.01)  # the same pause: no second cut
        seen.append(control.current)
        for _ in range(6):
            await asyncio.sleep(0.06)
            control.succeeded()
        seen.append(control.current)
        return seen

    start, cut, later = asyncio.run(scenario())
    assert (start, cut) == (40, 20)
    assert 20 < later <= 40  # additive: a twentieth of the target per window, never past it


def test_progress_is_reported_per_list_and_page():
    from sync_pipeline import progress

    events: list[tuple] = []

    class Recorder:
        def list_started(self, name, expected_rows):  # noqa: ANN001
            events.append(("started", name, expected_rows))

        def page_read(self, name, rows):  # noqa: ANN001
            events.append(("page", name, rows))

        def rate(self, requests_per_10s, responses_429, waiting_seconds):  # noqa: ANN001
            events.append(("rate",))

        def list_finished(self, name):  # noqa: ANN001
            events.append(("finished", name))

    fake = FakeClerk(users=25, orgs=12)
    with progress.reporting(Recorder()):
        fake.client().fetch_users()
        fake.client().fetch_organizations()
    assert events[0] == ("started", "users", 25) and ("finished", "users") in events
    assert sum(e[2] for e in events if e[:2] == ("page", "users")) == 25
    assert ("started", "organizations", 12) in events and events[-1] == ("finished", "organizations")


def test_a_refused_cursor_resumes_from_the_last_created_at_without_repeating():
    fake = FakeClerk(users=25)
    removed = False

    def delete_the_cursor_user(request: httpx.Request) -> None:
        nonlocal removed
        if not removed and request.url.path == "/v1/users" and "starting_after" not in request.url.params:
            removed = True
            fake.users = [u for u in fake.users if u["id"] != "user_00009"]

    fake.after_response = delete_the_cursor_user
    rows = fake.client().fetch_users().rows
    assert ids_of(rows) == [f"user_{i:05d}" for i in range(25)]  # user_00009 came on the first page, once
    assert any(r.url.params.get("created_at_after") for r in fake.requests_to("/v1/users"))


@pytest.mark.parametrize(
    ("status", "error"), [(403, ClerkAuthError), (422, ClerkRequestError), (404, ClerkRequestError)]
)
def test_a_membership_list_refused_for_a_parent_that_exists_stays_an_error(status: int, error: type):
    fake = FakeClerk(users=2, orgs=1)
    fake.script[("/v1/users/user_00000/organization_memberships", "0")] = [httpx.Response(status, json=ERROR_422)]
    with pytest.raises(error):
        fake.client().fetch_memberships_of_users(["user_00000"])
    assert len(fake.requests_to("/v1/users/user_00000")) == 1  # the parent was asked


def test_an_empty_membership_list_of_a_parent_that_exists_is_just_empty():
    fake = FakeClerk(users=2, orgs=1)
    result = fake.client().fetch_memberships_of_users(["user_00001"])
    assert result.rows == [] and result.stats.gone_parents == []


def test_the_rate_held_and_the_target_are_in_the_summary_and_metadata():
    fake = FakeClerk(orgs=25)
    fake.script[("/v1/organizations", "10")] = [httpx.Response(429, headers={"Retry-After": "0.2"})]
    stats = fake.client(requests_per_10s=1_000).fetch_organizations().stats
    assert stats.target_per_10s == 1_000 and stats.waiting_seconds >= 0.19
    metadata = stats.to_metadata()
    assert metadata["clerk_target_per_10s"] == 1_000 and metadata["clerk_requests_per_10s"] > 0
    assert "requests per 10 s held (target 1000)" in stats.summary() and "paused after 429s" in stats.summary()
