"""Listing over HTTP: paging covers every row once, orders, filters, 422s and 404s as Clerk's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.emulator.objects import user_facts
from sync_pipeline_tests.emulator.emulator_http import SMALL_USERS, fetch_all


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


def error(response: httpx.Response) -> dict[str, Any]:
    return response.json()["errors"][0]


def test_user_pages_cover_every_user_once_newest_first(emulator: EmulatorServer, client: httpx.Client) -> None:
    everyone = ids(list(emulator.store.iter_users()))  # creation order
    for limit in (1, 37, 500):
        paged = fetch_all(client, "/users", limit=limit)
        assert ids(paged) == everyone[::-1]  # default order: -created_at
    assert len(client.get("/users").json()) == 10  # default limit
    oldest_first = fetch_all(client, "/users", limit=64, order_by="+created_at")
    assert ids(oldest_first) == everyone
    assert client.get("/users", params={"offset": SMALL_USERS}).json() == []


def test_starting_after_walks_the_same_list(client: httpx.Client) -> None:
    by_offset = ids(fetch_all(client, "/users", limit=50))
    by_cursor: list[str] = []
    while True:
        params: dict[str, Any] = {"limit": 50}
        if by_cursor:
            params["starting_after"] = by_cursor[-1]
        page = client.get("/users", params=params).json()
        by_cursor.extend(ids(page))
        if len(page) < 50:
            break
    assert by_cursor == by_offset
    ascending = client.get("/users", params={"order_by": "created_at", "starting_after": by_offset[-1], "limit": 3})
    assert ids(ascending.json()) == by_offset[-2:-5:-1]


@pytest.mark.parametrize(
    "params",
    [
        {"starting_after": "CURSOR", "offset": 10},
        {"starting_after": "CURSOR", "order_by": "-updated_at"},
        {"starting_after": "user_unknown"},
    ],
)
def test_starting_after_misuse_is_422(client: httpx.Client, params: dict[str, Any]) -> None:
    cursor = client.get("/users", params={"limit": 1}).json()[0]["id"]
    params = {name: cursor if value == "CURSOR" else value for name, value in params.items()}
    response = client.get("/users", params=params)
    assert response.status_code == 422
    assert error(response)["meta"] == {"param_name": "starting_after"}


@pytest.mark.parametrize(
    "field", ["updated_at", "first_name", "last_name", "username", "email_address", "last_active_at"]
)
def test_users_order_by_fields(client: httpx.Client, field: str) -> None:
    users = fetch_all(client, "/users", limit=500, order_by=field)
    assert len(users) == SMALL_USERS
    if field == "email_address":
        values = [user_facts(user).primary_email_address for user in users]
    else:
        values = [user[field] for user in users]
    present = [value for value in values if value is not None]
    assert present == sorted(present)
    assert values == present + [None] * (len(values) - len(present))  # nulls last ascending
    descending = client.get("/users", params={"order_by": f"-{field}", "limit": 500}).json()
    assert ids(descending) == ids(users)[::-1]  # and first descending


def test_organization_pages_and_orders(emulator: EmulatorServer, client: httpx.Client) -> None:
    everyone = ids(list(emulator.store.iter_organizations()))
    paged = fetch_all(client, "/organizations", limit=7, include_members_count="true")
    assert ids(paged) == everyone[::-1]
    first = client.get("/organizations", params={"limit": 3}).json()
    assert first["total_count"] == len(everyone) and len(first["data"]) == 3
    by_name = fetch_all(client, "/organizations", limit=500, order_by="name")
    assert [o["name"] for o in by_name] == sorted(o["name"] for o in by_name)
    by_members = fetch_all(client, "/organizations", limit=500, order_by="-members_count", include_members_count="true")
    counts = [o["members_count"] for o in by_members]
    assert counts == sorted(counts, reverse=True)
    assert client.get("/organizations", params={"order_by": "updated_at"}).status_code == 422


def test_membership_lists_agree(emulator: EmulatorServer, client: httpx.Client) -> None:
    everyone = fetch_all(client, "/organization_memberships", limit=45)
    assert len(set(ids(everyone))) == len(everyone) == emulator.store.membership_count
    assert client.get("/organization_memberships").json()["total_count"] == len(everyone)
    by_organization: dict[str, list[str]] = {}
    by_user: dict[str, list[str]] = {}
    for membership in everyone:
        by_organization.setdefault(membership["organization"]["id"], []).append(membership["id"])
        by_user.setdefault(membership["public_user_data"]["user_id"], []).append(membership["id"])
    organizations = fetch_all(client, "/organizations", limit=500, include_members_count="true")
    for organization in organizations:
        listed = fetch_all(client, f"/organizations/{organization['id']}/memberships", limit=4)
        assert sorted(ids(listed)) == sorted(by_organization.get(organization["id"], []))
        assert organization["members_count"] == len(listed)
    for user_id, membership_ids in list(by_user.items())[:40]:
        listed = client.get(f"/users/{user_id}/organization_memberships", params={"limit": 100}).json()
        assert sorted(ids(listed["data"])) == sorted(membership_ids) and listed["total_count"] == len(membership_ids)


def test_single_objects_by_id_and_slug(client: httpx.Client) -> None:
    user = client.get("/users", params={"limit": 1}).json()[0]
    assert client.get(f"/users/{user['id']}").json() == user
    organization = client.get("/organizations", params={"limit": 1, "include_members_count": "true"}).json()["data"][0]
    by_slug = client.get(f"/organizations/{organization['slug']}", params={"include_members_count": "true"})
    assert by_slug.json() == organization
    memberships = client.get(f"/organizations/{organization['slug']}/memberships").json()
    assert memberships["total_count"] == organization["members_count"]


@pytest.mark.parametrize(
    "path",
    [
        "/users/user_2nQ7zXc3PqLm9RtY6uVb1WsKdHe",
        "/users/nonsense",
        "/organizations/org_2nQ8bKfV1xYtR4mJ0aLcE7sDwZp",
        "/organizations/no-such-slug-3",
        "/organizations/org_2nQ8bKfV1xYtR4mJ0aLcE7sDwZp/memberships",
        "/users/user_2nQ7zXc3PqLm9RtY6uVb1WsKdHe/organization_memberships",
        "/no_such_endpoint",
    ],
)
def test_unknown_ids_are_404_with_a_clerk_error(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert error(response)["code"] == "resource_not_found"
    assert set(response.json()) == {"errors", "clerk_trace_id"}


@pytest.mark.parametrize(
    ("path", "params", "param_name"),
    [
        ("/users", {"limit": 501}, "limit"),
        ("/users", {"limit": 0}, "limit"),
        ("/users", {"limit": "10.0"}, "limit"),
        ("/users", {"limit": "-1"}, "limit"),
        ("/users", {"limit": "ten"}, "limit"),
        ("/users", {"offset": "-1"}, "offset"),
        ("/users", {"offset": "1.5"}, "offset"),
        ("/users", {"order_by": "password"}, "order_by"),
        ("/users", {"user_id": [f"user_{i}" for i in range(101)]}, "user_id"),
        ("/users", {"email_address": [f"a{i}@x.example" for i in range(101)]}, "email_address"),
        ("/users", {"created_at_after": "yesterday"}, "created_at_after"),
        ("/users/count", {"organization_id": [f"org_{i}" for i in range(101)]}, "organization_id"),
        ("/organizations", {"limit": 501}, "limit"),
        ("/organizations", {"include_members_count": "yes"}, "include_members_count"),
        ("/organization_memberships", {"limit": "2.0"}, "limit"),
    ],
)
def test_bad_parameters_are_422(client: httpx.Client, path: str, params: dict[str, Any], param_name: str) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422
    assert error(response)["code"] == "form_param_value_invalid"
    assert error(response)["meta"] == {"param_name": param_name}


def test_user_filters_and_count(emulator: EmulatorServer, client: httpx.Client) -> None:
    users = list(emulator.store.iter_users())

    def listed(**params: Any) -> set[str]:
        found = set(ids(fetch_all(client, "/users", limit=500, **params)))
        assert client.get("/users/count", params=params).json()["total_count"] == len(found)
        return found

    assert listed(user_id=[users[3]["id"], users[5]["id"], "user_unknown"]) == {users[3]["id"], users[5]["id"]}
    with_address = next(user for user in users if len(user["email_addresses"]) > 1)
    secondary = with_address["email_addresses"][1]["email_address"]
    assert listed(email_address=[secondary.upper()]) == {with_address["id"]}
    with_external_id = [user for user in users if user["external_id"]][:2]
    assert listed(external_id=[user["external_id"] for user in with_external_id]) == set(ids(with_external_id))
    membership = client.get("/organization_memberships", params={"limit": 1}).json()["data"][0]
    organization_id = membership["organization"]["id"]
    memberships = fetch_all(client, f"/organizations/{organization_id}/memberships", limit=500)
    members = {m["public_user_data"]["user_id"] for m in memberships}
    assert listed(organization_id=[organization_id]) == members
    middle = users[150]["created_at"]
    assert listed(created_at_after=middle) == set(ids(users[151:]))
    assert listed(created_at_before=middle) == set(ids(users[:150]))
    assert listed(created_at_after=middle, created_at_before=users[160]["created_at"]) == set(ids(users[151:160]))
    zoes = listed(query="zoë")
    assert zoes and all("zoë" in str(user).lower() for user in users if user["id"] in zoes)
    assert listed(query=users[7]["id"]) == {users[7]["id"]}
    assert client.get("/users/count").json()["total_count"] == SMALL_USERS


def test_organization_query(client: httpx.Client) -> None:
    organizations = fetch_all(client, "/organizations", limit=500)
    target = organizations[4]
    found = client.get("/organizations", params={"query": target["slug"].upper()}).json()
    assert ids(found["data"]) == [target["id"]] and found["total_count"] == 1
    rocket = client.get("/organizations", params={"query": "🚀", "limit": 500}).json()
    assert rocket["total_count"] == sum("🚀" in o["name"] for o in organizations)
