"""The application tables' diff, pure: frames in, a plan out, no database."""

from __future__ import annotations

import pandas as pd

from sync_pipeline.app_tables.catalog import AppTable
from sync_pipeline.app_tables.config import parse_config
from sync_pipeline.app_tables.rules import plan_app_table
from sync_pipeline.app_tables.snapshot import AppTableState
from sync_pipeline import model
from sync_pipeline.diff.guard import delete_guard_violations
from sync_pipeline.diff.plan import DUPLICATE, MISSING, ORPHANED
from sync_pipeline.diff.rules import plan_sync
from sync_pipeline.model import SyncScope
from sync_pipeline_tests import fixtures as fx


def table(entry: str) -> AppTable:
    spec = parse_config(f"tables:\n  - {entry}\n", "t.yaml").tables[0]
    return AppTable(spec=spec, columns=(), primary_key=("id",))


def state(app_table: AppTable, rows: list[tuple]) -> AppTableState:
    """Rows as (row_key, user_id, organization_id[, unique_key, keep_rank, anonymized])."""
    full = [tuple(row) + (None, None, False)[len(row) - 3 :] for row in rows]
    columns = list(zip(*full)) if full else [[]] * 6
    frame = pd.DataFrame(
        {
            "row_key": pd.array(columns[0], dtype="string"),
            "user_id": pd.array(columns[1], dtype="string"),
            "organization_id": pd.array(columns[2], dtype="string"),
            "unique_key": pd.array(columns[3], dtype="string"),
            "keep_rank": pd.array(columns[4], dtype="Int64"),
            "anonymized": pd.array(columns[5], dtype="boolean"),
        }
    )
    return AppTableState(table=app_table, rows=frame, total_rows=len(rows))


CLERK = fx.clerk_snapshot(
    users=[fx.user("user_1"), fx.user("user_2")],
    organizations=[fx.organization("org_1"), fx.organization("org_2")],
    memberships=[fx.membership("orgmem_1", "org_1", "user_1"), fx.membership("orgmem_2", "org_2", "user_2")],
)


def scoped(users=(), orgs=()) -> object:  # noqa: ANN001
    """The Clerk snapshot as a scoped sync of these ids would read it."""
    scope = SyncScope(user_ids=tuple(users), organization_ids=tuple(orgs))
    memberships = [m for m in (fx.membership("orgmem_1", "org_1", "user_1"), fx.membership("orgmem_2", "org_2", "user_2"))
                   if m["public_user_data"]["user_id"] in users or m["organization"]["id"] in orgs]
    return fx.clerk_snapshot(
        users=[fx.user(u) for u in users if u in ("user_1", "user_2")],
        organizations=[fx.organization(o) for o in orgs if o in ("org_1", "org_2")],
        memberships=memberships,
        scope=scope,
    )


PROFILE = "{table: profile, user_id_column: u, organization_id_column: o, orphans: delete, provision: membership}"


def test_a_membership_row_is_orphaned_when_the_membership_goes_even_if_user_and_organization_stay() -> None:
    rows = [
        ("a", "user_1", "org_1"),  # live membership
        ("b", "user_1", "org_2"),  # user and org live, but no such membership: the user left
        ("c", "user_9", "org_1"),  # user gone
        ("d", "user_2", None),  # names only a live user
        ("e", None, "org_9"),  # names only a gone organization
        ("f", None, None),  # names nothing: never orphaned
    ]

    plan = plan_app_table(state(table(PROFILE), rows), CLERK)

    assert dict(zip(plan.orphans["row_key"], plan.orphans["reason"])) == {
        "b": "membership org_2/user_1 is gone",
        "c": "membership org_1/user_9 is gone",
        "e": "organization org_9 is gone",
    }
    assert list(plan.missing["reason"]) == ["membership org_2/user_2"]


def test_the_owner_decides_what_orphans_a_row() -> None:
    rows = [("a", "user_1", "org_9"), ("b", "user_9", "org_1")]
    by_user = table("{table: t, user_id_column: u, organization_id_column: o, owner: user, orphans: delete}")
    by_org = table("{table: t, user_id_column: u, organization_id_column: o, owner: organization, orphans: delete}")

    assert list(plan_app_table(state(by_user, rows), CLERK).orphans["row_key"]) == ["b"]
    assert list(plan_app_table(state(by_org, rows), CLERK).orphans["row_key"]) == ["a"]


def test_a_scoped_snapshot_judges_only_the_rows_it_can_answer_for() -> None:
    tasks = table("{table: tasks, user_id_column: u, orphans: delete, provision: user}")
    rows = [("a", "user_1", None), ("b", "user_8", None), ("c", "user_9", None)]

    plan = plan_app_table(state(tasks, rows), scoped(users=["user_1", "user_9"]))

    assert list(plan.orphans["row_key"]) == ["c"]  # user_8 is gone too, but out of scope
    assert plan.missing.empty

    profiles = state(table(PROFILE), [("a", "user_1", "org_1"), ("b", "user_2", "org_1"), ("c", "user_7", "org_9")])
    by_org = plan_app_table(profiles, scoped(orgs=["org_1"]))
    assert list(by_org.orphans["row_key"]) == ["b"]  # org_1's memberships are all in the snapshot; org_9 is not in scope
    assert by_org.missing.empty


def test_anonymized_rows_are_done_and_kept_orphans_are_reported() -> None:
    comments = table("{table: c, user_id_column: u, orphans: anonymize, anonymize: {u: null}}")
    rows = [("a", "user_9", None, None, None, False), ("b", "user_9", None, None, None, True)]
    assert list(plan_app_table(state(comments, rows), CLERK).orphans["row_key"]) == ["a"]

    notes = table("{table: n, user_id_column: u, orphans: keep}")
    plan = plan_app_table(state(notes, [("a", "user_9", None)]), CLERK)
    assert list(plan.orphans["action"]) == ["keep"]
    assert plan.is_noop and plan.removals == 0


def test_duplicates_keep_the_first_by_rank_and_leave_orphans_to_their_policy() -> None:
    settings = table("{table: s, user_id_column: u, orphans: delete, unique_per: [u]}")
    rows = [
        ("a", "user_1", None, '["user_1"]', 2, False),
        ("b", "user_1", None, '["user_1"]', 1, False),  # first by rank: kept
        ("c", "user_1", None, '["user_1"]', 3, False),
        ("d", "user_9", None, '["user_9"]', 4, False),  # orphans deleted take no part
        ("e", "user_9", None, '["user_9"]', 5, False),
        ("f", "user_2", None, None, 6, False),  # a null key repeats nothing
        ("g", "user_2", None, None, 7, False),
    ]

    plan = plan_app_table(state(settings, rows), CLERK)

    assert dict(zip(plan.duplicates["row_key"], plan.duplicates["kept_row_key"])) == {"a": "b", "c": "b"}
    assert sorted(plan.orphans["row_key"]) == ["d", "e"]
    assert plan.writes() == {"insert": 0, "delete": 4, "anonymize": 0}

    kept_orphans = table("{table: s, user_id_column: u, orphans: keep, unique_per: [u]}")
    plan = plan_app_table(state(kept_orphans, rows[3:5]), CLERK)
    assert list(plan.duplicates["row_key"]) == ["e"]  # kept orphans are still de-duplicated ...
    assert list(plan.orphans["row_key"]) == ["d"]  # ... and a deleted duplicate is not also an orphan


def test_a_run_may_fix_only_some_kinds() -> None:
    settings = table("{table: s, user_id_column: u, orphans: delete, provision: user, unique_per: [u]}")
    rows = [("a", "user_1", None, '["user_1"]', 1, False), ("b", "user_1", None, '["user_1"]', 2, False), ("c", "user_9", None)]

    only_missing = plan_app_table(state(settings, rows), CLERK, kinds=[MISSING])
    assert only_missing.counts() == {MISSING: 1, ORPHANED: 0, DUPLICATE: 0}
    only_orphans = plan_app_table(state(settings, rows), CLERK, kinds=[ORPHANED])
    assert only_orphans.counts() == {MISSING: 0, ORPHANED: 1, DUPLICATE: 0}


def test_the_guard_weighs_each_table_by_its_rows_and_its_own_share() -> None:
    tasks = "{table: tasks, user_id_column: u, orphans: delete}"
    rows = [(str(i), "user_9" if i < 6 else "user_1", None) for i in range(8)]  # 6 of 8 rows orphaned
    plan = plan_sync(fx.clerk_snapshot(), fx.mirror_snapshot(), live_rows_before={e: 0 for e in model.ENTITIES})
    plan.app_tables = {"public.tasks": plan_app_table(state(table(tasks), rows), CLERK)}

    [violation] = delete_guard_violations(plan, 0.10)
    assert violation.describe() == "app table public.tasks: 6 of 8 rows (75.0%) would be deleted or anonymized, above the 10% limit"

    generous = tasks.replace("}", ", max_cleanup_share: 0.8}")
    plan.app_tables = {"public.tasks": plan_app_table(state(table(generous), rows), CLERK)}
    assert delete_guard_violations(plan, 0.10) == []

    kept = tasks.replace("orphans: delete", "orphans: keep")
    plan.app_tables = {"public.tasks": plan_app_table(state(table(kept), rows), CLERK)}
    assert delete_guard_violations(plan, 0.10) == []  # reported orphans remove nothing
