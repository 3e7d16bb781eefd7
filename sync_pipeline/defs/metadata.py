"""How a plan and an apply look in the Dagster UI: a step's counts as one table, samples as tables.

A step's counts are ONE table (a row per entity or application table, a column per kind
of change), not twenty loose integers; the totals that are worth plotting across runs
(``changes_total``, ``rows_written``) stay plain numbers beside it. :func:`table_counts`
reads such a table back (the CLI's runner does, from the materializations).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
from dagster import MetadataValue, TableColumn, TableMetadataValue, TableRecord, TableSchema

from sync_pipeline.diff.plan import SyncPlan
from sync_pipeline.model import ENTITIES

SAMPLE_ROWS = 20


def _cell(value: object) -> str | int | float | bool | None:
    """A value a table cell can hold: lists as comma-separated text, anything else unknown as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _cell(value.tolist())
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def sample_table(frame: pd.DataFrame, columns: list[str]) -> TableMetadataValue:
    """The first rows of ``frame`` as a table; the table's name says how many there are in all."""
    present = [c for c in columns if c in frame.columns]
    shown = frame.loc[:, present].head(SAMPLE_ROWS)
    records = [TableRecord({c: _cell(v) for c, v in row.items()}) for row in shown.to_dict("records")]
    schema = TableSchema(columns=[TableColumn(c, "string") for c in present])
    return MetadataValue.table(records=records, schema=schema)


def counts_table(counts: Mapping[str, Mapping[str, int]], row_label: str = "entity") -> TableMetadataValue:
    """``{row: {kind: count}}`` as one table: a row per ``row``, a column per kind."""
    kinds = list(dict.fromkeys(kind for row in counts.values() for kind in row))
    records = [
        TableRecord({row_label: row, **{kind: int(values.get(kind, 0)) for kind in kinds}}) for row, values in counts.items()
    ]
    schema = TableSchema(columns=[TableColumn(row_label, "string"), *(TableColumn(kind, "int") for kind in kinds)])
    return MetadataValue.table(records=records, schema=schema)


def table_counts(value: TableMetadataValue, row_label: str = "entity") -> dict[str, dict[str, int]]:
    """The inverse of :func:`counts_table`: ``{row: {kind: count}}``."""
    result: dict[str, dict[str, int]] = {}
    for record in value.records:
        data = dict(record.data)
        row = str(data.pop(row_label))
        result[row] = {kind: int(count) for kind, count in data.items()}
    return result


def plan_metadata(plan: SyncPlan, *, dry_run: bool) -> dict[str, MetadataValue]:
    changes = {
        entity: {**plan.entity(entity).counts(), "duplicates": len(plan.entity(entity).duplicates)} for entity in ENTITIES
    }
    metadata: dict[str, MetadataValue] = {
        "scope": MetadataValue.text(plan.scope.describe()),
        "dry_run": MetadataValue.bool(dry_run),
        "changes_total": MetadataValue.int(sum(sum(k.values()) for k in plan.counts().values())),
        "changes": counts_table(changes),
        "email_conflicts": MetadataValue.int(len(plan.email_conflicts)),
        "validation_problems": MetadataValue.int(len(plan.validation_problems)),
    }
    for entity in ENTITIES:
        entity_plan = plan.entity(entity)
        if not entity_plan.upserts.empty:
            metadata[f"sample: {entity} upserts"] = sample_table(entity_plan.upserts, ["id", "change_kind", "changed_columns"])
        if not entity_plan.deletes.empty:
            metadata[f"sample: {entity} deletes"] = sample_table(entity_plan.deletes, ["id", "reason"])
        if not entity_plan.duplicates.empty:
            metadata[f"sample: {entity} duplicates"] = sample_table(entity_plan.duplicates, list(entity_plan.duplicates.columns))
    if not plan.email_conflicts.empty:
        metadata["sample: email conflicts"] = sample_table(plan.email_conflicts, ["email", "user_ids", "kind"])
    if not plan.validation_problems.empty:
        metadata["sample: validation problems"] = sample_table(plan.validation_problems, ["entity", "id", "problem"])
    metadata.update(app_tables_plan_metadata(plan))
    return metadata


def app_tables_plan_metadata(plan: SyncPlan) -> dict[str, MetadataValue]:
    """The declared application tables: one table of drift and planned writes, samples of each kind."""
    metadata: dict[str, MetadataValue] = {}
    if not plan.app_tables:
        return metadata
    metadata["app_tables"] = counts_table(plan.app_table_counts(), row_label="table")
    for label, table_plan in plan.app_tables.items():
        if not table_plan.missing.empty:
            metadata[f"sample: {label} missing"] = sample_table(table_plan.missing, ["user_id", "organization_id"])
        if not table_plan.orphans.empty:
            metadata[f"sample: {label} orphaned"] = sample_table(table_plan.orphans, ["row_key", "action", "reason"])
        if not table_plan.duplicates.empty:
            metadata[f"sample: {label} duplicates"] = sample_table(table_plan.duplicates, ["row_key", "key", "kept_row_key"])
    return metadata


def read_report_table(report) -> TableMetadataValue:  # noqa: ANN001 - clerk.snapshot.ClerkReadReport
    """What reading Clerk found, per entity: rows, repeats dropped, and a full scan's absences."""
    columns = {
        "rows": report.rows,
        "repeats_dropped": report.repeats_dropped,
        "absent_from_scan": report.absent,
        "refound_by_id": report.refound,
        "absences_unconfirmed": report.unconfirmed,
    }
    return counts_table({entity: {name: values.get(entity, 0) for name, values in columns.items()} for entity in ENTITIES})
