"""The sync plan and its results as text for the terminal: what ``sync``, ``analyze`` and
``app-tables`` print. Pure functions of the plan and of what a run reported; the UI's view
of the same is ``sync_pipeline.defs.metadata``."""

from __future__ import annotations

from collections.abc import Sequence

from sync_pipeline.app_tables.integrity import BLOCKED, CREATED, READY, Constraint
from sync_pipeline.diff.plan import APP_TABLE_KINDS, APP_WRITE_KINDS, CHANGE_KINDS, SyncPlan
from sync_pipeline.model import ENTITIES

# How a list of ids not found in Clerk is shown: the first few, then a count.
SHOWN_MISSING_IDS = 10


def format_plan(plan: SyncPlan) -> str:
    """The plan as a small table, then conflicts and problems with a few examples."""
    header = f"{'':<26}" + "".join(f"{kind:>9}" for kind in CHANGE_KINDS) + f"{'dupes':>9}"
    rows = [header]
    for entity in ENTITIES:
        counts = plan.entity(entity).counts()
        rows.append(
            f"{entity:<26}" + "".join(f"{counts[k]:>9}" for k in CHANGE_KINDS) + f"{len(plan.entity(entity).duplicates):>9}"
        )
    conflicts = plan.email_conflicts
    if len(conflicts):
        by_kind = conflicts["kind"].value_counts().to_dict()
        rows.append(f"E-mail conflicts: {len(conflicts)} ({', '.join(f'{k} {v}' for k, v in sorted(by_kind.items()))}).")
        for record in conflicts.head(3).to_dict("records"):
            rows.append(f"  {record['kind']}: {record['email']} on {', '.join(map(str, record['user_ids']))}")
    problems = plan.validation_problems
    if len(problems):
        by_problem = problems["problem"].value_counts().to_dict()
        rows.append(
            f"Validation problems (mirrored anyway): {len(problems)} ("
            + ", ".join(f"{p}: {n}" for p, n in sorted(by_problem.items()))
            + ")."
        )
    if plan.app_tables:
        rows.append(format_app_tables(plan))
    return "\n".join(rows)


def format_app_tables(plan: SyncPlan, *, samples: int = 0) -> str:
    """The application tables' drift and planned writes, a line per table, with a few examples if asked."""
    kinds = (*APP_TABLE_KINDS, *APP_WRITE_KINDS)
    width = max(26, *(len(label) + 2 for label in plan.app_tables))
    rows = [f"{'application table':<{width}}" + "".join(f"{kind:>11}" for kind in kinds)]
    for label, counts in plan.app_table_counts().items():
        rows.append(f"{label:<{width}}" + "".join(f"{counts[kind]:>11}" for kind in kinds))
    if not samples:
        return "\n".join(rows)
    for label, table_plan in plan.app_tables.items():
        rows += [f"  {label}: missing, {r['reason']}" for r in table_plan.missing.head(samples).to_dict("records")]
        rows += [
            f"  {label}: orphaned row {r['row_key']} ({r['reason']}): {r['action']}"
            for r in table_plan.orphans.head(samples).to_dict("records")
        ]
        rows += [
            f"  {label}: duplicate row {r['row_key']} of key {r['key']}, {r['kept_row_key']} kept"
            for r in table_plan.duplicates.head(samples).to_dict("records")
        ]
    return "\n".join(rows)


def format_app_tables_written(written: dict[str, dict[str, int]]) -> str:
    parts = [
        f"{label} " + ", ".join(f"{kind} {count}" for kind, count in kinds.items() if count)
        for label, kinds in written.items()
        if any(kinds.values())
    ]
    total = sum(sum(kinds.values()) for kinds in written.values())
    return f"Application-table rows written: {total}" + (f" ({'; '.join(parts)})." if parts else ".")


def format_not_in_clerk(missing: dict[str, list[str]]) -> str:
    """The ids a scoped run named that Clerk does not have (mistyped, or deleted); empty when none."""
    parts = []
    for kind, ids in missing.items():
        if not ids:
            continue
        shown = ", ".join(ids[:SHOWN_MISSING_IDS]) + (f" and {len(ids) - SHOWN_MISSING_IDS} more" if len(ids) > SHOWN_MISSING_IDS else "")
        parts.append(f"{len(ids)} {kind} id(s): {shown}")
    if not parts:
        return ""
    return "Not in Clerk (mistyped, or deleted: a mirror row of theirs is deleted): " + "; ".join(parts) + "."


def format_refusal(run_id: str, problem: str) -> str:
    return f"Sync refused by the delete guard, nothing written (run {run_id}): {problem}"


def format_failure(run_id: str, problem: str) -> str:
    return f"Sync failed, nothing written (run {run_id}): {problem}"


def format_sync_summary(
    plan: SyncPlan,
    *,
    dry_run: bool,
    run_id: str,
    seconds: float,
    rows_written: dict[str, dict[str, int]],
    app_tables_written: dict[str, dict[str, int]],
    not_in_clerk: dict[str, list[str]],
) -> str:
    """What ``sync`` prints after a run that succeeded: its scope and time, the plan, and what it wrote."""
    lines = [
        f"{'Dry run' if dry_run else 'Sync'} of {plan.scope.describe()} scope finished in "
        f"{seconds:.1f}s (Dagster run {run_id}).",
        format_plan(plan),
    ]
    missing = format_not_in_clerk(not_in_clerk)
    if missing:
        lines.append(missing)
    if dry_run:
        either = ", no application-table row either" if plan.app_tables else ""
        lines.append(f"Dry run: no mirror row written{either}.")
    else:
        total = sum(sum(kinds.values()) for kinds in rows_written.values())
        lines.append(f"Mirror rows written: {total}.")
        if plan.app_tables:
            lines.append(format_app_tables_written(app_tables_written))
    return "\n".join(lines)


def format_drift_report(plan: SyncPlan, not_in_clerk: dict[str, list[str]]) -> str:
    """What ``analyze`` prints: whether a sync would change anything, and the plan it would apply."""
    matches = "the mirror matches Clerk" + (" and the application tables follow their policies" if plan.app_tables else "")
    drift = f"no drift: {matches}" if plan.is_noop else "drift found: `sync-pipeline sync` would apply it"
    missing = format_not_in_clerk(not_in_clerk)
    return f"Drift report ({plan.scope.describe()} scope): {drift}.\n{format_plan(plan)}" + (f"\n{missing}" if missing else "")


def format_app_tables_report(plan: SyncPlan, *, samples: int) -> str:
    """What ``app-tables analyze`` prints: the application tables' drift, per table with examples."""
    state = "they follow their policies" if all(p.is_noop for p in plan.app_tables.values()) else (
        "drift found: `sync-pipeline app-tables sync --apply` would fix it"
    )
    return f"Application tables ({plan.scope.describe()} scope): {state}.\n{format_app_tables(plan, samples=samples)}"


def format_integrity(constraints: Sequence[Constraint], *, applied: bool) -> str:
    """What ``app-tables integrity`` prints: each constraint and its status, then what was (or would be) created."""
    lines = [constraint.describe() for constraint in constraints]
    ready = sum(c.status == READY for c in constraints)
    created = sum(c.status == CREATED for c in constraints)
    blocked = sum(c.status == BLOCKED for c in constraints)
    if applied:
        lines.append(f"Created {created} constraint(s).")
    else:
        lines.append(f"Dry run: nothing created; `--apply` would create the {ready} ready constraint(s).")
    if blocked:
        lines.append(f"{blocked} blocked: `sync-pipeline app-tables sync --apply` fixes the rows its policies cover.")
    return "\n".join(lines)
