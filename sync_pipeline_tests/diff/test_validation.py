"""Validation problems: reported, and the rows are still mirrored."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_pipeline import model
from sync_pipeline.diff.rules import plan_sync
from sync_pipeline.diff.validation import RULES, validate
from sync_pipeline.text_columns import is_in
from sync_pipeline_tests import fixtures as fx

FULL = model.SyncScope()
SCOPED = model.SyncScope(user_ids=("user_1",))


def problems(snapshot: model.Snapshot) -> list[tuple[str, str, str]]:
    frame = validate(snapshot)
    assert list(frame.columns) == ["entity", "id", "problem"]
    return sorted(zip(frame["entity"], frame["id"], frame["problem"]))


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        pytest.param(fx.user("user_1", "a@x"), [], id="fine"),
        pytest.param(fx.user("user_1"), ["no e-mail"], id="no-addresses"),
        pytest.param(fx.user("user_1", "   "), ["no e-mail"], id="blank-address"),
        pytest.param(fx.user("user_1", "a@x", first_name=None, last_name=None), ["no name"], id="no-name"),
        pytest.param(fx.user("user_1", "a@x", first_name=" ", last_name=""), ["no name"], id="blank-name"),
        pytest.param(fx.user("user_1", "a@x", first_name=None, last_name=None, username="zoe"), [], id="username-is-a-name"),
        pytest.param(fx.user("user_1", "a@x", first_name=None), [], id="last-name-is-a-name"),
        pytest.param(fx.user("user_1", first_name=None, last_name=None), ["no e-mail", "no name"], id="both"),
    ],
)
@pytest.mark.parametrize("scope", [FULL, SCOPED], ids=["full", "scoped"])
def test_user_problems_in_any_scope(user, expected, scope):
    assert problems(fx.clerk_snapshot([user], scope=scope)) == [("users", "user_1", p) for p in expected]


def test_sparse_fixture_user_has_a_username_and_an_address():
    assert problems(fx.clerk_snapshot([fx.load("user_sparse")])) == []


@pytest.mark.parametrize(
    ("users", "orgs", "expected"),
    [
        pytest.param(["user_1"], ["org_1"], [], id="both-known"),
        pytest.param([], ["org_1"], ["unknown user user_1"], id="unknown-user"),
        pytest.param(["user_1"], [], ["unknown organization org_1"], id="unknown-organization"),
        pytest.param([], [], ["unknown organization org_1", "unknown user user_1"], id="both-unknown"),
    ],
)
def test_membership_references_only_in_full_scope(users, orgs, expected):
    args = dict(
        users=[fx.user(i, f"{i}@x") for i in users],
        organizations=[fx.organization(i) for i in orgs],
        memberships=[fx.membership("orgmem_1", "org_1", "user_1")],
    )
    assert problems(fx.clerk_snapshot(**args, scope=FULL)) == [("organization_memberships", "orgmem_1", p) for p in expected]
    assert problems(fx.clerk_snapshot(**args, scope=SCOPED)) == []


def test_membership_without_user_data_is_an_unknown_user():
    obj = fx.membership("orgmem_1", "org_1", "user_1")
    del obj["public_user_data"]
    snapshot = fx.clerk_snapshot(organizations=[fx.organization("org_1")], memberships=[obj])
    assert problems(snapshot) == [("organization_memberships", "orgmem_1", "unknown user (null)")]


def test_rows_with_problems_are_still_mirrored():
    clerk = fx.clerk_snapshot([fx.user("user_1")], [], [fx.membership("orgmem_1", "org_1", "user_1")])
    plan = plan_sync(clerk, fx.mirror_snapshot(), live_rows_before={e: 0 for e in model.ENTITIES})
    assert len(plan.validation_problems) == 2
    assert plan.entity(model.USERS).counts()["insert"] == 1
    assert plan.entity(model.MEMBERSHIPS).counts()["insert"] == 1


@pytest.mark.parametrize("scope", [FULL, SCOPED], ids=["full", "scoped"])
def test_replaced_nuls_are_reported_through_the_plan(scope):
    clerk = fx.clerk_snapshot(
        [fx.user("user_1", "a@x"), fx.user("user_2", "b@x")], [fx.organization("org_1")], scope=scope
    )
    clerk.nul_replaced = {model.USERS: frozenset({"user_2"}), model.ORGANIZATIONS: frozenset({"org_1", "org_gone"})}
    plan = plan_sync(clerk, fx.mirror_snapshot(), live_rows_before={e: 0 for e in model.ENTITIES})
    found = sorted(zip(plan.validation_problems["entity"], plan.validation_problems["id"], plan.validation_problems["problem"]))
    # An id no longer in the frame (a repeat dropped, say) names no row.
    assert found == [("organizations", "org_1", "NUL replaced"), ("users", "user_2", "NUL replaced")]


def test_rules_table_names_each_problem_once():
    assert len({(r.entity, r.problem) for r in RULES}) == len(RULES)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from("abcdefgh")), max_size=12),
    st.lists(st.one_of(st.none(), st.sampled_from("abcdefgh")), max_size=40),
)
def test_is_in_matches_pandas_and_never_matches_null(values, others):
    got = is_in(pd.Series(values, dtype="string"), pd.Series(others, dtype="string"))
    expected = [v is not None and v in set(others) for v in values]
    assert got.tolist() == expected
