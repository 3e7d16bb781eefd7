"""The sync plan and its results as text for the terminal: what ``sync``, ``analyze`` and
``app-tables`` print. Pure functions of the plan; the UI's view of the same is
``sync_pipeline.defs.metadata``."""

from __future__ import annotations

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
