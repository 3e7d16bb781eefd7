"""The store: determinism, the mutation API, its events, and cascades seen over HTTP."""

from __future__ import annotations

import json
import random

import httpx
import numpy as np
import pytest

from sync_pipeline.emulator import ClerkStore, EmulatorServer, ObjectNotFound, UserQuery
from sync_pipeline.emulator import generate
from sync_pipeline.emulator.ids import IdCodec
from sync_pipeline.emulator.objects import public_user_data, user_facts
from sync_pipeline.emulator.positions import Positions
from sync_pipeline_tests.emulator.emulator_http import fetch_all
from sync_pipeline_tests.fixtures import load

# -- determinism and the generator's own consistency -----------------------------------


def snapshot(store: ClerkStore) -> tuple[list, list, list]:
    return list(store.iter_users()), list(store.iter_organizations()), list(store.iter_memberships())


def test_same_seed_same_data_other_seed_other_data() -> None:
    first = snapshot(ClerkStore(users=200, organizations=20, seed=3))
    assert first == snapshot(ClerkStore(users=200, organizations=20, seed=3))
    other_users, _, _ = snapshot(ClerkStore(users=200, organizations=20, seed=4))
    assert {u["id"] for u in other_users}.isdisjoint(u["id"] for u in first[0])


def test_generated_text_agrees_with_the_shared_definitions() -> None:
    generator = generate.DataGenerator(seed=9, user_count=5_000, organization_count=50)
    for user in generator.users(range(0, 5_000, 3)):
        as_dict = json.loads(user.json)
        assert user.facts == user_facts(as_dict)
        assert json.loads(user.public_user_data_json) == public_user_data(as_dict)
        assert generator.user_index(as_dict["id"]) == generator.user_ids.decode(as_dict["id"])


def test_ids_round_trip_and_vector_encoding_matches() -> None:
    codec = IdCodec("orgmem_", seed=1)
    indices = np.array([0, 1, 2, 99_999, 2**40, 2**63 - 1], dtype=np.int64)
    created = np.array([0, 1_609_459_200_000, 1_748_736_000_000, 1_700_000_000_123, 1, 1_700_000_000_000])
    for index, created_at, encoded in zip(indices.tolist(), created.tolist(), codec.encode_many(indices, created)):
        assert codec.encode(index, created_at) == encoded
        assert codec.decode(encoded) == index
    assert IdCodec("orgmem_", seed=2).decode(codec.encode(5, 0)) is None  # another seed's id
    assert codec.decode("orgmem_" + "!" * 27) is None


def test_positions_page_around_deletions() -> None:
    rng = random.Random(1)
    positions = Positions(200)
    deleted = set(rng.sample(range(200), 60))
    for position in deleted:
        positions.delete(position)
    for _ in range(5):
        positions.append()
    live = [p for p in range(205) if p not in deleted]
    assert positions.live_count() == len(live)
    for offset in (0, 1, 13, 100, 139, 144, 145, 300):
        for limit in (1, 7, 500):
            assert positions.page(offset, limit, descending=False) == live[offset : offset + limit]
            assert positions.page(offset, limit, descending=True) == live[::-1][offset : offset + limit]
    window = [p for p in live if 50 <= p < 120]
    assert positions.page(3, 10, descending=True, start=50, stop=120) == window[::-1][3:13]
    assert positions.live_count(50, 120) == len(window)


# -- the mutation API, its events, and what HTTP shows -------------------------------------


def event_types(store: ClerkStore) -> list[str]:
    return [event["type"] for event in store.events]


def test_event_envelopes_have_the_fixture_shape(private_emulator: EmulatorServer) -> None:
    store = private_emulator.store
    user = store.create_user(email_addresses=["new@example.com"], first_name="Ada")
    envelope = store.events[-1]
    fixture = load("webhook_user.created")
    assert set(envelope) == set(fixture)
    assert envelope["type"] == "user.created" and envelope["object"] == "event"
    assert envelope["instance_id"] == store.instance_id and envelope["instance_id"].startswith("ins_")
    assert envelope["timestamp"] > 10**12  # milliseconds
    assert set(envelope["data"]) == set(fixture["data"]) and envelope["data"] == user
    assert set(envelope["event_attributes"]["http_request"]) == {"client_ip", "user_agent"}


def test_created_user_is_newest_and_counted(private_emulator: EmulatorServer, private_client: httpx.Client) -> None:
    before = private_client.get("/users/count").json()["total_count"]
    user = private_emulator.store.create_user(email_addresses=["łukasz@bücher.example"], first_name="Łukasz")
    assert private_client.get("/users", params={"limit": 1}).json()[0] == user
    assert private_client.get("/users/count").json()["total_count"] == before + 1
    assert private_client.get("/users", params={"email_address": "ŁUKASZ@bücher.example"}).json() == [user]


def test_updates_bump_updated_at_strictly(private_emulator: EmulatorServer, private_client: httpx.Client) -> None:
    store = private_emulator.store
    user_id = private_client.get("/users", params={"limit": 1, "offset": 5}).json()[0]["id"]
    stamps = [store.update_user(user_id, public_metadata={"n": n})["updated_at"] for n in range(20)]
    assert stamps == sorted(set(stamps))  # strictly increasing, even within one millisecond
    served = private_client.get(f"/users/{user_id}").json()
    assert served["public_metadata"] == {"n": 19} and served["updated_at"] == stamps[-1]
    assert event_types(store) == ["user.updated"] * 20
    with pytest.raises(ValueError):
        store.update_user(user_id, created_at=1)
    with pytest.raises(ObjectNotFound):
        store.update_user("user_unknown", first_name="x")


def test_deleting_a_user_removes_its_memberships(
    private_emulator: EmulatorServer, private_client: httpx.Client
) -> None:
    store = private_emulator.store
    membership = fetch_all(private_client, "/organization_memberships", limit=500)[10]
    user_id = membership["public_user_data"]["user_id"]
    organization_id = membership["organization"]["id"]
    members_before = store.get_organization(organization_id)["members_count"]
    own = store.list_user_memberships(user_id, limit=100, offset=0)[1]

    deleted = store.delete_user(user_id)

    assert deleted == {"object": "user", "id": user_id, "deleted": True, "external_id": deleted["external_id"]}
    assert set(deleted) == set(load("webhook_user.deleted")["data"])
    assert private_client.get(f"/users/{user_id}").status_code == 404
    assert private_client.get(f"/users/{user_id}/organization_memberships").status_code == 404
    assert user_id not in {u["id"] for u in fetch_all(private_client, "/users", limit=500)}
    remaining = fetch_all(private_client, "/organization_memberships", limit=500)
    assert all(m["public_user_data"]["user_id"] != user_id for m in remaining)
    assert len(remaining) == store.membership_count
    organization = store.get_organization(organization_id)
    assert organization["members_count"] == members_before - 1
    # Clerk does not document membership events on a user deletion; by default none are sent.
    assert event_types(store) == ["user.deleted"] and own >= 1


def test_deleting_an_organization_removes_its_memberships(
    private_emulator: EmulatorServer, private_client: httpx.Client
) -> None:
    store = private_emulator.store
    organization = max(store.iter_organizations(), key=lambda o: o["members_count"])
    members_before = store.membership_count

    deleted = store.delete_organization(organization["slug"])

    assert deleted == {
        "object": "organization", "id": organization["id"], "slug": organization["slug"], "deleted": True
    }
    assert set(deleted) == set(load("webhook_organization.deleted")["data"])
    assert private_client.get(f"/organizations/{organization['id']}").status_code == 404
    assert private_client.get(f"/organizations/{organization['slug']}/memberships").status_code == 404
    remaining = fetch_all(private_client, "/organization_memberships", limit=500)
    assert len(remaining) == members_before - organization["members_count"] == store.membership_count
    assert all(m["organization"]["id"] != organization["id"] for m in remaining)
    assert private_client.get("/organizations").json()["total_count"] == store.organization_count


def test_cascade_events_when_configured() -> None:
    store = ClerkStore(users=100, organizations=10, seed=1, cascade_membership_events=True)
    organization = max(store.iter_organizations(), key=lambda o: o["members_count"])
    store.delete_organization(organization["id"])
    cascade = ["organizationMembership.deleted"] * organization["members_count"]
    assert event_types(store) == ["organization.deleted", *cascade]
    assert all(e["data"]["organization"]["id"] == organization["id"] for e in store.events[1:])


def test_organization_lifecycle_and_members_count(
    private_emulator: EmulatorServer, private_client: httpx.Client
) -> None:
    store = private_emulator.store
    creator, member = (u["id"] for u in private_client.get("/users", params={"limit": 2}).json())

    organization = store.create_organization("Zoë's 山田 Café 🚀", created_by=creator, public_metadata={"plan": "α"})
    assert organization["members_count"] == 1 and organization["created_by"] == creator
    created_event = store.events[0]
    assert created_event["type"] == "organization.created"
    assert set(created_event["data"]) == set(load("webhook_organization.created")["data"])  # no members_count
    admin = store.events[1]
    assert admin["type"] == "organizationMembership.created" and admin["data"]["role"] == "org:admin"
    assert set(admin["data"]) == set(load("webhook_organizationMembership.created")["data"])

    joined = store.create_membership(organization["id"], member, role="org:billing_manager")
    assert joined["role_name"] == "Billing Manager" and joined["organization"]["members_count"] == 2
    with pytest.raises(ValueError):
        store.create_membership(organization["id"], member)
    promoted = store.update_membership(joined["id"], role="org:admin")
    assert promoted["role_name"] == "Admin" and promoted["updated_at"] > joined["updated_at"]
    listed = private_client.get(f"/organizations/{organization['slug']}/memberships").json()
    assert listed["total_count"] == 2 and promoted in listed["data"]

    renamed = store.update_organization(organization["id"], slug="renamed", name="Renamed")
    assert store.events[-1]["type"] == "organization.updated" and store.events[-1]["data"]["members_count"] == 2
    assert private_client.get(f"/organizations/{organization['slug']}").status_code == 404
    assert private_client.get("/organizations/renamed").json()["name"] == "Renamed"
    assert renamed["updated_at"] > organization["updated_at"]

    gone = store.delete_membership(joined["id"])
    assert store.events[-1] == {**store.events[-1], "type": "organizationMembership.deleted", "data": gone}
    assert store.get_organization("renamed")["members_count"] == 1
    assert event_types(store) == [
        "organization.created", "organizationMembership.created", "organizationMembership.created",
        "organizationMembership.updated", "organization.updated", "organizationMembership.deleted",
    ]


def test_memberships_show_the_current_user_and_organization(private_emulator: EmulatorServer) -> None:
    store = private_emulator.store
    membership = next(store.iter_memberships())
    store.update_user(membership["public_user_data"]["user_id"], first_name="Ólafur")
    store.update_organization(membership["organization"]["id"], name="Новое имя")
    current = store.get_membership(membership["id"])
    assert current["public_user_data"]["first_name"] == "Ólafur"
    assert current["organization"]["name"] == "Новое имя"
    assert current["updated_at"] == membership["updated_at"]  # the membership itself did not change


def test_email_helpers(private_emulator: EmulatorServer, private_client: httpx.Client) -> None:
    store = private_emulator.store
    first = store.create_user(email_addresses=["one@example.com"])
    second = store.create_user(email_addresses=["two@example.com", "old@example.com"])

    moved = store.set_primary_email(second["id"], "old@example.com")
    assert user_facts(moved).primary_email_address == "old@example.com"
    added = store.set_primary_email(first["id"], "Zoë.Neu@例え.jp")
    assert user_facts(added).primary_email_address == "Zoë.Neu@例え.jp" and len(added["email_addresses"]) == 2

    swapped_first, swapped_second = store.swap_primary_emails(first["id"], second["id"])
    assert user_facts(swapped_first).primary_email_address == "old@example.com"
    assert user_facts(swapped_second).primary_email_address == "Zoë.Neu@例え.jp"
    assert private_client.get(f"/users/{first['id']}").json() == swapped_first

    unverified = store.add_email_address(first["id"], "later@example.com", verified=False)
    assert unverified["email_addresses"][-1]["verification"]["status"] == "unverified"
    without_primary = store.remove_email_address(first["id"], "old@example.com")
    assert without_primary["primary_email_address_id"] is None

    store.delete_user(second["id"])
    reused = store.create_user_reusing_email(second["id"], first_name="Nachfolger")
    assert user_facts(reused).primary_email_address == "Zoë.Neu@例え.jp" and reused["id"] != second["id"]
    assert store.count_users(UserQuery(email_addresses=("zoë.neu@例え.jp",))) == 1


def test_a_deleted_user_still_anchors_a_cursor(private_emulator: EmulatorServer, private_client: httpx.Client) -> None:
    page = private_client.get("/users", params={"limit": 3}).json()
    private_emulator.store.delete_user(page[1]["id"])
    after = private_client.get("/users", params={"limit": 1, "starting_after": page[1]["id"]}).json()
    assert after == [page[2]]


def test_name_pools_need_no_json_escaping() -> None:
    """The generator pastes these straight between JSON quotes."""
    pools = (
        generate.FIRST_NAMES, generate.LAST_NAMES, generate.ORGANIZATION_NAME_HEADS, generate.ORGANIZATION_NAME_TAILS
    )
    texts = [text for pool in pools for pair in pool for text in pair]
    texts += [*generate.EMAIL_DOMAINS, *generate.UNICODE_EMAIL_DOMAINS]
    assert all(json.dumps(text, ensure_ascii=False) == f'"{text}"' for text in texts)


def test_updated_at_order_follows_changes(private_emulator: EmulatorServer, private_client: httpx.Client) -> None:
    """Paging by -updated_at (there is no updated_at filter) sees changes, creations and deletions."""
    store = private_emulator.store
    before = fetch_all(private_client, "/users", limit=500, order_by="-updated_at")
    touched = before[-1]["id"]  # the longest unchanged
    store.update_user(touched, first_name="Touched")
    created = store.create_user(email_addresses=["fresh@example.com"])
    store.delete_user(before[0]["id"])

    after = [user["id"] for user in fetch_all(private_client, "/users", limit=500, order_by="-updated_at")]

    assert after[:2] == [created["id"], touched]
    assert before[0]["id"] not in after and len(after) == len(before)
    by_update = sorted(store.iter_users(), key=lambda user: user["updated_at"])  # stable: ties by creation
    ascending = fetch_all(private_client, "/users", limit=500, order_by="updated_at")
    assert [user["id"] for user in ascending] == [user["id"] for user in by_update]
