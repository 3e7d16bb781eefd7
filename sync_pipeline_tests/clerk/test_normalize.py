"""Normalization: Clerk JSON objects -> contract frames, one rule per case."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_pipeline import model
from sync_pipeline.entities import catalog
from sync_pipeline.clerk.normalize import (
    FrameBuilder,
    _json,
    drop_rows,
    normalize,
    normalize_membership,
    normalize_one,
    normalize_organization,
    normalize_user,
    primary_email,
    select_rows,
)
from sync_pipeline_tests import fixtures as fx

NORMALIZERS = {
    model.USERS: normalize_user,
    model.ORGANIZATIONS: normalize_organization,
    model.MEMBERSHIPS: normalize_membership,
    **{
        entity: partial(normalize_one, entity)
        for entity in model.ENTITIES
        if entity not in (model.USERS, model.ORGANIZATIONS, model.MEMBERSHIPS)
    },
}


def _dtypes(entity: str) -> dict[str, str]:
    return {c: str(t) for c, t in model.empty_frame(entity).dtypes.items()}


# ------------------------------------------------------------------ the fixtures


def test_user_fixture():
    obj = fx.load("user")
    row = normalize_user(obj)
    assert row == {
        "id": "user_2nQ7zXc3PqLm9RtY6uVb1WsKdHe",
        "primary_email": "Zoe.OBrien@Acme-Robotics.example",  # by primary_email_address_id, not the first
        "first_name": "Zoë",
        "last_name": "O'Brien-Łukasz",
        "username": None,
        "image_url": "https://img.clerk.com/eyJ0eXBlIjoicHJveHki",
        "external_id": "legacy-1042",
        "banned": False,
        "public_metadata": '{"role":"engineer"}',
        "private_metadata": '{"stripe_customer":"cus_123"}',
        "created_at": 1716883200000,
        "updated_at": 1731500000000,
        "raw": model.canonical_json(obj),
        "raw_digest": model.digest(model.canonical_json(obj)),
    }


def test_sparse_user_fixture():
    row = normalize_user(fx.load("user_sparse"))
    assert row["primary_email"] == "ghost42@example.org"  # null primary id, unverified: the first
    assert row["first_name"] is None and row["last_name"] is None
    assert row["username"] == "ghost_42"
    assert row["private_metadata"] is None  # null stays null ...
    assert row["public_metadata"] == "{}"  # ... and {} stays {}
    assert row["banned"] is True
    assert "verification_future_variant" in row["raw"]  # an unknown variant is kept, not fatal


def test_organization_fixture():
    obj = fx.load("organization")
    assert normalize_organization(obj) == {
        "id": "org_2nQ8bKfV1xYtR4mJ0aLcE7sDwZp",
        "name": "Acme Robotics",
        "slug": "acme-robotics",
        "image_url": "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9",
        "members_count": 3,
        "created_by": "user_2nQ7zXc3PqLm9RtY6uVb1WsKdHe",
        "public_metadata": '{"plan":"team"}',
        "private_metadata": '{"crm_id":4411}',
        "created_at": 1716883200000,
        "updated_at": 1731500000000,
        "raw": model.canonical_json(obj),
        "raw_digest": model.digest(model.canonical_json(obj)),
    }


def test_membership_fixture():
    obj = fx.load("organization_membership")
    assert normalize_membership(obj) == {
        "id": "orgmem_2nQ9kLmNoPqRsTuVwXyZ012345",
        "organization_id": "org_2nQ8bKfV1xYtR4mJ0aLcE7sDwZp",  # organization.id
        "user_id": "user_2nQ7zXc3PqLm9RtY6uVb1WsKdHe",  # public_user_data.user_id
        "role": "org:admin",
        "permissions": '["org:sys_profile:manage","org:sys_memberships:read","org:sys_memberships:manage"]',
        "created_at": 1716883200000,
        "updated_at": 1716883200000,
        "raw": model.canonical_json(obj),
        "raw_digest": model.digest(model.canonical_json(obj)),
    }


@pytest.mark.parametrize(
    ("entity", "objects"),
    [
        (model.USERS, fx.list_users),
        (model.ORGANIZATIONS, fx.list_organizations),
        (model.MEMBERSHIPS, fx.list_memberships),
    ],
)
def test_list_fixtures_give_contract_frames(entity, objects):
    frame = normalize(entity, objects())
    assert list(frame.columns) == list(model.COLUMNS[entity])
    assert _dtypes(entity) == {c: str(t) for c, t in frame.dtypes.items()}
    pd.testing.assert_frame_equal(frame, model.conform(frame, entity))
    assert len(frame) == len(objects())


# ------------------------------------------------------------------ primary e-mail


def _addr(id, address, status="verified", *, verification="default"):
    entry = {"id": id, "email_address": address}
    if verification == "default":
        entry["verification"] = {"object": "verification_otp", "status": status}
    else:
        entry["verification"] = verification
    return entry


@pytest.mark.parametrize(
    ("primary_id", "addresses", "expected"),
    [
        pytest.param("idn_b", [_addr("idn_a", "a@x"), _addr("idn_b", "b@x", "unverified")], "b@x", id="by-id-even-unverified"),
        pytest.param(None, [_addr("idn_a", "a@x", "unverified"), _addr("idn_b", "b@x")], "b@x", id="null-id-first-verified"),
        pytest.param("idn_zz", [_addr("idn_a", "a@x", "failed"), _addr("idn_b", "b@x")], "b@x", id="id-not-found-first-verified"),
        pytest.param(None, [_addr("idn_a", "a@x", "unverified"), _addr("idn_b", "b@x", "expired")], "a@x", id="none-verified-first"),
        pytest.param(None, [_addr("idn_a", "a@x", verification=None), _addr("idn_b", "b@x")], "b@x", id="null-verification"),
        pytest.param(None, [_addr("idn_a", "a@x", verification={"status": "verified"})], "a@x", id="verification-without-object"),
        pytest.param(None, [_addr("idn_a", "a@x", "transferable"), _addr("idn_b", "b@x", "brand_new_status")], "a@x", id="unknown-status"),
        pytest.param(None, [_addr("idn_a", "a@x", verification={})], "a@x", id="empty-verification"),
        pytest.param(None, [], None, id="no-addresses"),
        pytest.param("idn_a", None, None, id="addresses-null"),
    ],
)
def test_primary_email_rule(primary_id, addresses, expected):
    user = {"id": "user_1", "primary_email_address_id": primary_id, "email_addresses": addresses}
    assert primary_email(user) == expected
    assert normalize_user(user)["primary_email"] == expected


def test_primary_email_without_the_key():
    assert primary_email({"id": "user_1"}) is None


# ------------------------------------------------------------------ missing, unknown, odd


@pytest.mark.parametrize("entity", model.ENTITIES)
def test_missing_documented_fields_become_null(entity):
    row = NORMALIZERS[entity]({"id": "x_1"})
    assert row["id"] == "x_1"
    assert row["raw"] == '{"id":"x_1"}'
    nulls = [c for c in model.COLUMNS[entity] if c not in ("id", "raw", "raw_digest")]
    assert all(row[c] is None for c in nulls), row
    frame = normalize(entity, [{"id": "x_1"}])
    assert _dtypes(entity) == {c: str(t) for c, t in frame.dtypes.items()}
    assert frame.loc[0, nulls].isna().all()


def test_members_count_absent_is_na():
    obj = fx.load("organization")
    del obj["members_count"]
    frame = normalize(model.ORGANIZATIONS, [obj])
    assert frame["members_count"].isna().all()
    assert frame["members_count"].dtype == model.empty_frame(model.ORGANIZATIONS)["members_count"].dtype


@pytest.mark.parametrize(
    ("entity", "field"), [(model.ORGANIZATIONS, "members_count"), (model.USERS, "created_at"), (model.USERS, "updated_at")]
)
def test_numbers_too_big_for_the_column_become_null(entity, field):
    frame = normalize(entity, [{"id": "x_1", field: 2**70}, {"id": "x_2", field: 7}])
    assert frame[field].isna().tolist() == [True, False]
    assert frame.loc[1, field] == 7


@pytest.mark.parametrize("entity", model.ENTITIES)
def test_unknown_fields_are_kept_in_raw(entity):
    obj = fx.example(entity)
    obj["brand_new_field"] = {"nested": [1, "two", None]}
    row = NORMALIZERS[entity](obj)
    assert json.loads(row["raw"])["brand_new_field"] == {"nested": [1, "two", None]}
    assert row["raw_digest"] == model.digest(row["raw"])


def test_unknown_role_is_kept():
    obj = fx.load("organization_membership")
    obj["role"] = "org:custom_wizard"
    assert normalize_membership(obj)["role"] == "org:custom_wizard"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("banned", "true", True),
        ("banned", 0, False),
        ("banned", "maybe", None),
        ("created_at", 1.7e12, 1_700_000_000_000),
        ("created_at", "1700000000000", 1_700_000_000_000),
        ("created_at", "yesterday", None),
        ("created_at", True, None),
        ("external_id", 1042, "1042"),
        ("first_name", {"given": "Zoë"}, '{"given":"Zoë"}'),
    ],
)
def test_odd_types_are_coerced_or_nulled_never_fatal(field, value, expected):
    row = normalize_user({"id": "user_1", field: value})
    assert row[field] == expected
    frame = normalize(model.USERS, [{"id": "user_1", field: value}])
    got = frame.loc[0, field]
    assert (pd.isna(got) and expected is None) or got == expected


def test_items_without_a_text_id_are_skipped_and_counted():
    builder = FrameBuilder(model.USERS)
    assert builder.add_page([{"id": None}, "not an object", {"first_name": "x"}, {"id": "user_1"}]) == 1
    assert builder.skipped == 3
    assert builder.frame()["id"].tolist() == ["user_1"]


def test_lone_surrogate_is_replaced_not_fatal():
    row = normalize_user({"id": "user_1", "first_name": "a\ud800b"})
    assert row["first_name"] == "a\ufffdb"
    assert row["raw_digest"] == model.digest(row["raw"])


def test_nul_is_replaced_everywhere_in_the_object_keys_included():
    row = normalize_user(
        {"id": "user_1", "first_name": "a\x00b", "public_metadata": {"k\x00": ["v\x00"]}, "unknown": {"\x00": 1}}
    )
    assert row["first_name"] == "a\ufffdb"
    assert json.loads(row["public_metadata"]) == {"k\ufffd": ["v\ufffd"]}
    assert json.loads(row["raw"])["unknown"] == {"\ufffd": 1}
    assert "\x00" not in row["raw"] and "\\u0000" not in row["raw"]
    assert row["raw_digest"] == model.digest(row["raw"])


def test_nul_replacement_is_listed_but_an_escaped_backslash_is_not():
    builder = FrameBuilder(model.MEMBERSHIPS)
    builder.add_page(
        [
            fx.membership("orgmem_nul", "org_1", "user_1", role="org:\x00admin"),
            fx.membership("orgmem_text", "org_1", "user_2", role="org:\\u0000 is only text"),
            fx.membership("orgmem_both", "org_1", "user_3", role="\ud800\x00"),
        ]
    )
    roles = dict(zip(builder.frame()["id"], builder.frame()["role"]))
    assert builder.nul_replaced_ids == ["orgmem_nul", "orgmem_both"]
    assert roles == {"orgmem_nul": "org:\ufffdadmin", "orgmem_text": "org:\\u0000 is only text", "orgmem_both": "\ufffd\ufffd"}


# ------------------------------------------------------------------ JSON text


def test_json_text_does_not_depend_on_key_order():
    a = fx.user("user_1", "a@example.com", public_metadata={"b": 1, "a": {"y": 2, "x": 1}})
    b = dict(reversed(list(a.items())))
    b["public_metadata"] = {"a": {"x": 1, "y": 2}, "b": 1}
    ra, rb = normalize_user(a), normalize_user(b)
    assert ra["public_metadata"] == rb["public_metadata"] == '{"a":{"x":1,"y":2},"b":1}'
    assert ra["raw"] == rb["raw"] and ra["raw_digest"] == rb["raw_digest"]


def test_empty_permissions_is_an_empty_array_not_null():
    obj = fx.membership("orgmem_1", "org_1", "user_1", permissions=[])
    assert normalize_membership(obj)["permissions"] == "[]"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fast_encoder_is_model_canonical_json(value):
    assert _json(value) == model.canonical_json(value)


@pytest.mark.parametrize("name", ["user", "user_sparse", "organization", "organization_membership"])
def test_fast_encoder_on_fixtures(name):
    obj = fx.load(name)
    assert _json(obj) == model.canonical_json(obj)


# ------------------------------------------------------------------ private metadata


@pytest.mark.parametrize("entity", [e.name for e in catalog.ENTITIES if e.has_private_metadata or e.embedded_private])
def test_private_metadata_excluded(entity):
    obj = fx.example(entity)
    original = json.dumps(obj, sort_keys=True)
    row = NORMALIZERS[entity](obj, include_private_metadata=False)
    raw = json.loads(row["raw"])
    assert "private_metadata" not in raw
    if entity == model.MEMBERSHIPS:
        assert "private_metadata" not in raw["organization"]
        assert raw["organization"]["public_metadata"] == {"plan": "team"}
    else:
        assert row["private_metadata"] is None
    assert raw["public_metadata"] == obj["public_metadata"]
    assert row["raw_digest"] == model.digest(row["raw"])
    assert json.dumps(obj, sort_keys=True) == original  # the input is not mutated


@pytest.mark.parametrize("entity", [model.USERS, model.ORGANIZATIONS])
def test_private_metadata_included_by_default(entity):
    obj = fx.example(entity)
    row = NORMALIZERS[entity](obj)
    assert row["private_metadata"] == model.canonical_json(obj["private_metadata"])
    assert json.loads(row["raw"])["private_metadata"] == obj["private_metadata"]


def test_private_metadata_excluded_through_the_builder():
    builder = FrameBuilder(model.MEMBERSHIPS, include_private_metadata=False)
    builder.add_page(fx.list_memberships())
    raw = json.loads(builder.frame().loc[0, "raw"])
    assert "private_metadata" not in raw and "private_metadata" not in raw["organization"]


# ------------------------------------------------------------------ page accumulator


def _ids_and_updated(frame):
    return sorted(zip(frame["id"], frame["updated_at"]))


def test_builder_without_pages_gives_an_empty_contract_frame():
    builder = FrameBuilder(model.ORGANIZATIONS)
    frame = builder.frame()
    assert frame.empty and _dtypes(model.ORGANIZATIONS) == {c: str(t) for c, t in frame.dtypes.items()}
    assert builder.repeats_dropped == 0


def test_builder_unknown_entity():
    with pytest.raises(ValueError):
        FrameBuilder("sessions")


def test_builder_concatenates_pages():
    builder = FrameBuilder(model.USERS)
    builder.add_page([fx.user("user_1", "a@x"), fx.user("user_2", "b@x")])
    builder.add_page([])
    builder.add_page([fx.user("user_3", "c@x")])
    frame = builder.frame()
    assert frame["id"].tolist() == ["user_1", "user_2", "user_3"]
    assert builder.rows_seen == 3 and builder.repeats_dropped == 0
    assert _dtypes(model.USERS) == {c: str(t) for c, t in frame.dtypes.items()}
    assert frame.index.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("pages", "kept", "dropped"),
    [
        pytest.param(
            [[("user_1", 1, "old"), ("user_2", 1, "x")], [("user_1", 5, "new")]],
            {"user_1": "new", "user_2": "x"}, 1, id="later-page-newer",
        ),
        pytest.param(
            [[("user_1", 5, "new")], [("user_1", 1, "old")]],
            {"user_1": "new"}, 1, id="later-page-older",
        ),
        pytest.param(
            [[("user_1", 3, "first")], [("user_1", 3, "second")], [("user_1", 3, "third")]],
            {"user_1": "third"}, 2, id="tie-last-seen",
        ),
        pytest.param(
            [[("user_1", None, "no-time")], [("user_1", 1, "timed")]],
            {"user_1": "timed"}, 1, id="null-updated-at-is-oldest",
        ),
        pytest.param(
            [[("user_1", 2, "a"), ("user_1", 3, "b")]],
            {"user_1": "b"}, 1, id="repeat-within-a-page",
        ),
    ],
)
def test_builder_dedup_keeps_latest_updated_at(pages, kept, dropped):
    builder = FrameBuilder(model.USERS)
    for page in pages:
        builder.add_page([fx.user(i, f"{i}@x", updated_at=u, first_name=name) for i, u, name in page])
    frame = builder.frame()
    assert dict(zip(frame["id"], frame["first_name"])) == kept
    assert builder.repeats_dropped == dropped
    assert len(frame) == len(kept)


def test_builder_frame_can_be_asked_again_and_pages_added_after():
    builder = FrameBuilder(model.USERS)
    builder.add_page([fx.user("user_1", updated_at=1), fx.user("user_2")])
    builder.add_page([fx.user("user_1", updated_at=2)])
    assert len(builder.frame()) == 2 and builder.repeats_dropped == 1
    builder.add_page([fx.user("user_3")])
    frame = builder.frame()
    assert sorted(frame["id"]) == ["user_1", "user_2", "user_3"]
    assert builder.repeats_dropped == 1


pages_strategy = st.lists(
    st.lists(st.tuples(st.integers(0, 6), st.one_of(st.none(), st.integers(0, 3))), max_size=8),
    max_size=5,
)


@settings(max_examples=100, deadline=None)
@given(pages_strategy)
def test_builder_dedup_matches_a_plain_reference(pages):
    builder = FrameBuilder(model.USERS)
    expected: dict[str, tuple] = {}
    seen = 0
    for p, page in enumerate(pages):
        objects = []
        for r, (n, updated) in enumerate(page):
            id_, tag = f"user_{n}", f"{p}.{r}"
            objects.append(fx.user(id_, updated_at=updated, first_name=tag))
            rank = -1 if updated is None else updated
            if id_ not in expected or rank >= expected[id_][0]:
                expected[id_] = (rank, tag)
            seen += 1
        builder.add_page(objects)
    frame = builder.frame()
    assert dict(zip(frame["id"], frame["first_name"])) == {k: v[1] for k, v in expected.items()}
    assert builder.repeats_dropped == seen - len(expected)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 120), st.data())
def test_drop_rows_matches_a_filter(n, data):
    """The chunk-wise row selections (frames of many Arrow chunks) give what pandas gives."""
    chunk = st.integers(1, max(1, n))
    sizes, left = [], n
    while left:
        sizes.append(min(left, data.draw(chunk)))
        left -= sizes[-1]
    pages = [
        [fx.user(f"user_{i}", first_name=None if i % 7 == 0 else f"n{i}", updated_at=i) for i in range(start, start + size)]
        for start, size in zip(np.cumsum([0, *sizes[:-1]]).tolist(), sizes)
    ]
    builder = FrameBuilder(model.USERS)
    for page in pages:
        builder.add_page(page)
    frame = builder.frame()
    positions = np.array(sorted(data.draw(st.sets(st.integers(0, n - 1), max_size=n))), dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    keep[positions] = False
    pd.testing.assert_frame_equal(drop_rows(frame, positions), frame[keep].reset_index(drop=True))
    pd.testing.assert_frame_equal(select_rows(frame, ~keep), frame[~keep].reset_index(drop=True))
    pd.testing.assert_frame_equal(select_rows(frame, keep), frame[keep].reset_index(drop=True))


# ------------------------------------------------------------------ roles, permissions, invitations, domains


def test_a_role_holds_the_keys_of_the_permissions_it_grants():
    role = fx.role("role_1", permissions=[fx.permission("perm_1", "org:a"), fx.permission("perm_2", "org:b"), "org:c", {"id": "x"}])
    row = normalize_one("organization_roles", role)
    assert json.loads(row["permissions"]) == ["org:a", "org:b", "org:c"]
    assert row["key"] == "org:billing" and row["is_creator_eligible"] is False
    assert normalize_one("organization_roles", {"id": "role_2"})["permissions"] is None


def test_an_invitation_leaves_its_organizations_public_data_out_of_raw():
    listed = fx.invitation("orginv_1")  # as the instance-wide list shows it
    under_organization = {k: v for k, v in listed.items() if k != "public_organization_data"}
    row = normalize_one("organization_invitations", listed)
    assert "public_organization_data" not in json.loads(row["raw"])
    assert row["raw_digest"] == normalize_one("organization_invitations", under_organization)["raw_digest"]
    assert (row["organization_id"], row["status"], row["inviter_id"]) == ("org_1", "pending", "user_1")
    assert row["expires_at"] == listed["expires_at"]
    hidden = normalize_one("organization_invitations", listed, include_private_metadata=False)
    assert hidden["private_metadata"] is None and "private_metadata" not in json.loads(hidden["raw"])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "verified"),
        ({"affiliation_verification": None, "verification": None}, None),
        ({"affiliation_verification": None, "verification": {"status": "unverified"}}, "unverified"),  # the alias only
        ({"affiliation_verification": "odd", "verification": None}, None),
    ],
)
def test_a_domains_verification_status(fields, expected):
    row = normalize_one("organization_domains", {**fx.domain("orgdmn_1"), **fields})
    assert row["verification_status"] == expected
    assert (row["organization_id"], row["enrollment_mode"]) == ("org_1", "automatic_invitation")
