"""dlt beside us (``python -m benchmarks.run --dlt``): the pieces, at a tiny scale, never timed.

The stand-in's record pass for a client that pages by offset alone, and dlt's REST API
source as PostHog configures it walking the stand-in's lists over real HTTP. The second
needs dlt (``pip install -e '.[bench-dlt]'``), which is no test dependency: without it, it
is skipped.
"""

from __future__ import annotations

import httpx
import pytest

from benchmarks.prerendered import PrerenderedClerk


def test_a_record_pass_with_deep_offsets_renders_users_past_clerks_offset_limit() -> None:
    with PrerenderedClerk(users=10_050, orgs=5, latency_ms=0, requests_per_10s=0) as clerk:
        headers = {"Authorization": f"Bearer {clerk.secret_key}"}
        deep = f"{clerk.base_url}/users?limit=100&offset=10010"
        assert httpx.get(deep, headers=headers).status_code == 504  # Clerk's spec: a deep offset times out

        clerk.record(deep_offsets=True)
        page = httpx.get(deep, headers=headers)
        assert page.status_code == 200 and len(page.json()) == 40
        clerk.freeze()
        assert httpx.get(deep, headers=headers).content == page.content  # served as recorded

        clerk.record()  # the limit is back for any later record pass
        assert httpx.get(f"{clerk.base_url}/users?limit=100&offset=10020", headers=headers).status_code == 504


def test_dlt_pages_each_list_by_offset_100_at_a_time_until_a_short_page() -> None:
    pytest.importorskip("dlt", reason="dlt is an optional benchmark extra: pip install -e '.[bench-dlt]'")
    from benchmarks.dlt_clerk_source import ENDPOINTS, clerk_source

    with PrerenderedClerk(users=250, orgs=100, latency_ms=0, requests_per_10s=0) as clerk:
        source = clerk_source(clerk.base_url, clerk.secret_key)
        rows = {name: list(source.resources[name]) for name in ENDPOINTS}
        keys = clerk.keys()

    assert {name: len(found) for name, found in rows.items()} == {
        name: clerk.counts[name] for name in ("users", "organizations", "organization_memberships")}
    assert len({row["id"] for row in rows["users"]}) == 250
    assert [k for k in keys if k.startswith("/v1/users")] == [
        "/v1/users?limit=100", "/v1/users?limit=100&offset=100", "/v1/users?limit=100&offset=200"]
    # A full last page is followed by one more request, which comes back empty.
    assert [k for k in keys if k.startswith("/v1/organizations")] == [
        "/v1/organizations?limit=100", "/v1/organizations?limit=100&offset=100"]
    assert all(row["created_at"] < 10**11 for found in rows.values() for row in found)  # seconds, as PostHog keeps them
