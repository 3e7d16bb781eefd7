"""The plan a sync computes and then applies: what to write, what to delete, what to report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from sync_pipeline.model import ENTITIES, SyncScope

if TYPE_CHECKING:
    from sync_pipeline.app_tables.catalog import AppTable

# Kinds of change, as counted in run metadata and in the audit trail.
INSERT = "insert"  # in Clerk, not in the mirror
UPDATE = "update"  # in both, some compared column differs
RESTORE = "restore"  # soft-deleted in the mirror, back in Clerk
DELETE = "delete"  # live in the mirror, gone from Clerk (or cascaded from its user/org)
CHANGE_KINDS: tuple[str, ...] = (INSERT, UPDATE, RESTORE, DELETE)

# Kinds of drift in the application's own tables (see sync_pipeline.app_tables).
MISSING = "missing"  # a live user (or membership) lacks the row the table must hold for it
ORPHANED = "orphaned"  # a row whose user, organization or membership Clerk no longer has
DUPLICATE = "duplicate"  # a row another one with the same unique_per key is kept over
APP_TABLE_KINDS: tuple[str, ...] = (MISSING, ORPHANED, DUPLICATE)
# What the apply does to application rows (sync_changes.change_kind): insert (a missing
# row provisioned), delete (an orphan or a duplicate), anonymize (an orphan kept, cleared).
ANONYMIZE = "anonymize"
KEEP = "keep"  # an orphan the table's policy keeps as it is: reported, never written
APP_WRITE_KINDS: tuple[str, ...] = (INSERT, DELETE, ANONYMIZE)


@dataclass
class EntityPlan:
    """What a sync does to one mirror table.

    ``upserts`` holds Clerk rows (all contract columns, raw included) for every insert,
    update and restore; ``change_kind`` says which, and ``changed_columns`` lists the
    columns that differ (for inserts, empty). ``deletes`` holds mirror ids to soft-delete,
    with the reason ("orphan", or "cascade:<user|organization> <id>").
    """

    entity: str
    upserts: pd.DataFrame
    deletes: pd.DataFrame  # columns: id, reason
    duplicates: pd.DataFrame  # columns: id, key, kept_id, source ("clerk" | "mirror")
    live_rows_before: int  # live rows in the mirror table, whole table, for the guard

    def count(self, kind: str) -> int:
        if kind == DELETE:
            return len(self.deletes)
        return int((self.upserts["change_kind"] == kind).sum())

    def counts(self) -> dict[str, int]:
        return {kind: self.count(kind) for kind in CHANGE_KINDS}

    @property
    def is_noop(self) -> bool:
        return self.upserts.empty and self.deletes.empty

    def touched_ids(self) -> pd.Series:
        """Every id this plan writes: upserted or deleted."""
        return pd.concat([self.upserts["id"], self.deletes["id"]], ignore_index=True).astype("string")


@dataclass
class AppTablePlan:
    """What a sync does to one of the application's tables (its rows in scope).

    ``missing``: the rows to create, one per live user or membership lacking one
    (columns user_id, organization_id, reason). ``orphans``: rows whose owner is gone
    (row_key, user_id, organization_id, action: delete | anonymize | keep, reason).
    ``duplicates``: rows to delete because another row with their key is kept
    (row_key, key, kept_row_key). Rows are named by ``row_key``, the primary key's text.
    """

    table: AppTable
    missing: pd.DataFrame
    orphans: pd.DataFrame
    duplicates: pd.DataFrame
    total_rows: int  # the whole table's rows before the sync, for the guard

    @property
    def label(self) -> str:
        return self.table.label

    def counts(self) -> dict[str, int]:
        return {MISSING: len(self.missing), ORPHANED: len(self.orphans), DUPLICATE: len(self.duplicates)}

    def writes(self) -> dict[str, int]:
        actions = self.orphans["action"]
        return {
            INSERT: len(self.missing),
            DELETE: int((actions == DELETE).sum()) + len(self.duplicates),
            ANONYMIZE: int((actions == ANONYMIZE).sum()),
        }

    @property
    def removals(self) -> int:
        """Rows whose data the sync would delete or clear: what the guard weighs."""
        writes = self.writes()
        return writes[DELETE] + writes[ANONYMIZE]

    @property
    def is_noop(self) -> bool:
        return not any(self.writes().values())


@dataclass
class SyncPlan:
    scope: SyncScope
    entities: dict[str, EntityPlan]
    # One row per address on more than one user: email, user_ids (list), kind
    # ("shared": live on two Clerk users at once, needs a person;
    #  "moved": the mirror has it on another user than Clerk now does, resolved by the sync).
    email_conflicts: pd.DataFrame
    # One row per problem: entity, id, problem. Reported; the row is still mirrored.
    validation_problems: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # The application's tables, by label (schema.table); empty when none are declared.
    app_tables: dict[str, AppTablePlan] = field(default_factory=dict)

    def entity(self, name: str) -> EntityPlan:
        return self.entities[name]

    def touched_ids(self) -> dict[str, pd.Series]:
        """By mirror table, every id this plan writes: what a read-back after the apply checks."""
        return {name: plan.touched_ids() for name, plan in self.entities.items()}

    def counts(self) -> dict[str, dict[str, int]]:
        return {name: self.entities[name].counts() for name in ENTITIES}

    def app_table_counts(self) -> dict[str, dict[str, int]]:
        """Per application table: the drift found (missing, orphaned, duplicate) and the writes planned."""
        return {label: {**plan.counts(), **plan.writes()} for label, plan in self.app_tables.items()}

    @property
    def is_noop(self) -> bool:
        return all(plan.is_noop for plan in self.entities.values()) and all(
            plan.is_noop for plan in self.app_tables.values()
        )
