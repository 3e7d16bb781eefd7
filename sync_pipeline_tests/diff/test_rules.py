"""The diff's change, delete and duplicate rules, one rule per case."""

from __future__ import annotations

import pandas as pd
import pytest

from sync_pipeline import model
from sync_pipeline.entities import catalog
from sync_pipeline.diff.plan import DELETE, INSERT, RESTORE, UPDATE, SyncPlan
from sync_pipeline.diff.rules import plan_leftover, plan_sync
from sync_pipeline_tests import fixtures as fx

U, O, M = model.USERS, model.ORGANIZATIONS, model.MEMBERSHIPS


def plan(clerk: model.Snapshot, mirror: model.Snapshot) -> SyncPlan:
    live = {e: int(mirror.frame(e)["deleted_at"].isna().sum()) for e in model.ENTITIES}
    return plan_sync(clerk, mirror, live_rows_before=live)


def kinds(p: SyncPlan, entity: str) -> dict[str, str]:
    upserts = p.entity(entity).upserts
    return dict(zip(upserts["id"], upserts["change_kind"]))


def changed(p: SyncPlan, entity: str) -> dict[str, list[str]]:
    upserts = p.entity(entity).upserts
    return dict(zip(upserts["id"], upserts["changed_columns"]))


def deletes(p: SyncPlan, entity: str) -> dict[str, str]:
    d = p.entity(entity).deletes
    return dict(zip(d["id"], d["reason"]))


def dups(p: SyncPlan, entity: str) -> list[tuple]:
    d = p.entity(entity).duplicates
    return sorted(zip(d["id"], d["key"], d["kept_id"], d["source"]))


def snapshots(entity: str, clerk_objects: list[dict], mirror_objects: list[dict], deleted=None):
    clerk = fx.clerk_snapshot(**{_arg(entity): clerk_objects})
    mirror = fx.mirror_snapshot(**{_arg(entity): mirror_objects}, deleted=deleted)
    return clerk, mirror


def _arg(entity: str) -> str:
    return {U: "users", O: "organizations", M: "memberships"}.get(entity, entity)


def make(entity: str, id: str, **fields) -> dict:
    if entity == U:
        return fx.user(id, f"{id}@example.com", **fields)
    if entity == O:
        return fx.organization(id, **fields)
    if entity == M:
        return fx.membership(id, "org_1", f"user_of_{id}", **fields)
    return {**fx.example(entity, id), **fields}


# ------------------------------------------------------------------ insert / no-op


@pytest.mark.parametrize("entity", model.ENTITIES)
def test_insert(entity):
    clerk, mirror = snapshots(entity, [make(entity, "x_1")], [])
    p = plan(clerk, mirror)
    assert kinds(p, entity) == {"x_1": INSERT}
    assert changed(p, entity) == {"x_1": []}
    assert p.entity(entity).counts() == {INSERT: 1, UPDATE: 0, RESTORE: 0, DELETE: 0}
    upserts = p.entity(entity).upserts
    assert list(upserts.columns) == [*model.COLUMNS[entity], "change_kind", "changed_columns"]
    assert upserts.loc[0, "raw"] == clerk.frame(entity).loc[0, "raw"]


@pytest.mark.parametrize("entity", model.ENTITIES)
def test_unchanged_row_appears_nowhere(entity):
    obj = make(entity, "x_1")
    clerk, mirror = snapshots(entity, [obj], [obj])
    p = plan(clerk, mirror)
    assert p.is_noop
    assert p.entity(entity).upserts.empty and p.entity(entity).deletes.empty
    assert list(p.entity(entity).upserts.columns)[-2:] == ["change_kind", "changed_columns"]
    assert p.entity(entity).duplicates.empty


def test_empty_snapshots_plan_nothing():
    p = plan(fx.clerk_snapshot(), fx.mirror_snapshot())
    assert p.is_noop and p.email_conflicts.empty and p.validation_problems.empty
    assert p.counts() == {e: {k: 0 for k in (INSERT, UPDATE, RESTORE, DELETE)} for e in model.ENTITIES}


# ------------------------------------------------------------------ update, per column kind


@pytest.mark.parametrize(
    ("entity", "before", "after", "expected"),
    [
        pytest.param(U, {"first_name": "Zoë"}, {"first_name": "Zoe"}, ["first_name"], id="text"),
        pytest.param(U, {"username": None}, {"username": "zoe"}, ["username"], id="text-NA-to-value"),
        pytest.param(U, {"external_id": "ext-1"}, {"external_id": None}, ["external_id"], id="text-value-to-NA"),
        pytest.param(U, {"banned": False}, {"banned": True}, ["banned"], id="bool"),
        pytest.param(U, {"banned": None}, {"banned": False}, ["banned"], id="bool-NA-to-value"),
        pytest.param(U, {"updated_at": 1}, {"updated_at": 2}, ["updated_at"], id="millis"),
        pytest.param(U, {"created_at": None}, {"created_at": 5}, ["created_at"], id="millis-NA-to-value"),
        pytest.param(U, {"public_metadata": {"a": 1}}, {"public_metadata": {"a": 2}}, ["public_metadata"], id="json"),
        pytest.param(U, {"private_metadata": None}, {"private_metadata": {}}, ["private_metadata"], id="json-null-to-empty"),
        pytest.param(U, {"public_metadata": {"a": [1]}}, {"public_metadata": None}, ["public_metadata"], id="json-to-null"),
        pytest.param(U, {"last_sign_in_at": 1}, {"last_sign_in_at": 2}, [], id="raw-only"),
        pytest.param(O, {"members_count": None}, {"members_count": 3}, ["members_count"], id="int-NA-to-value"),
        pytest.param(O, {"members_count": 3}, {"members_count": 4}, ["members_count"], id="int"),
        pytest.param(O, {"slug": "a", "name": "A"}, {"slug": "b", "name": "B"}, ["name", "slug"], id="two-columns"),
        pytest.param(M, {"role": "org:member"}, {"role": "org:admin"}, ["role"], id="membership-role"),
        pytest.param(M, {"permissions": ["a"]}, {"permissions": ["a", "b"]}, ["permissions"], id="json-array"),
    ],
)
def test_update_lists_exactly_the_changed_columns(entity, before, after, expected):
    clerk, mirror = snapshots(entity, [make(entity, "x_1", **after)], [make(entity, "x_1", **before)])
    p = plan(clerk, mirror)
    assert kinds(p, entity) == {"x_1": UPDATE}
    order = model.compared_columns(entity)
    assert changed(p, entity) == {"x_1": sorted([*expected, "raw_digest"], key=order.index)}
    assert p.entity(entity).deletes.empty


def test_update_of_the_primary_email():
    clerk, mirror = snapshots(U, [fx.user("user_1", "new@x")], [fx.user("user_1", "old@x")])
    assert changed(plan(clerk, mirror), U) == {"user_1": ["primary_email", "raw_digest"]}


def test_update_when_only_the_mirror_column_drifted():
    """The mirror row was edited behind the sync's back: same raw, a column differs."""
    obj = fx.user("user_1", "a@x")
    clerk, mirror = snapshots(U, [obj], [obj])
    mirror.users.loc[0, "first_name"] = "Tampered"
    p = plan(clerk, mirror)
    assert kinds(p, U) == {"user_1": UPDATE}
    assert changed(p, U) == {"user_1": ["first_name"]}


def test_update_when_the_mirror_has_no_digest():
    obj = fx.organization("org_1")
    clerk, mirror = snapshots(O, [obj], [obj])
    mirror.organizations.loc[0, "raw_digest"] = pd.NA
    assert changed(plan(clerk, mirror), O) == {"org_1": ["raw_digest"]}


def test_only_changed_rows_are_upserted_among_many():
    objs = [fx.user(f"user_{i}", f"{i}@x") for i in range(6)]
    new = [dict(o) for o in objs]
    new[2]["first_name"] = "Changed"
    new[4]["banned"] = True
    clerk, mirror = snapshots(U, new, objs)
    p = plan(clerk, mirror)
    assert kinds(p, U) == {"user_2": UPDATE, "user_4": UPDATE}
    assert changed(p, U) == {"user_2": ["first_name", "raw_digest"], "user_4": ["banned", "raw_digest"]}


@pytest.mark.parametrize("entity", [e.name for e in catalog.ENTITIES if e.has_private_metadata or e.embedded_private])
def test_turning_private_metadata_off_updates_the_mirror(entity):
    obj = fx.example(entity)
    clerk = fx.clerk_snapshot(**{_arg(entity): [obj]})
    clerk = model.Snapshot(**{entity: fx.frame(entity, [obj], include_private_metadata=False)})
    mirror = fx.mirror_snapshot(**{_arg(entity): [obj]})
    expected = ["raw_digest"] if entity == M else ["private_metadata", "raw_digest"]
    assert changed(plan(clerk, mirror), entity) == {obj["id"]: expected}


# ------------------------------------------------------------------ restore


@pytest.mark.parametrize("entity", model.ENTITIES)
def test_restore_of_a_soft_deleted_row(entity):
    obj = make(entity, "x_1")
    clerk, mirror = snapshots(entity, [obj], [obj], deleted={"x_1": fx.T0})
    p = plan(clerk, mirror)
    assert kinds(p, entity) == {"x_1": RESTORE}
    assert changed(p, entity) == {"x_1": []}


def test_restore_lists_what_changed_meanwhile():
    clerk, mirror = snapshots(U, [fx.user("user_1", "a@x", first_name="New")], [fx.user("user_1", "a@x")], deleted={"user_1": 1})
    p = plan(clerk, mirror)
    assert kinds(p, U) == {"user_1": RESTORE}
    assert changed(p, U) == {"user_1": ["first_name", "raw_digest"]}


def test_soft_deleted_and_gone_from_clerk_stays_as_is():
    clerk, mirror = snapshots(U, [], [fx.user("user_1", "a@x")], deleted={"user_1": 1})
    assert plan(clerk, mirror).is_noop


# ------------------------------------------------------------------ delete


@pytest.mark.parametrize("entity", model.ENTITIES)
def test_orphan_delete(entity):
    clerk, mirror = snapshots(entity, [make(entity, "x_1")], [make(entity, "x_1"), make(entity, "x_2")])
    p = plan(clerk, mirror)
    assert deletes(p, entity) == {"x_2": "orphan"}
    assert p.entity(entity).upserts.empty
    assert p.entity(entity).counts()[DELETE] == 1
    assert list(p.entity(entity).deletes.columns) == ["id", "reason"]


def test_live_rows_before_is_passed_through():
    clerk, mirror = snapshots(U, [], [fx.user("user_1")])
    p = plan_sync(clerk, mirror, live_rows_before={U: 1000, O: 5, M: 7})
    assert {e: p.entity(e).live_rows_before for e in (U, O, M)} == {U: 1000, O: 5, M: 7}


def _world():
    users = [fx.user("user_1", "a@x"), fx.user("user_2", "b@x")]
    orgs = [fx.organization("org_1"), fx.organization("org_2")]
    mems = [
        fx.membership("orgmem_11", "org_1", "user_1"),
        fx.membership("orgmem_12", "org_1", "user_2"),
        fx.membership("orgmem_21", "org_2", "user_1"),
        fx.membership("orgmem_22", "org_2", "user_2"),
    ]
    return users, orgs, mems


def test_cascade_from_a_deleted_user():
    users, orgs, mems = _world()
    mirror = fx.mirror_snapshot(users, orgs, mems)
    clerk = fx.clerk_snapshot(users[1:], orgs, [m for m in mems if m["public_user_data"]["user_id"] != "user_1"])
    p = plan(clerk, mirror)
    assert deletes(p, U) == {"user_1": "orphan"}
    assert deletes(p, M) == {"orgmem_11": "cascade:user user_1", "orgmem_21": "cascade:user user_1"}
    assert p.entity(O).deletes.empty


def test_cascade_from_a_deleted_organization():
    users, orgs, mems = _world()
    mirror = fx.mirror_snapshot(users, orgs, mems)
    clerk = fx.clerk_snapshot(users, orgs[:1], [m for m in mems if m["organization"]["id"] != "org_2"])
    p = plan(clerk, mirror)
    assert deletes(p, O) == {"org_2": "orphan"}
    assert deletes(p, M) == {"orgmem_21": "cascade:organization org_2", "orgmem_22": "cascade:organization org_2"}


def test_cascade_names_the_user_when_both_go():
    users, orgs, mems = _world()
    mirror = fx.mirror_snapshot(users, orgs, mems)
    clerk = fx.clerk_snapshot(users[1:], orgs[:1], [mems[1]])
    assert deletes(plan(clerk, mirror), M) == {
        "orgmem_11": "cascade:user user_1",
        "orgmem_21": "cascade:user user_1",
        "orgmem_22": "cascade:organization org_2",
    }


def test_cascade_skipped_when_clerk_still_lists_the_membership():
    users, orgs, mems = _world()
    mirror = fx.mirror_snapshot(users, orgs, mems)
    clerk = fx.clerk_snapshot(users[1:], orgs, mems)  # user_1 gone, its memberships still listed
    p = plan(clerk, mirror)
    assert deletes(p, U) == {"user_1": "orphan"}
    assert p.entity(M).deletes.empty and p.entity(M).upserts.empty


def test_cascade_only_reaches_live_memberships():
    users, orgs, mems = _world()
    mirror = fx.mirror_snapshot(users, orgs, mems, deleted={"orgmem_11": 1})
    clerk = fx.clerk_snapshot(users[1:], orgs, [mems[1], mems[3]])
    assert deletes(plan(clerk, mirror), M) == {"orgmem_21": "cascade:user user_1"}


def test_membership_of_an_already_deleted_user_is_an_orphan():
    users, orgs, mems = _world()
    mirror = fx.mirror_snapshot(users, orgs, mems, deleted={"user_1": 1})
    clerk = fx.clerk_snapshot(users[1:], orgs, [mems[1], mems[2], mems[3]])
    p = plan(clerk, mirror)
    assert p.entity(U).deletes.empty
    assert deletes(p, M) == {"orgmem_11": "orphan"}


# ------------------------------------------------------------------ duplicates


def test_clerk_rows_repeated_by_id_keep_the_latest():
    old = fx.user("user_1", "a@x", first_name="Old", updated_at=1)
    new = fx.user("user_1", "a@x", first_name="New", updated_at=2)
    users = pd.concat([fx.frame(U, [new]), fx.frame(U, [old])], ignore_index=True)
    clerk = model.Snapshot(users=users)
    p = plan(clerk, fx.mirror_snapshot())
    assert kinds(p, U) == {"user_1": INSERT}
    assert p.entity(U).upserts.loc[0, "first_name"] == "New"
    assert dups(p, U) == [("user_1", "user_1", "user_1", "clerk")]


def test_clerk_memberships_of_one_pair_keep_the_latest():
    a = fx.membership("orgmem_a", "org_1", "user_1", updated_at=2)
    b = fx.membership("orgmem_b", "org_1", "user_1", updated_at=1)
    other = fx.membership("orgmem_c", "org_1", "user_2")
    clerk = fx.clerk_snapshot(memberships=[b, a, other])
    p = plan(clerk, fx.mirror_snapshot())
    assert kinds(p, M) == {"orgmem_a": INSERT, "orgmem_c": INSERT}
    assert dups(p, M) == [("orgmem_b", "org_1/user_1", "orgmem_a", "clerk")]


def test_clerk_pair_duplicate_held_live_in_the_mirror_is_deleted():
    a = fx.membership("orgmem_a", "org_1", "user_1", updated_at=1)
    b = fx.membership("orgmem_b", "org_1", "user_1", updated_at=2)
    p = plan(fx.clerk_snapshot(memberships=[a, b]), fx.mirror_snapshot(memberships=[a]))
    assert kinds(p, M) == {"orgmem_b": INSERT}
    assert deletes(p, M) == {"orgmem_a": "duplicate"}


def test_mirror_memberships_of_one_pair_keep_the_one_clerk_has():
    a = fx.membership("orgmem_a", "org_1", "user_1", updated_at=1)
    b = fx.membership("orgmem_b", "org_1", "user_1", updated_at=5)  # newer, but Clerk has a
    p = plan(fx.clerk_snapshot(memberships=[a]), fx.mirror_snapshot(memberships=[a, b]))
    assert deletes(p, M) == {"orgmem_b": "duplicate"}
    assert dups(p, M) == [("orgmem_b", "org_1/user_1", "orgmem_a", "mirror")]
    assert p.entity(M).upserts.empty


def test_mirror_memberships_of_one_pair_else_keep_the_newest():
    a = fx.membership("orgmem_a", "org_1", "user_1", updated_at=1)
    b = fx.membership("orgmem_b", "org_1", "user_1", updated_at=5)
    c = fx.membership("orgmem_c", "org_1", "user_1", updated_at=9)
    p = plan(fx.clerk_snapshot(memberships=[c]), fx.mirror_snapshot(memberships=[a, b]))
    assert kinds(p, M) == {"orgmem_c": INSERT}
    assert dups(p, M) == [("orgmem_a", "org_1/user_1", "orgmem_b", "mirror")]
    assert deletes(p, M) == {"orgmem_a": "duplicate", "orgmem_b": "orphan"}


def test_soft_deleted_mirror_membership_is_no_duplicate():
    a = fx.membership("orgmem_a", "org_1", "user_1")
    b = fx.membership("orgmem_b", "org_1", "user_1")
    p = plan(fx.clerk_snapshot(memberships=[a]), fx.mirror_snapshot(memberships=[a, b], deleted={"orgmem_b": 1}))
    assert p.is_noop and p.entity(M).duplicates.empty


def test_mirror_rows_repeated_by_id_are_reported_and_the_live_one_used():
    obj = fx.user("user_1", "a@x")
    live = fx.mirror_frame(U, [obj])
    gone = fx.mirror_frame(U, [obj], deleted={"user_1": 1})
    mirror = model.Snapshot(**{**fx.mirror_snapshot().frames, "users": pd.concat([gone, live], ignore_index=True)})
    p = plan(fx.clerk_snapshot([obj]), mirror)
    assert p.is_noop
    assert dups(p, U) == [("user_1", "user_1", "user_1", "mirror")]


# ------------------------------------------------------------------ frames as adapters give them


def test_mirror_frames_with_extra_columns_and_object_dtypes():
    obj = fx.user("user_1", "a@x")
    mirror = fx.mirror_snapshot([obj])
    users = mirror.users.astype(object)
    users["synced_at"] = 123
    mirror = model.Snapshot(**{**mirror.frames, "users": users})
    assert plan(fx.clerk_snapshot([obj]), mirror).is_noop


def test_the_fixtures_against_an_empty_mirror_and_back():
    clerk = fx.clerk_snapshot(fx.list_users(), fx.list_organizations(), fx.list_memberships())
    p = plan(clerk, fx.mirror_snapshot())
    assert {e: p.counts()[e] for e in (U, O, M)} == {
        U: {INSERT: 2, UPDATE: 0, RESTORE: 0, DELETE: 0},
        O: {INSERT: 1, UPDATE: 0, RESTORE: 0, DELETE: 0},
        M: {INSERT: 1, UPDATE: 0, RESTORE: 0, DELETE: 0},
    }
    mirror = fx.mirror_snapshot(fx.list_users(), fx.list_organizations(), fx.list_memberships())
    assert plan(clerk, mirror).is_noop


def test_plan_sync_leaves_its_inputs_alone():
    users, orgs, mems = _world()
    changed_user = fx.user("user_1", "a@x", first_name="New")
    clerk = fx.clerk_snapshot([changed_user, users[1]], orgs[:1], mems[:2])
    clerk.users = pd.concat([clerk.users, clerk.users.iloc[:1]], ignore_index=True)  # a repeat to drop
    mirror = fx.mirror_snapshot(users, orgs, mems, deleted={"org_2": 1})
    snapshots_ = {"clerk": clerk, "mirror": mirror}
    before = {(n, e): s.frame(e).copy() for n, s in snapshots_.items() for e in model.ENTITIES}
    p = plan(clerk, mirror)
    assert not p.is_noop
    for (n, e), frame in before.items():
        pd.testing.assert_frame_equal(snapshots_[n].frame(e), frame)


def test_a_deleted_organization_takes_its_invitations_and_domains_along():
    org = fx.organization("org_1")
    invitation, domain = fx.invitation("orginv_1", "org_1"), fx.domain("orgdmn_1", "org_1")
    kept = fx.domain("orgdmn_2", "org_2")
    mirror = fx.mirror_snapshot(
        organizations=[org, fx.organization("org_2")],
        organization_invitations=[invitation],
        organization_domains=[domain, kept],
    )
    clerk = fx.clerk_snapshot(organizations=[fx.organization("org_2")], organization_domains=[kept])
    p = plan(clerk, mirror)
    assert deletes(p, O) == {"org_1": "orphan"}
    assert deletes(p, "organization_invitations") == {"orginv_1": "cascade:organization org_1"}
    assert deletes(p, "organization_domains") == {"orgdmn_1": "cascade:organization org_1"}


# ------------------------------------------------------------------ the read-back's leftover


def test_the_leftover_a_read_back_plans_is_the_plan_s_writes():
    """plan_leftover (the matches_clerk read-back) finds exactly the writes plan_sync finds:
    an update, an insert, a delete; only the plan's reports (validation, conflicts) are left out."""
    objs = [fx.user(f"user_{i}", f"{i}@x") for i in range(6)]
    clerk_objs = [dict(o) for o in objs[:5]] + [fx.user("user_new", "new@x")]
    clerk_objs[2]["first_name"] = "Changed"
    clerk, mirror = snapshots(U, clerk_objs, objs)
    live = {e: int(mirror.frame(e)["deleted_at"].isna().sum()) for e in model.ENTITIES}
    full, leftover = plan_sync(clerk, mirror, live_rows_before=live), plan_leftover(clerk, mirror, live_rows_before=live)
    assert kinds(leftover, U) == kinds(full, U) == {"user_2": UPDATE, "user_new": INSERT}
    assert changed(leftover, U) == changed(full, U)
    assert deletes(leftover, U) == deletes(full, U) == {"user_5": "orphan"}
    assert leftover.counts() == full.counts()
    assert leftover.email_conflicts.empty and leftover.validation_problems.empty
    applied = fx.mirror_snapshot(users=clerk_objs)  # the mirror once the plan is applied
    assert plan_leftover(clerk, applied, live_rows_before=live).is_noop
