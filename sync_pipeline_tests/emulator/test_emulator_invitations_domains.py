"""Organization invitations and domains over HTTP, as Clerk's spec describes them."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest

from sync_pipeline.emulator import ChangeRefused, ClerkStore, EmulatorServer, InvalidParameter
from sync_pipeline_tests.emulator.emulator_http import SEED, fetch_all, http_client
from sync_pipeline_tests.emulator.spec_shapes import check_domain, check_invitation


def every(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    return fetch_all(client, path, limit=7, **params)


@pytest.fixture(scope="module")
def busy() -> EmulatorServer:
    """More organizations, so that every status and enrollment mode turns up."""
    with EmulatorServer(users=600, orgs=120, seed=SEED, requests_per_10s=0) as server:
        yield server


@pytest.fixture
def busy_client(busy: EmulatorServer) -> httpx.Client:
    with http_client(busy) as http:
        yield http


# -- invitations ------------------------------------------------------------------------------


def test_invitations_have_the_spec_shapes(busy: EmulatorServer, busy_client: httpx.Client) -> None:
    everything = every(busy_client, "/organization_invitations")
    assert len(everything) == busy.store.invitation_count > 0
    for invitation in everything:
        check_invitation(invitation, with_organization=True)
    assert set(Counter(i["status"] for i in everything)) == {"pending", "accepted", "revoked", "expired"}
    assert any(i["inviter_id"] is None for i in everything) and any(i["inviter_id"] for i in everything)
    roles = {r["key"]: r["name"] for r in busy_client.get("/organization_roles", params={"limit": 500}).json()["data"]}
    assert all(roles[i["role"]] == i["role_name"] for i in everything)
    # An organization's list and the by-id route: the plain OrganizationInvitation.
    first = everything[0]
    organization_id = first["organization_id"]
    own = every(busy_client, f"/organizations/{organization_id}/invitations")
    expected = [dict(i) for i in everything if i["organization_id"] == organization_id]
    for invitation in expected:
        del invitation["public_organization_data"]
    assert own == expected
    for invitation in own:
        check_invitation(invitation, with_organization=False)
    assert busy_client.get(f"/organizations/{organization_id}/invitations/{first['id']}").json() == expected[0]


def test_invitation_order_filters_and_paging(busy_client: httpx.Client) -> None:
    newest_first = every(busy_client, "/organization_invitations")
    assert [i["created_at"] for i in newest_first] == sorted((i["created_at"] for i in newest_first), reverse=True)
    assert every(busy_client, "/organization_invitations", order_by="+created_at") == newest_first[::-1]
    by_address = every(busy_client, "/organization_invitations", order_by="email_address")
    assert [i["email_address"] for i in by_address] == sorted(i["email_address"] for i in newest_first)
    pending = every(busy_client, "/organization_invitations", status="pending")
    assert pending == [i for i in newest_first if i["status"] == "pending"]
    settled = busy_client.get(
        "/organization_invitations", params=[("status", "accepted"), ("status", "revoked"), ("limit", 500)]
    ).json()
    assert settled["data"] == [i for i in newest_first if i["status"] in ("accepted", "revoked")]
    assert settled["total_count"] == len(settled["data"])
    unicode = every(busy_client, "/organization_invitations", query="ZOË")
    assert unicode and unicode == [i for i in newest_first if "zoë" in i["email_address"].lower()]
    target = newest_first[3]
    in_organization = every(
        busy_client, f"/organizations/{target['organization_id']}/invitations", email_address=target["email_address"]
    )
    assert [i["id"] for i in in_organization] == [target["id"]]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/organization_invitations", {"status": "lost"}, 422),
        ("/organization_invitations", {"order_by": "role"}, 422),
        ("/organization_invitations", {"limit": "501"}, 422),
        ("/organizations/org_nope/invitations", {}, 404),
        ("/organizations/org_nope/invitations/orginv_nope", {}, 404),
    ],
)
def test_invitation_errors(client: httpx.Client, path: str, params: dict[str, str], status: int) -> None:
    answer = client.get(path, params=params)
    assert answer.status_code == status and answer.json()["errors"]


def test_an_invitation_of_another_organization_is_not_found(client: httpx.Client) -> None:
    invitation = client.get("/organization_invitations", params={"limit": 1}).json()["data"][0]
    organizations = client.get("/organizations", params={"limit": 500}).json()["data"]
    other = next(o for o in organizations if o["id"] != invitation["organization_id"])
    assert client.get(f"/organizations/{other['id']}/invitations/{invitation['id']}").status_code == 404


def test_invitation_changes(private_emulator: EmulatorServer, private_client: httpx.Client) -> None:
    store = private_emulator.store
    organization = store.create_organization("Invites & Co", created_by=next(store.iter_users())["id"])
    admin = organization["created_by"]
    invited = store.create_invitation(organization["id"], "new.person@example.com", "org:billing_manager",
                                      inviter_user_id=admin, public_metadata={"team": "ops"})
    assert invited["status"] == "pending" and invited["role_name"] == "Billing Manager"
    assert invited["inviter_id"] == admin and invited["public_organization_data"]["id"] == organization["id"]
    check_invitation(invited, with_organization=True)
    listed = private_client.get(f"/organizations/{organization['id']}/invitations").json()
    assert [i["id"] for i in listed["data"]] == [invited["id"]] and listed["total_count"] == 1

    accepted = store.accept_invitation(invited["id"])
    assert accepted["status"] == "accepted" and accepted["updated_at"] > invited["updated_at"]
    member = store.events[-1]["data"]["user_id"]  # the accepted event names who accepted
    membership = store.membership_of(organization["id"], member)
    assert membership["role"] == "org:billing_manager" and membership["public_metadata"] == {"team": "ops"}
    with pytest.raises(ChangeRefused):
        store.revoke_invitation(invited["id"])  # only pending ones
    second = store.create_invitation(organization["id"], "maybe@example.com")
    stranger = store.create_user(email_addresses=["stranger@example.com"])["id"]
    with pytest.raises(ChangeRefused) as not_admin:
        store.revoke_invitation(second["id"], requesting_user_id=stranger)
    assert not_admin.value.status == 403
    assert store.revoke_invitation(second["id"], requesting_user_id=admin)["status"] == "revoked"
    with pytest.raises(InvalidParameter):
        store.create_invitation(organization["id"], "x@example.com", "org:nobody")
    with pytest.raises(ChangeRefused):
        store.create_invitation(organization["id"], "x@example.com", inviter_user_id=stranger)
    statuses = {i["id"]: i["status"] for i in every(private_client, "/organization_invitations", query="example.com")}
    assert statuses[invited["id"]] == "accepted" and statuses[second["id"]] == "revoked"


# -- domains ----------------------------------------------------------------------------------


def test_domains_have_the_spec_shapes(busy: EmulatorServer, busy_client: httpx.Client) -> None:
    everything = every(busy_client, "/organization_domains")
    assert len(everything) == busy.store.domain_count > 0
    for domain in everything:
        check_domain(domain)
    assert {d["enrollment_mode"] for d in everything} == {
        "manual_invitation", "automatic_invitation", "automatic_suggestion", "enterprise_sso"
    }
    assert any(d["verification"] is None for d in everything)
    assert any(d["ownership_verification"] is not None for d in everything)
    assert len({d["name"] for d in everything}) == len(everything)
    organization_id = everything[0]["organization_id"]
    own = every(busy_client, f"/organizations/{organization_id}/domains")
    assert own == [d for d in everything if d["organization_id"] == organization_id]
    assert every(busy_client, "/organization_domains", organization_id=organization_id) == own


def test_domain_order_and_filters(busy_client: httpx.Client) -> None:
    everything = every(busy_client, "/organization_domains")
    assert [d["created_at"] for d in everything] == sorted((d["created_at"] for d in everything), reverse=True)
    assert [d["name"] for d in every(busy_client, "/organization_domains", order_by="name")] == sorted(
        d["name"] for d in everything
    )
    verified = every(busy_client, "/organization_domains", verified="true")
    assert verified == [d for d in everything if (d["verification"] or {}).get("status") == "verified"]
    assert every(busy_client, "/organization_domains", verified="false") == [d for d in everything if d not in verified]
    automatic = every(busy_client, "/organization_domains", enrollment_mode="automatic_invitation,automatic_suggestion")
    assert automatic == [d for d in everything if d["enrollment_mode"].startswith("automatic")]
    not_sso = every(busy_client, "/organization_domains", enrollment_mode="-enterprise_sso")
    assert not_sso == [d for d in everything if d["enrollment_mode"] != "enterprise_sso"]
    target = everything[0]
    assert every(busy_client, "/organization_domains", query=target["organization_id"]) == [
        d for d in everything if d["organization_id"] == target["organization_id"]
    ]
    assert target in every(busy_client, "/organization_domains", query=target["name"][:5].upper())
    picked = busy_client.get(
        "/organization_domains", params=[("domains", target["name"]), ("domains", everything[1]["name"])]
    ).json()
    assert {d["id"] for d in picked["data"]} == {target["id"], everything[1]["id"]} and picked["total_count"] == 2
    assert every(busy_client, "/organization_domains", organization_id="org_nope") == []


@pytest.mark.parametrize(
    "params",
    [{"query": " "}, {"query": ""}, {"verified": "yes"}, {"enrollment_mode": "by_magic"}, {"order_by": "verified"}],
)
def test_bad_domain_parameters_are_422(client: httpx.Client, params: dict[str, str]) -> None:
    answer = client.get("/organization_domains", params=params)
    assert answer.status_code == 422 and answer.json()["errors"][0]["meta"]["param_name"] == next(iter(params))


def test_domains_of_a_gone_organization_answer_as_configured(private_emulator: EmulatorServer) -> None:
    with http_client(private_emulator) as http:
        assert http.get("/organizations/org_nope/domains").status_code == 404
        private_emulator.settings.gone_parent_answer = "empty"
        assert http.get("/organizations/org_nope/domains").json() == {"data": [], "total_count": 0}


def test_domain_changes_and_an_organization_taking_its_own_along(
    private_emulator: EmulatorServer, private_client: httpx.Client
) -> None:
    store = private_emulator.store
    organization = store.create_organization("Domains Inc")
    domain = store.create_domain(organization["id"], "domains-inc.example", "automatic_invitation")
    check_domain(domain)
    assert domain["verification"]["status"] == "verified"  # the spec: verified unless told otherwise
    with pytest.raises(InvalidParameter):
        store.create_domain(organization["id"], "domains-inc.example")  # in use
    with pytest.raises(InvalidParameter):
        store.create_domain(organization["id"], "other.example", "by_magic")
    unverified = store.update_domain(domain["id"], verified=False, enrollment_mode="manual_invitation")
    assert unverified["verification"]["status"] == "unverified" and unverified["enrollment_mode"] == "manual_invitation"
    listed = private_client.get(f"/organizations/{organization['id']}/domains").json()
    assert listed == {"data": [unverified], "total_count": 1}
    assert store.delete_domain(domain["id"]) == {"object": "organization_domain", "id": domain["id"], "deleted": True}
    assert private_client.get(f"/organizations/{organization['id']}/domains").json()["total_count"] == 0

    # A generated organization with invitations and domains: deleting it removes both.
    owner = next(d["organization_id"] for d in every(private_client, "/organization_domains"))
    invitations_before = store.invitation_count
    its_invitations = len(every(private_client, f"/organizations/{owner}/invitations"))
    its_domains = len(every(private_client, f"/organizations/{owner}/domains"))
    assert its_domains > 0
    store.delete_organization(owner)
    assert every(private_client, "/organization_domains", query=owner) == []
    assert all(i["organization_id"] != owner for i in every(private_client, "/organization_invitations"))
    assert store.invitation_count == invitations_before - its_invitations


def test_generation_is_deterministic_and_cheap_per_organization() -> None:
    first, again = ClerkStore(users=2_000, organizations=200, seed=3), ClerkStore(users=2_000, organizations=200, seed=3)
    assert list(first.iter_invitations()) == list(again.iter_invitations())
    assert list(first.iter_domains()) == list(again.iter_domains())
    other = ClerkStore(users=2_000, organizations=200, seed=4)
    assert list(other.iter_invitations()) != list(first.iter_invitations())
    # Proportional to organizations, not users.
    assert 0.3 < first.invitation_count / 200 < 1.6 and 0.1 < first.domain_count / 200 < 0.6
