"""E-mail conflicts: 'shared' (needs a person) and 'moved' (the sync resolves it)."""

from __future__ import annotations

import pytest

from sync_pipeline import model
from sync_pipeline.diff.rules import plan_sync
from sync_pipeline_tests import fixtures as fx


def conflicts(clerk_users, mirror_users, deleted=None, scope=None):
    clerk = fx.clerk_snapshot(clerk_users, scope=scope)
    mirror = fx.mirror_snapshot(mirror_users, deleted=deleted, scope=scope)
    plan = plan_sync(clerk, mirror, live_rows_before={e: 0 for e in model.ENTITIES})
    frame = plan.email_conflicts
    assert list(frame.columns) == ["email", "user_ids", "kind"]
    return sorted((kind, email, tuple(ids)) for email, ids, kind in zip(frame["email"], frame["user_ids"], frame["kind"]))


u = fx.user


@pytest.mark.parametrize(
    ("clerk_users", "mirror_users", "deleted", "expected"),
    [
        pytest.param([u("user_1", "a@x"), u("user_2", "b@x")], [], None, [], id="distinct-addresses"),
        pytest.param(
            [u("user_1", "a@x"), u("user_2", "a@x"), u("user_3", "a@x")], [], None,
            [("shared", "a@x", ("user_1", "user_2", "user_3"))], id="shared",
        ),
        pytest.param(
            [u("user_1", " Alice@Example.COM"), u("user_2", "alice@example.com ")], [], None,
            [("shared", "alice@example.com", ("user_1", "user_2"))], id="shared-case-insensitive-trimmed",
        ),
        pytest.param(
            [u("user_1", ""), u("user_2", "  "), u("user_3"), u("user_4")], [], None, [], id="blank-and-missing-never-conflict",
        ),
        pytest.param(
            [u("user_2", "a@x")], [u("user_1", "a@x")], None,
            [("moved", "a@x", ("user_1", "user_2"))], id="deleted-users-address-reused",
        ),
        pytest.param(
            [u("user_1", "b@x"), u("user_2", "a@x")], [u("user_1", "a@x"), u("user_2", "b@x")], None,
            [("moved", "a@x", ("user_1", "user_2")), ("moved", "b@x", ("user_2", "user_1"))], id="swap",
        ),
        pytest.param(
            [u("user_1", "b@x"), u("user_2", "A@X")], [u("user_1", "a@x"), u("user_2", "c@x")], None,
            [("moved", "a@x", ("user_1", "user_2"))], id="moved-case-insensitive",
        ),
        pytest.param([u("user_1", "a@x")], [u("user_1", "A@X")], None, [], id="own-address-recased"),
        pytest.param([u("user_1", "b@x")], [u("user_1", "a@x")], None, [], id="own-address-changed-nobody-takes-it"),
        pytest.param(
            [u("user_2", "a@x")], [u("user_1", "a@x")], {"user_1": 1}, [], id="soft-deleted-holder-is-not-live",
        ),
        pytest.param(
            [u("user_1", "a@x"), u("user_2", "a@x")], [u("user_1", "a@x")], None,
            [("shared", "a@x", ("user_1", "user_2"))], id="still-held-and-also-given-is-shared-only",
        ),
        pytest.param(
            [u("user_2", "a@x"), u("user_3", "a@x")], [u("user_1", "a@x")], None,
            [("moved", "a@x", ("user_1", "user_2", "user_3")), ("shared", "a@x", ("user_2", "user_3"))],
            id="moved-to-two-is-also-shared",
        ),
    ],
)
def test_email_conflicts(clerk_users, mirror_users, deleted, expected):
    assert conflicts(clerk_users, mirror_users, deleted) == expected


def test_conflicting_users_are_still_mirrored_as_clerk_has_them():
    clerk = fx.clerk_snapshot([u("user_1", "a@x"), u("user_2", "a@x")])
    plan = plan_sync(clerk, fx.mirror_snapshot(), live_rows_before={e: 0 for e in model.ENTITIES})
    assert sorted(plan.entity(model.USERS).upserts["id"]) == ["user_1", "user_2"]


def test_scoped_sync_compares_only_within_the_scope_frames():
    scope = model.SyncScope(user_ids=("user_2",))
    # Clerk's user_9 (out of scope) may well hold a@x too; the scoped frames do not show it.
    assert conflicts([u("user_2", "a@x")], [u("user_2", "a@x")], scope=scope) == []
    assert conflicts([u("user_2", "b@x")], [u("user_2", "a@x")], scope=scope) == []
