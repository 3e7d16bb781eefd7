"""The delete guard: a bad or empty snapshot must never wipe the mirror.

A sync that would delete more than ``max_delete_share`` of any table's live rows is
refused unless the engineer explicitly allows it for that run.
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

    @property
    def share(self) -> float:
        return self.deletes / self.live_rows if self.live_rows else 1.0

    def describe(self) -> str:
        return (
            f"{self.entity}: {self.deletes} of {self.live_rows} live rows ({self.share:.1%}) "
            f"would be deleted, above the {self.max_share:.0%} limit"
        )


def delete_guard_violations(plan: SyncPlan, max_delete_share: float = DEFAULT_MAX_DELETE_SHARE) -> list[GuardViolation]:
    """Every table whose planned deletes exceed the allowed share of its live rows."""
    violations = []
    for entity, entity_plan in plan.entities.items():
        deletes = len(entity_plan.deletes)
        if deletes == 0:
            continue
        live = entity_plan.live_rows_before
        if live == 0 or deletes / live > max_delete_share:
            violations.append(GuardViolation(entity, deletes, live, max_delete_share))
    return violations
