"""Roles and permissions over HTTP, as Clerk's spec describes them, and members following their role."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sync_pipeline.emulator import ChangeRefused, EmulatorServer, InvalidParameter
from sync_pipeline_tests.emulator.emulator_http import fetch_all, http_client
from sync_pipeline_tests.emulator.spec_shapes import check_permission, check_role


def every(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    return fetch_all(client, path, limit=3, **params)


def test_roles_and_permissions_have_the_spec_shapes(client: httpx.Client) -> None:
    roles = client.get("/organization_roles", params={"limit": 500}).json()
    assert set(roles) == {"data", "total_count"} and roles["total_count"] == len(roles["data"])
    permissions = client.get("/organization_permissions", params={"limit": 500}).json()
    assert set(permissions) == {"data", "total_count"} and permissions["total_count"] == len(permissions["data"])
    for role in roles["data"]:
        check_role(role)
    for permission in permissions["data"]:
        check_permission(permission)
    keys = {role["key"] for role in roles["data"]}
    assert {"org:admin", "org:member"} <= keys and any(k not in ("org:admin", "org:member") for k in keys)
    types = {permission["type"] for permission in permissions["data"]}
    assert types == {"system", "user"}  # Clerk's own permissions and custom ones
    # A role's permissions are the instance's permission objects themselves.
    by_id = {permission["id"]: permission for permission in permissions["data"]}
    for role in roles["data"]:
        assert all(by_id[p["id"]] == p for p in role["permissions"])


def test_by_id_and_unknown_ids(client: httpx.Client) -> None:
    role = client.get("/organization_roles", params={"limit": 1}).json()["data"][0]
    assert client.get(f"/organization_roles/{role['id']}").json() == role
    permission = client.get("/organization_permissions", params={"limit": 1}).json()["data"][0]
    assert client.get(f"/organization_permissions/{permission['id']}").json() == permission
    for path in ("/organization_roles/role_nope", "/organization_permissions/perm_nope"):
        answer = client.get(path)
        assert answer.status_code == 404 and answer.json()["errors"][0]["code"] == "resource_not_found"


@pytest.mark.parametrize("path", ["/organization_roles", "/organization_permissions"])
def test_order_paging_and_query(client: httpx.Client, path: str) -> None:
    everything = client.get(path, params={"limit": 500}).json()["data"]
    # Default: newest first (the spec's -created_at).
    assert [r["created_at"] for r in everything] == sorted((r["created_at"] for r in everything), reverse=True)
    paged = every(client, path)
    assert paged == everything  # limit/offset pages add up to the whole list, nothing twice
    assert [r["key"] for r in every(client, path, order_by="key")] == sorted(r["key"] for r in everything)
    assert [r["name"] for r in every(client, path, order_by="-name")] == sorted(
        (r["name"] for r in everything), reverse=True
    )
    assert every(client, path, order_by="+created_at") == everything[::-1]
    # query: the exact id, or part of the name or key.
    target = everything[1]
    assert [r["id"] for r in every(client, path, query=target["id"])] == [target["id"]]
    assert every(client, path, query=target["id"][:-1]) == []  # ids match exactly only
    part = target["key"].split(":")[1][:4].upper()
    matched = every(client, path, query=part)
    assert target in matched and all(part.lower() in (r["key"] + r["name"]).lower() for r in matched)
    with_prefix = [r for r in everything if "org:" in r["key"]]  # legacy role keys have none
    assert client.get(path, params={"query": "org:", "limit": 1}).json()["total_count"] == len(with_prefix)


@pytest.mark.parametrize("path", ["/organization_roles", "/organization_permissions"])
@pytest.mark.parametrize("params", [{"order_by": "updated_at"}, {"limit": "501"}, {"limit": "0"}, {"offset": "-1"}])
def test_bad_parameters_are_422(client: httpx.Client, path: str, params: dict[str, str]) -> None:
    answer = client.get(path, params=params)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["meta"]["param_name"] == next(iter(params))


def test_a_missing_key_is_401(emulator: EmulatorServer) -> None:
    organization = next(emulator.store.iter_organizations())["id"]
    with http_client(emulator, headers={}) as anonymous:
        for path in (
            "/organization_roles", "/organization_permissions", "/organization_invitations", "/organization_domains",
            f"/organizations/{organization}/invitations", f"/organizations/{organization}/domains",
        ):
            answer = anonymous.get(path)
            assert answer.status_code == 401 and answer.json()["errors"][0]["code"] == "authentication_invalid"


def test_every_membership_holds_a_listed_role_and_its_permissions(emulator: EmulatorServer, client: httpx.Client) -> None:
    roles = {role["key"]: role for role in client.get("/organization_roles", params={"limit": 500}).json()["data"]}
    memberships = fetch_all(client, "/organization_memberships", limit=500, order_by="+created_at")
    assert len(memberships) == emulator.store.membership_count
    for membership in memberships:
        role = roles[membership["role"]]
        assert membership["role_name"] == role["name"]
        assert membership["permissions"] == [p["key"] for p in role["permissions"]]
    held = {membership["role"] for membership in memberships}
    assert {"org:admin", "org:member", "admin", "basic_member"} <= held  # legacy keys are roles too


def members_of(client: httpx.Client, key: str) -> list[dict[str, Any]]:
    memberships = fetch_all(client, "/organization_memberships", limit=500, order_by="+created_at")
    return [m for m in memberships if m["role"] == key]


def test_a_role_change_changes_what_every_member_of_it_serves(
    private_emulator: EmulatorServer, private_client: httpx.Client
) -> None:
    store = private_emulator.store
    member_role = store.role_with_key("org:member")
    invoices = store.permission_with_key("org:invoices:read")
    before = members_of(private_client, "org:member")
    assert before and all("org:invoices:read" not in m["permissions"] for m in before)
    events_before = len(store.events)

    updated = store.assign_permission(member_role["id"], invoices["id"])
    assert updated["permissions"][-1]["key"] == "org:invoices:read"
    after = members_of(private_client, "org:member")
    assert [m["id"] for m in after] == [m["id"] for m in before]
    assert all(m["permissions"] == [*b["permissions"], "org:invoices:read"] for m, b in zip(after, before))
    assert all(m["updated_at"] == b["updated_at"] for m, b in zip(after, before))  # the membership itself is as it was
    one = private_client.get(f"/users/{after[0]['public_user_data']['user_id']}/organization_memberships").json()
    assert any("org:invoices:read" in m["permissions"] for m in one["data"] if m["role"] == "org:member")
    # Only role.updated: Clerk documents no organizationMembership.updated after a role change.
    assert [e["type"] for e in store.events[events_before:]] == ["role.updated"]

    # A renamed permission shows under its new key in every role and membership holding it.
    store.update_permission(invoices["id"], key="org:invoices:view", name="View invoices")
    assert all("org:invoices:view" in m["permissions"] for m in members_of(private_client, "org:member"))
    # Removing it, and renaming the role: its members keep it, under the new key and name.
    store.remove_permission(member_role["id"], invoices["id"])
    store.update_role(member_role["id"], key="org:staff", name="Staff")
    renamed = members_of(private_client, "org:staff")
    assert [m["id"] for m in renamed] == [m["id"] for m in before]
    assert all(m["role_name"] == "Staff" and m["permissions"] == b["permissions"] for m, b in zip(renamed, before))
    with pytest.raises(InvalidParameter):
        store.create_role("Squatter", "org:member")  # still the renamed role's, its members hold it


def test_role_and_permission_changes_are_checked_as_the_spec_says(private_emulator: EmulatorServer) -> None:
    store = private_emulator.store
    system = store.permission_with_key("org:sys_memberships:read")
    with pytest.raises(ChangeRefused) as refused:
        store.update_permission(system["id"], name="Mine now")
    assert refused.value.status == 403
    with pytest.raises(ChangeRefused):
        store.delete_permission(system["id"])
    for bad_key in ("org:sys_things:read", "invoices:read", "org:Invoices:read", "org:invoices"):
        with pytest.raises(InvalidParameter):
            store.create_permission("Bad", bad_key)
    with pytest.raises(InvalidParameter):
        store.create_permission("Twice", "org:billing:manage")  # taken
    for bad_key in ("editor", "org:Editor", "org:edit-or"):
        with pytest.raises(InvalidParameter):
            store.create_role("Editor", bad_key)

    posts = store.create_permission("Create posts", "org:posts:create", description="New posts")
    editor = store.create_role("Editor", "org:editor", permissions=[posts["id"]])
    with pytest.raises(ChangeRefused) as twice:
        store.assign_permission(editor["id"], posts["id"])
    assert twice.value.status == 409
    # Held by members (or the creator role): a 422, as the spec says; free: deleted.
    with pytest.raises(InvalidParameter):
        store.delete_role(store.role_with_key("org:viewer")["id"])
    with pytest.raises(InvalidParameter):
        store.delete_role(store.role_with_key("org:admin")["id"])
    organization = next(store.iter_organizations())
    user = next(store.iter_users())
    membership = store.create_membership(organization["id"], user["id"], "org:editor")
    assert membership["permissions"] == ["org:posts:create"] and membership["role_name"] == "Editor"
    with pytest.raises(InvalidParameter):
        store.delete_role(editor["id"])
    store.delete_membership(membership["id"])
    assert store.delete_role(editor["id"]) == {"object": "role", "id": editor["id"], "slug": None, "deleted": True}
    assert store.get_role(editor["id"]) is None
    # Deleting a permission takes it from every role holding it.
    accountant = store.role_with_key("org:accountant")
    reports = store.permission_with_key("org:reports:read")
    store.delete_permission(reports["id"])
    assert "org:reports:read" not in [p["key"] for p in store.get_role(accountant["id"])["permissions"]]


def test_an_organizations_members_filtered_by_role_and_user(emulator: EmulatorServer, client: httpx.Client) -> None:
    organization = max(emulator.store.iter_organizations(), key=lambda o: o["members_count"])["id"]
    members = fetch_all(client, f"/organizations/{organization}/memberships", limit=500)
    held = {m["role"] for m in members}
    assert len(held) > 1
    for role in held:
        only = fetch_all(client, f"/organizations/{organization}/memberships", limit=500, role=role)
        assert only == [m for m in members if m["role"] == role]
    two = sorted(held)[:2]
    both = client.get(
        f"/organizations/{organization}/memberships", params=[("role", two[0]), ("role", two[1]), ("limit", 500)]
    ).json()
    assert both["data"] == [m for m in members if m["role"] in two] and both["total_count"] == len(both["data"])
    assert fetch_all(client, f"/organizations/{organization}/memberships", limit=500, role="org:nobody") == []
    first_user = members[0]["public_user_data"]["user_id"]
    assert fetch_all(client, f"/organizations/{organization}/memberships", limit=500, user_id=first_user) == members[:1]
    assert fetch_all(
        client, f"/organizations/{organization}/memberships", limit=500, user_id=f"-{first_user}"
    ) == members[1:]
