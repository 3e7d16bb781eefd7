"""The plan a sync computes and then applies: what to write, what to delete, what to report."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from sync_pipeline.model import ENTITIES, SyncScope

# Kinds of change, as counted in run metadata and in the audit trail.
INSERT = "insert"  # in Clerk, not in the mirror
UPDATE = "update"  # in both, some compared column differs
RESTORE = "restore"  # soft-deleted in the mirror, back in Clerk
DELETE = "delete"  # live in the mirror, gone from Clerk (or cascaded from its user/org)
CHANGE_KINDS: tuple[str, ...] = (INSERT, UPDATE, RESTORE, DELETE)


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

    def entity(self, name: str) -> EntityPlan:
        return self.entities[name]

    def counts(self) -> dict[str, dict[str, int]]:
        return {name: self.entities[name].counts() for name in ENTITIES}

    @property
    def is_noop(self) -> bool:
        return all(plan.is_noop for plan in self.entities.values())
