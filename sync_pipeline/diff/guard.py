"""The delete guard: a bad or empty snapshot must never wipe the mirror.

A sync that would delete more than ``max_delete_share`` of any table's live rows is
refused unless the engineer explicitly allows it for that run. The application's tables
are weighed the same way: rows deleted or anonymized against the whole table's rows
(a table's ``max_cleanup_share`` in the YAML file replaces the run's share for it).
"""

from __future__ import annotations

from dataclasses import dataclass

from sync_pipeline.diff.plan import SyncPlan

DEFAULT_MAX_DELETE_SHARE = 0.10


@dataclass(frozen=True)
class GuardViolation:
    entity: str
    deletes: int
    live_rows: int
    max_share: float
    rows_noun: str = "live rows"
    removal: str = "deleted"

    @property
    def share(self) -> float:
        return self.deletes / self.live_rows if self.live_rows else 1.0

    def describe(self) -> str:
        return (
            f"{self.entity}: {self.deletes} of {self.live_rows} {self.rows_noun} ({self.share:.1%}) "
            f"would be {self.removal}, above the {self.max_share:.0%} limit"
        )


def _exceeds(removals: int, rows: int, max_share: float) -> bool:
    return removals > 0 and (rows == 0 or removals / rows > max_share)


def delete_guard_violations(plan: SyncPlan, max_delete_share: float = DEFAULT_MAX_DELETE_SHARE) -> list[GuardViolation]:
    """Every table whose planned deletes exceed the allowed share of its live rows."""
    violations = []
    for entity, entity_plan in plan.entities.items():
        deletes = len(entity_plan.deletes)
        if _exceeds(deletes, entity_plan.live_rows_before, max_delete_share):
            violations.append(GuardViolation(entity, deletes, entity_plan.live_rows_before, max_delete_share))
    for label, app_plan in plan.app_tables.items():
        share = app_plan.table.spec.max_cleanup_share
        share = max_delete_share if share is None else share
        if _exceeds(app_plan.removals, app_plan.total_rows, share):
            violations.append(
                GuardViolation(
                    f"app table {label}", app_plan.removals, app_plan.total_rows, share,
                    rows_noun="rows", removal="deleted or anonymized",
                )
            )
    return violations
