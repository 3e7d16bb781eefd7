"""The webhook inbox: classifying payloads, storing deliveries once, and reading them back for syncs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_pipeline.mirror.database import upgrade_schema
from sync_pipeline.webhooks.inbox import (
    RELEVANT_EVENT_TYPES,
    INVALID,
    EventFacts,
    affected_ids,
    affected_scope,
    classify,
    events_by_ids,
    events_received_between,
    inbox_health,
    mark_processed,
    pending_events,
    store_delivery,
)
from sync_pipeline_tests.fixtures import FIXTURES, load

USER = "user_2nQ7zXc3PqLm9RtY6uVb1WsKdHe"
DELETED_USER = "user_2nR0aaaaBBBBccccDDDDeeeeFFF"
ORG = "org_2nQ8bKfV1xYtR4mJ0aLcE7sDwZp"
MEMBERSHIP = "orgmem_2nQ9kLmNoPqRsTuVwXyZ012345"

# fixture -> (entity, object_id, user_id, organization_id, status)
EXPECTED = {
    "webhook_user.created": ("user", USER, USER, None, "pending"),
    "webhook_user.updated": ("user", USER, USER, None, "pending"),  # no instance_id
    "webhook_user.deleted": ("user", DELETED_USER, DELETED_USER, None, "pending"),  # a DeletedObject
    "webhook_organization.created": ("organization", ORG, None, ORG, "pending"),
    "webhook_organization.updated": ("organization", ORG, None, ORG, "pending"),  # timestamp in seconds
    "webhook_organization.deleted": ("organization", ORG, None, ORG, "pending"),
    "webhook_organizationMembership.created": ("membership", MEMBERSHIP, USER, ORG, "pending"),
    "webhook_organizationMembership.updated": ("membership", MEMBERSHIP, USER, ORG, "pending"),
    "webhook_organizationMembership.deleted": ("membership", MEMBERSHIP, USER, ORG, "pending"),  # the full membership
    "webhook_session.created": (None, "sess_2nQxyz", None, None, "ignored"),
}
FIXTURE_NAMES = sorted(path.stem for path in FIXTURES.glob("webhook_*.json"))
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_every_webhook_fixture_has_an_expectation() -> None:
    assert FIXTURE_NAMES == sorted(EXPECTED)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_classify_reads_every_fixture(name: str) -> None:
    payload = load(name)
    facts = classify(payload)
    assert (facts.entity, facts.object_id, facts.user_id, facts.organization_id, facts.status) == EXPECTED[name]
    assert facts.event_type == payload["type"]
    # 1731500000123 ms and 1731500000 s are the same moment, to the millisecond
    assert abs(facts.clerk_timestamp - datetime(2024, 11, 13, 12, 13, 20, tzinfo=timezone.utc)) < timedelta(seconds=1)


def test_affected_ids_over_every_fixture() -> None:
    facts = [classify(load(name)) for name in FIXTURE_NAMES]
    # the session adds nothing
    assert affected_ids(facts) == ([USER, DELETED_USER], [ORG])
    # memberships add their user and their organization, whose members_count they change
    membership_only = [classify(load(name)) for name in FIXTURE_NAMES if "Membership" in name]
    assert affected_ids(membership_only) == ([USER], [ORG])
    # a role change moves no count: its user's memberships are re-read, not the whole organization
    assert affected_ids([classify(load("webhook_organizationMembership.updated"))]) == ([USER], [])


def test_a_membership_without_its_user_falls_back_to_the_organization() -> None:
    payload = load("webhook_organizationMembership.deleted")
    del payload["data"]["public_user_data"]
    facts = classify(payload)
    assert (facts.user_id, facts.organization_id, facts.status) == (None, ORG, "pending")
    assert affected_ids([facts]) == ([], [ORG])


def test_relevant_event_types() -> None:
    # A domain's organization re-reads it (its list is complete); roles and permissions are
    # re-read by id, with the memberships they change; invitations wait for the full sync
    # (the organization's list leaves some out).
    assert RELEVANT_EVENT_TYPES == {
        f"{prefix}.{action}"
        for prefix in ("user", "organization", "organizationMembership", "organizationDomain", "role", "permission")
        for action in ("created", "updated", "deleted")
    }


def test_role_and_permission_events_name_themselves() -> None:
    role = classify({"type": "role.updated", "data": {"object": "role", "id": "role_1", "key": "org:member"}})
    gone = classify({"type": "permission.deleted", "data": {"object": "permission", "id": "perm_1", "deleted": True}})
    assert (role.status, role.entity, role.object_id) == ("pending", "role", "role_1")
    assert (gone.status, gone.entity, gone.object_id) == ("pending", "permission", "perm_1")
    assert affected_scope([role, gone]) == {
        "user_ids": [], "organization_ids": [], "role_ids": ["role_1"], "permission_ids": ["perm_1"]
    }
    assert affected_ids([role, gone]) == ([], [])
    no_id = classify({"type": "role.deleted", "data": {"object": "role", "deleted": True}})
    assert (no_id.status, no_id.problem) == ("invalid", "no role id")
    bad = classify({"type": "role.updated", "data": {"id": "../admin"}})
    assert bad.status == "invalid" and bad.object_id is None
    invitation = classify({"type": "organizationInvitation.accepted", "data": {"id": "orginv_1", "organization_id": "org_1"}})
    assert invitation.status == "ignored"


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "user.updated"},
        {"type": "user.updated", "data": None},
        {"type": "user.deleted", "data": {"object": "user", "deleted": True}},
        {"type": "organization.updated", "data": {"id": 42}},
        {"type": "organization.created", "data": {"id": ""}},
        {"type": "organizationMembership.deleted", "data": {"id": "orgmem_1", "organization": "org_1"}},
        {"type": "organizationMembership.created", "data": {"public_user_data": {"user_id": None}, "organization": {}}},
    ],
)
def test_a_followed_type_without_the_id_it_needs_is_invalid(payload: dict) -> None:
    facts = classify(payload)
    assert facts.status == "invalid"
    assert facts.entity is not None
    assert affected_ids([facts]) == ([], [])


@pytest.mark.parametrize("event_type", ["session.created", "email.created", "organizationInvitation.accepted", "user.Updated"])
def test_other_types_are_ignored(event_type: str) -> None:
    facts = classify({"type": event_type, "data": {"id": "x_1", "user_id": USER}})
    assert (facts.entity, facts.user_id, facts.organization_id, facts.status) == (None, None, None, "ignored")


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1731500000123, datetime(2024, 11, 13, 12, 13, 20, 123000, tzinfo=timezone.utc)),
        (1731500000, datetime(2024, 11, 13, 12, 13, 20, tzinfo=timezone.utc)),
        (99_999_999_999, datetime(5138, 11, 16, 9, 46, 39, tzinfo=timezone.utc)),  # just below 10^11: seconds
        (100_000_000_000, datetime(1973, 3, 3, 9, 46, 40, tzinfo=timezone.utc)),  # 10^11: milliseconds
        ("1731500000123", datetime(2024, 11, 13, 12, 13, 20, 123000, tzinfo=timezone.utc)),
        (None, None),
        (True, None),
        (-5, None),
        (10**30, None),
        ("soon", None),
    ],
)
def test_clerk_timestamp_in_milliseconds_or_seconds(timestamp: object, expected: datetime | None) -> None:
    assert classify({"type": "user.created", "data": {"id": "user_1"}, "timestamp": timestamp}).clerk_timestamp == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    event_type=st.sampled_from(sorted(RELEVANT_EVENT_TYPES) + ["session.created", "", "x"]) | st.text(max_size=5),
    data=json_values,
    timestamp=json_values,
)
def test_classify_never_raises(event_type: str, data: object, timestamp: object) -> None:
    facts = classify({"type": event_type, "data": data, "timestamp": timestamp})
    assert facts.status in {"pending", "ignored", "invalid"}
    assert (facts.status == "ignored") == (event_type not in RELEVANT_EVENT_TYPES)
    affected_ids([facts])


# ------------------------------------------------------------------ the table


@pytest.fixture
def inbox(engine: sa.Engine, schema: str) -> str:
    upgrade_schema(engine, schema)
    return schema


def _row(engine: sa.Engine, schema: str, svix_id: str) -> dict:
    with engine.connect() as connection:
        return dict(
            connection.execute(
                sa.text(f'SELECT * FROM "{schema}".webhook_events WHERE svix_id = :id'), {"id": svix_id}
            ).one()._mapping
        )


def _set(engine: sa.Engine, schema: str, svix_id: str, **columns: object) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    with engine.begin() as connection:
        connection.execute(
            sa.text(f'UPDATE "{schema}".webhook_events SET {assignments} WHERE svix_id = :svix_id'),
            {"svix_id": svix_id, **columns},
        )


def _store(engine: sa.Engine, schema: str, svix_id: str, payload: dict, received_at: datetime | None = None) -> None:
    store_delivery(engine, schema, svix_id=svix_id, svix_timestamp=T0, payload=payload)
    if received_at is not None:
        _set(engine, schema, svix_id, received_at=received_at)


def test_a_redelivery_is_one_row_and_keeps_the_first_status_and_payload(engine: sa.Engine, inbox: str) -> None:
    payload = load("webhook_user.updated")
    first = store_delivery(engine, inbox, svix_id="msg_1", svix_timestamp=T0, payload=payload)
    assert (first.status, first.first_delivery) == ("pending", True)
    row = _row(engine, inbox, "msg_1")
    assert row["payload"] == payload
    assert (row["delivery_count"], row["event_type"], row["entity"], row["user_id"]) == (1, "user.updated", "user", USER)
    assert row["svix_timestamp"] == T0 and row["received_at"] is not None

    changed = {**payload, "type": "session.created"}
    again = store_delivery(engine, inbox, svix_id="msg_1", svix_timestamp=T0 + timedelta(minutes=5), payload=changed)
    assert (again.status, again.first_delivery) == ("pending", False)
    after = _row(engine, inbox, "msg_1")
    assert after["delivery_count"] == 2
    assert after["payload"] == payload and after["status"] == "pending" and after["event_type"] == "user.updated"
    assert after["received_at"] == row["received_at"] and after["last_received_at"] >= row["last_received_at"]


def test_a_redelivery_of_a_processed_event_stays_processed(engine: sa.Engine, inbox: str) -> None:
    _store(engine, inbox, "msg_1", load("webhook_user.created"))
    with engine.begin() as connection:
        mark_processed(connection, inbox, ["msg_1"], "run-1")
    again = store_delivery(engine, inbox, svix_id="msg_1", svix_timestamp=T0, payload=load("webhook_user.created"))
    assert (again.status, again.first_delivery) == ("processed", False)


def test_ignored_and_invalid_events_are_stored(engine: sa.Engine, inbox: str) -> None:
    assert store_delivery(engine, inbox, svix_id="s", svix_timestamp=None, payload=load("webhook_session.created")).status == "ignored"
    assert store_delivery(engine, inbox, svix_id="i", svix_timestamp=None, payload={"type": "user.deleted", "data": {}}).status == "invalid"
    assert _row(engine, inbox, "s")["object_id"] == "sess_2nQxyz"
    assert pending_events(engine, inbox, limit=10) == []


def test_an_updated_before_its_created_is_pending_either_way(engine: sa.Engine, inbox: str) -> None:
    _store(engine, inbox, "msg_updated", load("webhook_user.updated"), T0)
    _store(engine, inbox, "msg_created", load("webhook_user.created"), T0 + timedelta(seconds=1))
    assert [e.svix_id for e in pending_events(engine, inbox, limit=10)] == ["msg_updated", "msg_created"]


def test_payloads_jsonb_cannot_hold_are_stored_with_replacement_characters(engine: sa.Engine, inbox: str) -> None:
    payload = {"type": "user.updated", "data": {"id": "user_1", "first_name": "a\x00b", "bad\ud800": "\udfff"}}
    store_delivery(engine, inbox, svix_id="msg_nul", svix_timestamp=None, payload=payload)
    assert _row(engine, inbox, "msg_nul")["payload"]["data"] == {"id": "user_1", "first_name": "a\ufffdb", "bad\ufffd": "\ufffd"}
    with pytest.raises(ValueError):
        store_delivery(engine, inbox, svix_id="msg_x", svix_timestamp=None, payload={"data": {}})


def test_pending_events_oldest_first_with_a_limit(engine: sa.Engine, inbox: str) -> None:
    _store(engine, inbox, "msg_c", load("webhook_user.created"), T0)
    _store(engine, inbox, "msg_b", load("webhook_organization.updated"), T0)  # same instant: svix_id decides
    _store(engine, inbox, "msg_a", load("webhook_organizationMembership.created"), T0 + timedelta(seconds=1))
    _store(engine, inbox, "msg_0", load("webhook_session.created"), T0 - timedelta(days=1))  # ignored
    _store(engine, inbox, "msg_d", load("webhook_user.deleted"), T0 - timedelta(seconds=1))

    assert [e.svix_id for e in pending_events(engine, inbox, limit=10)] == ["msg_d", "msg_b", "msg_c", "msg_a"]
    with engine.connect() as connection:
        first_two = pending_events(connection, inbox, limit=2)
    assert [e.svix_id for e in first_two] == ["msg_d", "msg_b"]
    event = first_two[1]
    assert (event.event_type, event.entity, event.object_id, event.organization_id, event.status) == (
        "organization.updated", "organization", ORG, ORG, "pending",
    )
    assert event.received_at == T0 and event.clerk_timestamp == datetime(2024, 11, 13, 12, 13, 20, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        pending_events(engine, inbox, limit=0)


def test_mark_processed_in_the_callers_transaction(engine: sa.Engine, inbox: str) -> None:
    _store(engine, inbox, "msg_1", load("webhook_user.created"))
    _store(engine, inbox, "msg_2", load("webhook_organization.created"))
    _store(engine, inbox, "msg_s", load("webhook_session.created"))

    with pytest.raises(RuntimeError), engine.begin() as connection:
        assert mark_processed(connection, inbox, ["msg_1"], "run-rolled-back") == 1
        raise RuntimeError("the sync's apply failed")
    assert _row(engine, inbox, "msg_1")["status"] == "pending"

    with engine.begin() as connection:
        assert mark_processed(connection, inbox, ["msg_1", "msg_s", "msg_unknown"], "run-1") == 1
    row = _row(engine, inbox, "msg_1")
    assert (row["status"], row["processed_run_id"]) == ("processed", "run-1") and row["processed_at"] is not None
    assert _row(engine, inbox, "msg_s")["status"] == "ignored"
    assert [e.svix_id for e in pending_events(engine, inbox, limit=10)] == ["msg_2"]

    with engine.begin() as connection:  # a replay runs it again
        assert mark_processed(connection, inbox, ["msg_1", "msg_2"], "run-2") == 2
    assert _row(engine, inbox, "msg_1")["processed_run_id"] == "run-2"
    with engine.begin() as connection:
        assert mark_processed(connection, inbox, [], "run-3") == 0
    with pytest.raises(TypeError):
        mark_processed(engine, inbox, ["msg_1"], "run-4")


def test_replay_reads_pending_and_processed_but_not_ignored_or_invalid(engine: sa.Engine, inbox: str) -> None:
    _store(engine, inbox, "msg_early", load("webhook_user.created"), T0 - timedelta(hours=1))
    _store(engine, inbox, "msg_start", load("webhook_user.updated"), T0)
    _store(engine, inbox, "msg_mid", load("webhook_organizationMembership.deleted"), T0 + timedelta(minutes=30))
    _store(engine, inbox, "msg_ignored", load("webhook_session.created"), T0 + timedelta(minutes=31))
    _store(engine, inbox, "msg_invalid", {"type": "user.updated", "data": {}}, T0 + timedelta(minutes=32))
    _store(engine, inbox, "msg_end", load("webhook_organization.created"), T0 + timedelta(hours=1))
    with engine.begin() as connection:
        mark_processed(connection, inbox, ["msg_start"], "run-1")

    between = events_received_between(engine, inbox, T0, T0 + timedelta(hours=1))  # [since, until)
    assert [(e.svix_id, e.status) for e in between] == [("msg_start", "processed"), ("msg_mid", "pending")]
    assert affected_ids(between) == ([USER], [ORG])  # the membership's organization too
    with pytest.raises(ValueError):
        events_received_between(engine, inbox, datetime(2026, 1, 1), datetime(2026, 1, 2))

    by_ids = events_by_ids(engine, inbox, ["msg_end", "msg_ignored", "msg_invalid", "msg_start", "msg_unknown"])
    assert [e.svix_id for e in by_ids] == ["msg_start", "msg_end"]
    assert affected_ids(by_ids) == ([USER], [ORG])
    assert events_by_ids(engine, inbox, []) == []


def test_inbox_health(engine: sa.Engine, inbox: str) -> None:
    empty = inbox_health(engine, inbox)
    assert (empty.pending_count, empty.oldest_pending_age_seconds, empty.processed_last_hour, empty.lag_max_seconds) == (0, None, 0, None)

    now = datetime.now(timezone.utc)
    _store(engine, inbox, "msg_old", load("webhook_user.created"), now - timedelta(minutes=10))
    _store(engine, inbox, "msg_new", load("webhook_user.updated"), now - timedelta(minutes=1))
    _store(engine, inbox, "msg_s", load("webhook_session.created"), now - timedelta(hours=5))
    for index, lag in enumerate([1, 2, 3, 4, 100]):
        svix_id = f"msg_done_{index}"
        _store(engine, inbox, svix_id, load("webhook_organization.updated"))
        _set(engine, inbox, svix_id, status="processed", received_at=now - timedelta(minutes=5, seconds=lag), processed_at=now - timedelta(minutes=5))
    _store(engine, inbox, "msg_done_long_ago", load("webhook_organization.updated"))
    _set(engine, inbox, "msg_done_long_ago", status="processed", received_at=now - timedelta(hours=3), processed_at=now - timedelta(hours=2))

    health = inbox_health(engine, inbox)
    assert health.pending_count == 2
    assert 600 <= health.oldest_pending_age_seconds < 660
    assert health.processed_last_hour == 5
    assert health.lag_p50_seconds == pytest.approx(3)
    assert health.lag_p95_seconds == pytest.approx(4 + 0.8 * 96)  # interpolated between 4 and 100
    assert health.lag_max_seconds == pytest.approx(100)


def test_affected_ids_are_sorted_and_unique() -> None:
    facts = [
        EventFacts("user.updated", "user", "user_b", "user_b", None, "pending", None),
        EventFacts("user.created", "user", "user_a", "user_a", None, "pending", None),
        EventFacts("organizationMembership.created", "membership", "m", "user_b", "org_z", "pending", None),
        EventFacts("organization.deleted", "organization", "org_b", None, "org_b", "pending", None),
        EventFacts("organization.created", "organization", "org_a", None, "org_a", "pending", None),
    ]
    assert affected_ids(facts) == (["user_a", "user_b"], ["org_a", "org_b", "org_z"])
    assert affected_ids([]) == ([], [])


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"type": "user.updated", "data": {"id": ".."}}, "data.id has characters"),
        ({"type": "user.updated", "data": {"id": "user_" + "x" * 9_995}}, "data.id 10000 characters long (at most 128)"),
        ({"type": "organization.updated", "data": {"id": "org_1/../x"}}, "data.id has characters"),
        (
            {"type": "organizationMembership.created", "data": {"id": "orgmem_1", "organization": {"id": "org_1"},
                                                                "public_user_data": {"user_id": "../users"}}},
            "user id has characters",
        ),
        ({"type": "organizationMembership.deleted", "data": {"organization": {"id": "o" * 200}}}, "organization id 200 characters"),
    ],
)
def test_ids_that_cannot_be_clerk_ids_make_the_event_invalid_with_the_reason(payload: dict, problem: str) -> None:
    facts = classify(payload)
    assert facts.status == INVALID
    assert facts.problem.startswith(problem)
    assert facts.user_id is None and facts.organization_id is None and facts.object_id is None  # never stored as ids
    assert len(facts.problem) < 120  # the reason, never the id
    assert affected_ids([facts]) == ([], [])


def test_an_absurd_id_is_stored_invalid_with_its_reason_and_never_pending(engine, schema) -> None:  # noqa: ANN001
    upgrade_schema(engine, schema)
    stored = store_delivery(
        engine, schema, svix_id="msg_absurd", svix_timestamp=None, payload={"type": "user.updated", "data": {"id": "u" * 10_000}}
    )
    assert stored.status == INVALID and stored.problem == "data.id 10000 characters long (at most 128)"
    assert pending_events(engine, schema, limit=10) == []
    health = inbox_health(engine, schema)
    assert health.invalid_last_day == 1 and health.invalid_reasons == (("data.id 10000 characters long (at most 128)", 1),)
