"""The application tables' diff: pure pandas over the Clerk snapshot and the tables' rows in scope.

For each declared table, three kinds of drift (``diff.plan.APP_TABLE_KINDS``):

=========  ===========================================================================
orphaned   the row points at a user, organization or membership Clerk no longer has
           (absent from the Clerk snapshot; the mirror soft-deletes it in this sync).
           Its owner decides: a table with both id columns belongs to the membership
           unless ``owner`` says otherwise. A row names the most specific thing it
           holds: both ids -> the membership, one id -> that user or organization. A
           null id points at nothing and is never orphaned. The policy gives the
           action: delete, anonymize (rows already anonymized are done), or keep
           (reported only).
duplicate  rows sharing the ``unique_per`` key: the first by ``keep_rank`` (oldest or
           newest by the named column, then the primary key) stays, the others go.
           Rows deleted as orphans take no part; a row deleted as a duplicate is not
           also listed as an orphan.
missing    a live Clerk user (``per: user``) or membership (``per: membership``) has
           no row in the table: one is created with the policy's defaults.
=========  ===========================================================================

Scope: a scoped sync's Clerk snapshot holds the scope's users and organizations and every
membership of either, so a row is judged only where the snapshot can answer for it: a
user reference when the user is in scope, an organization reference when the
organization is, a membership reference when either is. The same holds for a duplicate
key's user or organization. A full sync judges every row.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from sync_pipeline.app_tables.config import ANONYMIZE, DELETE, MEMBERSHIP, ORGANIZATION, USER
from sync_pipeline.app_tables.snapshot import AppTablesSnapshot, AppTableState
from sync_pipeline.frames import select_rows
from sync_pipeline.diff.plan import APP_TABLE_KINDS, DUPLICATE, MISSING, ORPHANED, AppTablePlan
from sync_pipeline.diff.rules import pair_key
from sync_pipeline.text_columns import is_in
from sync_pipeline.model import Snapshot, SyncScope

MISSING_COLUMNS = ("user_id", "organization_id", "reason")
ORPHAN_COLUMNS = ("row_key", "user_id", "organization_id", "action", "reason")
DUPLICATE_COLUMNS = ("row_key", "key", "kept_row_key")


def _text_frame(columns: tuple[str, ...], data: dict | None = None) -> pd.DataFrame:
    data = data or {}
    return pd.DataFrame({c: pd.array(data.get(c, []), dtype="string") for c in columns})


def _text(values: list | tuple) -> pd.Series:
    return pd.Series(list(values), dtype="string")


def _present(values: pd.Series) -> np.ndarray:
    return values.notna().to_numpy(dtype=bool)


class _Coverage:
    """Which rows the (possibly scoped) Clerk snapshot can answer for."""

    def __init__(self, rows: pd.DataFrame, scope: SyncScope) -> None:
        n = len(rows)
        if scope.is_full:
            self.user = self.organization = np.ones(n, dtype=bool)
        else:
            self.user = is_in(rows["user_id"], _text(scope.user_ids))
            self.organization = is_in(rows["organization_id"], _text(scope.organization_ids))


def _orphans(state: AppTableState, clerk: Snapshot, coverage: _Coverage) -> tuple[np.ndarray, np.ndarray]:
    """Per row: orphaned?, and the reason text (object array, None where not orphaned)."""
    rows, owner = state.rows, state.table.spec.owner
    n = len(rows)
    has_user, has_org = _present(rows["user_id"]), _present(rows["organization_id"])
    gone = np.zeros(n, dtype=bool)
    reasons = np.full(n, None, dtype=object)

    def mark(applies: np.ndarray, vanished: np.ndarray, covered: np.ndarray, what: str, ids: pd.Series) -> None:
        hit = applies & vanished & covered
        if hit.any():
            gone[hit] = True
            reasons[hit] = (f"{what} " + ids[hit].astype(str)).to_numpy(dtype=object) + " is gone"

    users_gone = ~is_in(rows["user_id"], clerk.users["id"])
    orgs_gone = ~is_in(rows["organization_id"], clerk.organizations["id"])
    if owner == MEMBERSHIP:
        pairs = pair_key(rows)
        pairs_gone = ~is_in(pairs, pair_key(clerk.organization_memberships))
        mark(has_user & has_org, pairs_gone, coverage.user | coverage.organization, MEMBERSHIP, pairs)
        mark(has_user & ~has_org, users_gone, coverage.user, USER, rows["user_id"])
        mark(~has_user & has_org, orgs_gone, coverage.organization, ORGANIZATION, rows["organization_id"])
    elif owner == USER:
        mark(has_user, users_gone, coverage.user, USER, rows["user_id"])
    else:
        mark(has_org, orgs_gone, coverage.organization, ORGANIZATION, rows["organization_id"])
    return gone, reasons


def _duplicates(state: AppTableState, candidates: np.ndarray) -> pd.DataFrame:
    """Among ``candidates``, every row but the first by keep_rank of each unique_per key."""
    rows = state.rows
    candidates = candidates & _present(rows["unique_key"])
    if candidates.sum() < 2:
        return _text_frame(DUPLICATE_COLUMNS)
    sub = select_rows(rows[["row_key", "unique_key", "keep_rank"]], candidates)
    sub = select_rows(sub, sub["unique_key"].duplicated(keep=False).to_numpy(dtype=bool))
    if sub.empty:
        return _text_frame(DUPLICATE_COLUMNS)
    ranked = pd.DataFrame(
        {
            "row_key": sub["row_key"].to_numpy(dtype=object),
            "key": sub["unique_key"].to_numpy(dtype=object),
            "rank": sub["keep_rank"].to_numpy(dtype="float64", na_value=np.inf),
        }
    ).sort_values(["key", "rank", "row_key"], kind="stable")
    ranked["kept_row_key"] = ranked.groupby("key", sort=False)["row_key"].transform("first")
    others = ranked[ranked["row_key"] != ranked["kept_row_key"]]
    return _text_frame(DUPLICATE_COLUMNS, {c: others[c].tolist() for c in DUPLICATE_COLUMNS})


def _missing(state: AppTableState, clerk: Snapshot) -> pd.DataFrame:
    """A row per live Clerk user (or membership) in the snapshot that has none in the table."""
    rows, per = state.rows, state.table.spec.provision.per
    if per == USER:
        wanted = clerk.users["id"].dropna().drop_duplicates()
        lacking = wanted[~is_in(wanted, rows["user_id"])]
        return _text_frame(
            MISSING_COLUMNS,
            {"user_id": lacking.tolist(), "organization_id": [None] * len(lacking), "reason": ("user " + lacking).tolist()},
        )
    memberships = clerk.organization_memberships[["organization_id", "user_id"]].dropna().drop_duplicates()
    keys = pair_key(memberships)
    lacking = ~is_in(keys, pair_key(rows))
    return _text_frame(
        MISSING_COLUMNS,
        {
            "user_id": memberships["user_id"][lacking].tolist(),
            "organization_id": memberships["organization_id"][lacking].tolist(),
            "reason": ("membership " + keys[lacking]).tolist(),
        },
    )


def plan_app_table(state: AppTableState, clerk: Snapshot, kinds: Collection[str] = APP_TABLE_KINDS) -> AppTablePlan:
    """What one table needs so that it follows its policies for the Clerk snapshot's scope.

    ``kinds`` restricts the plan to some kinds of drift (a provision-only run, say); the
    others are left empty, as if the table had no such policy.
    """
    rows, spec = state.rows, state.table.spec
    coverage = _Coverage(rows, clerk.scope)

    orphaned = np.zeros(len(rows), dtype=bool)
    reasons = np.full(len(rows), None, dtype=object)
    if ORPHANED in kinds:
        orphaned, reasons = _orphans(state, clerk, coverage)
        if spec.orphans == ANONYMIZE:
            orphaned &= ~rows["anonymized"].to_numpy(dtype=bool, na_value=False)  # done on an earlier run

    duplicates = _text_frame(DUPLICATE_COLUMNS)
    if spec.unique and DUPLICATE in kinds:
        key_covered = np.zeros(len(rows), dtype=bool)
        if spec.user_id_column in spec.unique.columns:
            key_covered |= coverage.user
        if spec.organization_id_column in spec.unique.columns:
            key_covered |= coverage.organization
        leaving = orphaned if spec.orphans == DELETE else np.zeros(len(rows), dtype=bool)
        duplicates = _duplicates(state, key_covered & ~leaving)
        orphaned &= ~is_in(rows["row_key"], duplicates["row_key"])

    orphans = select_rows(rows[["row_key", "user_id", "organization_id"]], orphaned)
    orphans = _text_frame(
        ORPHAN_COLUMNS,
        {
            "row_key": orphans["row_key"].tolist(),
            "user_id": orphans["user_id"].tolist(),
            "organization_id": orphans["organization_id"].tolist(),
            "action": [spec.orphans] * len(orphans),
            "reason": reasons[orphaned].tolist(),
        },
    )
    missing = _missing(state, clerk) if spec.provision and MISSING in kinds else _text_frame(MISSING_COLUMNS)
    return AppTablePlan(
        table=state.table, missing=missing, orphans=orphans, duplicates=duplicates, total_rows=state.total_rows
    )


def plan_app_tables(
    app: AppTablesSnapshot, clerk: Snapshot, kinds: Collection[str] = APP_TABLE_KINDS
) -> dict[str, AppTablePlan]:
    return {label: plan_app_table(state, clerk, kinds) for label, state in app.tables.items()}
