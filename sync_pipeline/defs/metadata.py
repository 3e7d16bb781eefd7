"""How a plan and an apply look in the Dagster UI: counts to plot, samples to read."""

from __future__ import annotations

import pandas as pd
from dagster import MetadataValue

from sync_pipeline.diff.plan import SyncPlan
from sync_pipeline.model import ENTITIES

SAMPLE_ROWS = 20


def sample_table(frame: pd.DataFrame, columns: list[str]) -> MetadataValue:
    """The first rows of ``frame`` as a Markdown table (lists shown as comma-separated text)."""
    if frame.empty:
        return MetadataValue.md("_none_")
    shown = frame.loc[:, [c for c in columns if c in frame.columns]].head(SAMPLE_ROWS).copy()
    for column in shown.columns:
        shown[column] = shown[column].map(lambda v: ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
    more = f"\n\n_{len(frame) - SAMPLE_ROWS} more not shown_" if len(frame) > SAMPLE_ROWS else ""
    return MetadataValue.md(shown.to_markdown(index=False) + more)


def counts_metadata(counts: dict[str, dict[str, int]], prefix: str = "") -> dict[str, MetadataValue]:
    """One integer per entity and kind of change: Dagster plots these across runs."""
    return {
        f"{prefix}{entity}.{kind}": MetadataValue.int(int(count))
        for entity, kinds in counts.items()
        for kind, count in kinds.items()
    }


def plan_metadata(plan: SyncPlan, *, dry_run: bool) -> dict[str, MetadataValue]:
    metadata: dict[str, MetadataValue] = {
        "scope": MetadataValue.text(plan.scope.describe()),
        "dry_run": MetadataValue.bool(dry_run),
        "changes_total": MetadataValue.int(sum(sum(k.values()) for k in plan.counts().values())),
        **counts_metadata(plan.counts()),
        "email_conflicts": MetadataValue.int(len(plan.email_conflicts)),
        "validation_problems": MetadataValue.int(len(plan.validation_problems)),
    }
    for entity in ENTITIES:
        entity_plan = plan.entity(entity)
        metadata[f"{entity}.duplicates"] = MetadataValue.int(len(entity_plan.duplicates))
        metadata[f"sample: {entity} upserts"] = sample_table(
            entity_plan.upserts, ["id", "change_kind", "changed_columns"]
        )
        metadata[f"sample: {entity} deletes"] = sample_table(entity_plan.deletes, ["id", "reason"])
        if not entity_plan.duplicates.empty:
            metadata[f"sample: {entity} duplicates"] = sample_table(entity_plan.duplicates, list(entity_plan.duplicates.columns))
    metadata["sample: email conflicts"] = sample_table(plan.email_conflicts, ["email", "user_ids", "kind"])
    metadata["sample: validation problems"] = sample_table(plan.validation_problems, ["entity", "id", "problem"])
    metadata.update(app_tables_plan_metadata(plan))
    return metadata


def app_tables_plan_metadata(plan: SyncPlan) -> dict[str, MetadataValue]:
    """Per declared application table: the drift found, the writes planned, samples of each kind."""
    metadata: dict[str, MetadataValue] = {}
    if not plan.app_tables:
        return metadata
    metadata.update(counts_metadata(plan.app_table_counts(), prefix="app_tables."))
    for label, table_plan in plan.app_tables.items():
        metadata[f"sample: {label} missing"] = sample_table(table_plan.missing, ["user_id", "organization_id"])
        metadata[f"sample: {label} orphaned"] = sample_table(table_plan.orphans, ["row_key", "action", "reason"])
        metadata[f"sample: {label} duplicates"] = sample_table(table_plan.duplicates, ["row_key", "key", "kept_row_key"])
    return metadata

