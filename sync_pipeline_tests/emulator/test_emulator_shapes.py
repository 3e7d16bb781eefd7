"""The emulator's objects have the fixtures' shapes, and its generated data the awkward cases."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx
import pytest

from sync_pipeline.emulator import ClerkStore, EmulatorServer
from sync_pipeline_tests.fixtures import load

CLERK_ID = re.compile(r"^(user|org|orgmem|idn|ins)_[0-9A-Za-z]{27}$")


def keys(obj: dict[str, Any]) -> set[str]:
    return set(obj)


@pytest.fixture(scope="module")
def variety_store() -> ClerkStore:
    """Enough data for every rare case to turn up at least once."""
    return ClerkStore(users=3_000, organizations=300, seed=11)


def test_users_have_the_fixture_keys(client: httpx.Client) -> None:
    fixture = load("user")
    sparse = load("user_sparse")
    users = client.get("/users", params={"limit": 200}).json()
    assert len(users) == 200
    email_keys = keys(fixture["email_addresses"][0])
    verification_keys = keys(fixture["email_addresses"][0]["verification"])
    phone_keys = keys(sparse["phone_numbers"][0])
    for user in users:
        assert keys(user) == keys(fixture)
        assert CLERK_ID.match(user["id"]) and user["id"].startswith("user_")
        assert user["created_at"] > 10**12 and user["updated_at"] >= user["created_at"]  # epoch ms
        for email in user["email_addresses"]:
            assert keys(email) == email_keys and CLERK_ID.match(email["id"])
            if email["verification"] is not None:
                # 'object' is sometimes missing, as in real payloads; nothing else is.
                assert verification_keys - {"object", "attempts", "expire_at"} <= keys(email["verification"])
        for phone in user["phone_numbers"]:
            assert keys(phone) == phone_keys


def test_organizations_have_the_fixture_keys(client: httpx.Client) -> None:
    with_count = client.get("/organizations", params={"include_members_count": "true"}).json()
    assert keys(with_count) == keys(load("list_organizations_response"))
    for organization in with_count["data"]:
        assert keys(organization) == keys(load("organization"))
        assert list(organization) == list(load("organization"))  # Clerk's key order too
    without = client.get("/organizations").json()["data"]
    for organization in without:
        # Without include_members_count there is no members_count, as in organization.created.
        assert keys(organization) == keys(load("webhook_organization.created")["data"])
    single = client.get(f"/organizations/{without[0]['id']}").json()
    assert keys(single) == keys(load("webhook_organization.created")["data"])


def test_memberships_have_the_fixture_keys(client: httpx.Client) -> None:
    fixture = load("organization_membership")
    body = client.get("/organization_memberships", params={"limit": 100}).json()
    assert keys(body) == keys(load("list_organization_memberships_response"))
    for membership in body["data"]:
        assert keys(membership) == keys(fixture)
        assert keys(membership["organization"]) == keys(fixture["organization"])
        assert keys(membership["public_user_data"]) == keys(fixture["public_user_data"])
        assert CLERK_ID.match(membership["id"]) and membership["id"].startswith("orgmem_")


def test_count_and_error_bodies_have_the_fixture_shapes(client: httpx.Client) -> None:
    count = client.get("/users/count")
    assert keys(count.json()) == keys(load("users_count_response"))
    assert count.json()["object"] == "total_count"

    error = client.get("/users", params={"limit": 501})
    assert error.status_code == 422
    expected = load("error_422_response")
    assert error.json()["errors"] == expected["errors"]
    assert isinstance(error.json()["clerk_trace_id"], str) and error.json()["clerk_trace_id"]


def test_generated_users_cover_the_awkward_cases(variety_store: ClerkStore) -> None:
    users = list(variety_store.iter_users())
    email_counts = Counter(len(user["email_addresses"]) for user in users)
    assert email_counts[0] and email_counts[1] and email_counts[2] and email_counts[3]
    emails = [email for user in users for email in user["email_addresses"]]
    statuses = Counter(email["verification"]["status"] for email in emails if email["verification"])
    assert statuses["verified"] and statuses["unverified"]
    assert any(email["verification"] is None for email in emails)
    assert any(email["verification"] and "object" not in email["verification"] for email in emails)
    assert any(user["primary_email_address_id"] is None and user["email_addresses"] for user in users)
    assert any(user["banned"] for user in users)
    assert any(user["private_metadata"] is None for user in users)
    assert any(user["external_id"] for user in users) and any(user["external_id"] is None for user in users)
    assert any(user["first_name"] is None for user in users)
    # Unicode in names, addresses and metadata.
    assert any(user["first_name"] == "Zoë" for user in users)
    assert any(user["last_name"] and "Ł" in user["last_name"] for user in users)
    assert any(not email["email_address"].isascii() for email in emails)
    assert any("🎉" in str(user["public_metadata"]) for user in users)
    # A primary address is one of the user's own.
    for user in users:
        if user["primary_email_address_id"] is not None:
            assert user["primary_email_address_id"] in {email["id"] for email in user["email_addresses"]}


def test_generated_organizations_and_memberships_cover_the_awkward_cases(variety_store: ClerkStore) -> None:
    organizations = list(variety_store.iter_organizations())
    memberships = list(variety_store.iter_memberships())
    assert any(organization["members_count"] == 0 for organization in organizations)
    assert sum(organization["members_count"] for organization in organizations) == len(memberships)
    roles = Counter(membership["role"] for membership in memberships)
    assert roles["org:admin"] and roles["org:member"] and roles["admin"] and roles["basic_member"]
    assert any(role.startswith("org:") and role not in ("org:admin", "org:member") for role in roles)
    roles_by_organization: dict[str, dict[str, str]] = {}
    for membership in memberships:
        roles = roles_by_organization.setdefault(membership["organization"]["id"], {})
        roles[membership["public_user_data"]["user_id"]] = membership["role"]
    for organization in organizations:
        if organization["members_count"]:
            # The creator is a member, and an admin.
            assert roles_by_organization[organization["id"]][organization["created_by"]] == "org:admin"
        else:
            assert organization["id"] not in roles_by_organization
    # Roughly one membership per user at the default proportions.
    assert 0.5 < len(memberships) / variety_store.user_count < 2


def test_unicode_survives_http(emulator: EmulatorServer, client: httpx.Client) -> None:
    users = list(emulator.store.iter_users())
    unicode_name = next(user for user in users if not f"{user['first_name']}{user['last_name']}".isascii())
    unicode_address = next(user for user in users if not str(user["email_addresses"]).isascii())
    for user in (unicode_name, unicode_address):
        response = client.get(f"/users/{user['id']}")
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == user
    organizations = emulator.store.iter_organizations(include_members_count=False)
    organization = next(o for o in organizations if not o["name"].isascii())
    assert client.get(f"/organizations/{organization['id']}").json() == organization
