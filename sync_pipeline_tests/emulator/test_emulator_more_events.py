"""Changes to roles, permissions, invitations and domains are delivered as Clerk's signed webhooks.

Delivered by a real :class:`WebhookDispatcher` to a real local receiver that verifies each
delivery with svix (the receiver of ``test_emulator_webhooks``).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx

import pytest

from sync_pipeline.emulator import ClerkStore, EmulatorServer, WebhookDispatcher
from sync_pipeline_tests.emulator.emulator_http import fetch_all, http_client
from sync_pipeline_tests.emulator.spec_shapes import (
    DELETED_OBJECT_KEYS,
    check_domain,
    check_invitation,
    check_permission,
    check_role,
)
from sync_pipeline_tests.emulator.test_emulator_webhooks import FAST_RETRIES, Receiver, dispatch, new_secret


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def receiver(secret: str) -> Iterator[Receiver]:
    endpoint = Receiver(secret)
    yield endpoint
    endpoint.close()


@pytest.fixture
def dispatchers() -> Iterator[list[WebhookDispatcher]]:
    made: list[WebhookDispatcher] = []
    yield made
    for dispatcher in made:
        dispatcher.close()


def every_new_kind_of_change(store: ClerkStore) -> list[str]:
    """One change of every new kind; the event types it should produce, in order."""
    permission = store.create_permission("Create posts", "org:posts:create", description="New posts")
    store.update_permission(permission["id"], name="Create and edit posts")
    role = store.create_role("Editor", "org:editor", description="Edits", permissions=[permission["id"]])
    store.update_role(role["id"], name="Chief editor")
    store.remove_permission(role["id"], permission["id"])
    store.assign_permission(role["id"], permission["id"])
    store.delete_permission(permission["id"])
    store.delete_role(role["id"])
    organization = store.create_organization("Events Ltd")
    invitation = store.create_invitation(organization["id"], "ada@example.com", "org:member")
    store.accept_invitation(invitation["id"])
    other = store.create_invitation(organization["id"], "bob@example.com")
    store.revoke_invitation(other["id"])
    domain = store.create_domain(organization["id"], "events-ltd.example")
    store.update_domain(domain["id"], enrollment_mode="automatic_suggestion")
    store.delete_domain(domain["id"])
    return [
        "permission.created", "permission.updated", "role.created", "role.updated", "role.updated", "role.updated",
        "permission.deleted", "role.deleted", "organization.created",
        "organizationInvitation.created", "user.created", "organizationMembership.created",
        "organizationInvitation.accepted", "organizationInvitation.created", "organizationInvitation.revoked",
        "organizationDomain.created", "organizationDomain.updated", "organizationDomain.deleted",
    ]


def test_every_new_change_is_delivered_signed_as_its_event(
    receiver: Receiver, secret: str, dispatchers: list[WebhookDispatcher]
) -> None:
    store = ClerkStore(users=20, organizations=3, seed=7)
    dispatcher = dispatch(dispatchers, store, receiver.url, secret)
    expected = every_new_kind_of_change(store)
    assert dispatcher.flush(timeout=5)

    assert [r.type for r in receiver.received] == expected
    assert all(r.verified for r in receiver.received)
    assert [r.event for r in receiver.received] == store.events
    for received in receiver.received:
        event = received.event
        assert event["object"] == "event" and event["instance_id"] == store.instance_id
        data, kind = event["data"], event["type"].split(".")[0]
        if event["type"].endswith(".deleted"):
            assert set(data) <= DELETED_OBJECT_KEYS and data["deleted"] is True
            assert data["object"] == {
                "role": "role", "permission": "permission", "organizationDomain": "organization_domain",
            }.get(kind, data["object"])
        elif kind == "role":
            check_role(data)
        elif kind == "permission":
            check_permission(data)
        elif kind == "organizationInvitation":
            check_invitation({k: v for k, v in data.items() if k != "user_id"}, with_organization=True)
            assert ("user_id" in data) == (event["type"] == "organizationInvitation.accepted")
        elif kind == "organizationDomain":
            check_domain(data)
    by_type = {r.type: r.event["data"] for r in receiver.received}
    accepted = by_type["organizationInvitation.accepted"]
    assert accepted["status"] == "accepted" and accepted["user_id"].startswith("user_")
    assert by_type["organizationInvitation.revoked"]["status"] == "revoked"
    role_updates = [r.event["data"] for r in receiver.received if r.type == "role.updated"]
    assert [[p["key"] for p in role["permissions"]] for role in role_updates] == [
        ["org:posts:create"], [], ["org:posts:create"]
    ]
    assert role_updates[0]["name"] == "Chief editor"


def test_a_role_change_reaches_the_receiver_and_no_membership_event_follows(
    receiver: Receiver, secret: str
) -> None:
    with EmulatorServer(users=50, orgs=5, seed=7, requests_per_10s=0) as server:
        dispatcher = server.deliver_webhooks_to(receiver.url, secret, background=False, retry_delays=FAST_RETRIES)
        store = server.store
        member = store.role_with_key("org:member")
        store.assign_permission(member["id"], store.permission_with_key("org:reports:read")["id"])
        assert dispatcher.flush(timeout=5)
        with http_client(server) as http:
            members = [
                m for m in fetch_all(http, "/organization_memberships", limit=500, order_by="+created_at")
                if m["role"] == "org:member"
            ]
    assert [r.type for r in receiver.received] == ["role.updated"]
    assert receiver.received[0].verified
    granted = [p["key"] for p in receiver.received[0].event["data"]["permissions"]]
    assert "org:reports:read" in granted
    assert members and all(m["permissions"] == granted for m in members)


def test_the_admin_api_changes_them_with_clerks_answers(receiver: Receiver, secret: str) -> None:
    with EmulatorServer(users=50, orgs=5, seed=7, requests_per_10s=0) as server:
        dispatcher = server.deliver_webhooks_to(receiver.url, secret, background=False, retry_delays=FAST_RETRIES)
        headers = {"Authorization": f"Bearer {server.secret_key}"}
        with httpx.Client(base_url=server.admin_url, headers=headers, timeout=5) as admin:
            permission = admin.post("/organization_permissions", json={"name": "Ship", "key": "org:ships:sail"}).json()
            role = admin.post("/organization_roles", json={"name": "Captain", "key": "org:captain"}).json()
            granted = admin.post(f"/organization_roles/{role['id']}/permissions/{permission['id']}")
            assert [p["key"] for p in granted.json()["permissions"]] == ["org:ships:sail"]
            assert admin.post(f"/organization_roles/{role['id']}/permissions/{permission['id']}").status_code == 409
            system = server.store.permission_with_key("org:sys_profile:manage")
            assert admin.patch(f"/organization_permissions/{system['id']}", json={"name": "x"}).status_code == 403
            organization = next(server.store.iter_organizations())
            invitation = admin.post(
                f"/organizations/{organization['id']}/invitations", json={"email_address": "eve@example.com"}
            ).json()
            assert admin.post(f"/invitations/{invitation['id']}/revoke").json()["status"] == "revoked"
            assert admin.post(f"/invitations/{invitation['id']}/accept").status_code == 400  # settled already
            domain = admin.post(f"/organizations/{organization['id']}/domains", json={"name": "ships.example"}).json()
            assert admin.patch(f"/domains/{domain['id']}", json={"verified": False}).json()["verification"]["status"] == "unverified"
            assert admin.delete(f"/domains/{domain['id']}").json()["deleted"] is True
            assert admin.delete("/domains/orgdmn_nope").status_code == 404
        assert dispatcher.flush(timeout=5)
    assert [r.type for r in receiver.received] == [
        "permission.created", "role.created", "role.updated", "organizationInvitation.created",
        "organizationInvitation.revoked", "organizationDomain.created", "organizationDomain.updated",
        "organizationDomain.deleted",
    ]
    assert all(r.verified for r in receiver.received)
