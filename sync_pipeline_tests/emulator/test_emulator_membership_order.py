"""Membership lists: ``order_by`` as the spec lists it, and without it an order that moves as rows change."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.emulator.objects import user_facts
from sync_pipeline_tests.emulator.emulator_http import fetch_all

FIELDS = ["created_at", "phone_number", "email_address", "first_name", "last_name", "username"]


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


def member_value(emulator: EmulatorServer, membership: dict[str, Any], field: str) -> Any:
    if field == "created_at":
        return membership["created_at"]
    facts = user_facts(emulator.store.get_user(membership["public_user_data"]["user_id"]))
    if field == "email_address":
        return facts.primary_email_address
    if field == "phone_number":
        return facts.phone_numbers[0] if facts.phone_numbers else None
    return getattr(facts, field)


def biggest_organization(client: httpx.Client) -> dict[str, Any]:
    organizations = fetch_all(client, "/organizations", limit=500, include_members_count="true")
    return max(organizations, key=lambda o: o["members_count"])


@pytest.mark.parametrize("field", FIELDS)
def test_order_by_sorts_every_membership_list(emulator: EmulatorServer, client: httpx.Client, field: str) -> None:
    organization = biggest_organization(client)
    for path in ("/organization_memberships", f"/organizations/{organization['id']}/memberships"):
        ascending = fetch_all(client, path, limit=40, order_by=f"+{field}")
        assert len(ascending) == len(set(ids(ascending))) == client.get(path).json()["total_count"]
        values = [member_value(emulator, m, field) for m in ascending]
        present = [v for v in values if v is not None]
        assert present == sorted(present) and values == present + [None] * (len(values) - len(present))
        assert ids(fetch_all(client, path, limit=40, order_by=field)) == ids(ascending)  # no sign: +
        assert ids(fetch_all(client, path, limit=40, order_by=f"-{field}")) == ids(ascending)[::-1]


def test_created_at_ties_are_broken_by_id(client: httpx.Client) -> None:
    memberships = fetch_all(client, "/organization_memberships", limit=500, order_by="+created_at")
    keys = [(m["created_at"], m["id"]) for m in memberships]
    assert keys == sorted(keys)


@pytest.mark.parametrize("order_by", ["updated_at", "role", "+name", "members_count"])
def test_other_orders_are_422(client: httpx.Client, order_by: str) -> None:
    organization = biggest_organization(client)
    for path in ("/organization_memberships", f"/organizations/{organization['id']}/memberships"):
        response = client.get(path, params={"order_by": order_by})
        assert response.status_code == 422
        assert response.json()["errors"][0]["meta"] == {"param_name": "order_by"}


def test_unordered_an_updated_row_moves_to_the_end(
    private_emulator: EmulatorServer, private_client: httpx.Client
) -> None:
    organization = biggest_organization(private_client)
    for path in ("/organization_memberships", f"/organizations/{organization['id']}/memberships"):
        before = ids(fetch_all(private_client, path, limit=500))
        private_emulator.store.update_membership(before[0], public_metadata={"moved": path})
        after = ids(fetch_all(private_client, path, limit=500))
        assert after == before[1:] + before[:1]
        ordered = ids(fetch_all(private_client, path, limit=500, order_by="+created_at"))
        assert sorted(ordered) == sorted(after)  # the same rows, an order of their own


def test_unordered_offset_paging_while_rows_change_skips_and_repeats(
    private_emulator: EmulatorServer, private_client: httpx.Client
) -> None:
    everyone = ids(fetch_all(private_client, "/organization_memberships", limit=500))
    seen: list[str] = []
    offset, limit = 0, 20
    while True:
        page = private_client.get("/organization_memberships", params={"offset": offset, "limit": limit}).json()["data"]
        seen.extend(ids(page))
        if len(page) < limit:
            break
        offset += limit
        if offset == 2 * limit:  # two pages read: a row already read is updated (moves on ahead)
            private_emulator.store.update_membership(seen[0], role="org:admin")
    assert len(seen) == len(everyone)
    assert len(set(seen)) < len(seen)  # the updated row came back at the end: read twice
    assert set(everyone) - set(seen)  # and the row that slid back into its place was never read
    stable: list[str] = []
    offset = 0
    while True:
        page = private_client.get(
            "/organization_memberships", params={"offset": offset, "limit": limit, "order_by": "+created_at"}
        ).json()["data"]
        stable.extend(ids(page))
        if len(page) < limit:
            break
        offset += limit
        if offset == 2 * limit:
            private_emulator.store.update_membership(stable[1], role="org:member")
    assert sorted(stable) == sorted(everyone)  # ordered by created_at, an update moves nothing


def test_a_users_memberships_ignore_order_by(client: httpx.Client) -> None:
    membership = client.get("/organization_memberships", params={"limit": 1}).json()["data"][0]
    path = f"/users/{membership['public_user_data']['user_id']}/organization_memberships"
    assert client.get(path, params={"order_by": "nonsense"}).json() == client.get(path).json()
