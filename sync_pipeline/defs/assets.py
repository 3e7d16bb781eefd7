"""The sync as assets: snapshot Clerk and the mirror, plan the difference, apply it.

    clerk_snapshot ─┐
                    ├─> sync_plan ──[delete_guard]──> mirror/users, mirror/organizations,
    mirror_snapshot ┘                                 mirror/organization_memberships

Each step is a thin adapter around a pure or I/O module; the logic lives in
``sync_pipeline.diff`` (pure) and ``sync_pipeline.mirror`` / ``sync_pipeline.clerk`` (I/O).
"""


import time
from datetime import datetime, timezone

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)

from sync_pipeline.clerk.client import ClerkClient
from sync_pipeline.clerk.snapshot import read_clerk
from sync_pipeline.defs.metadata import counts_metadata, plan_metadata, sample_table
from sync_pipeline.defs.resources import MirrorDatabase, SyncOptions
from sync_pipeline.diff.plan import SyncPlan
from sync_pipeline.diff.rules import plan_sync
from sync_pipeline.mirror.apply import SyncRunRecord, apply_plan, record_sync_run
from sync_pipeline.mirror.snapshot import MirrorState, read_mirror
from sync_pipeline.model import ENTITIES, Snapshot

SYNC_GROUP = "clerk_sync"
MIRROR_GROUP = "clerk_mirror"
MIRROR_TABLE_KEYS = {entity: AssetKey(["clerk_mirror", entity]) for entity in ENTITIES}


def sync_run_record(context: AssetExecutionContext, options: SyncOptions, counts: dict | None = None) -> SyncRunRecord:
    run = context.instance.get_run_stats(context.run_id) if context.instance else None
    started = datetime.fromtimestamp(run.start_time, tz=timezone.utc) if run and run.start_time else datetime.now(timezone.utc)
    scope = options.scope
    return SyncRunRecord(
        run_id=context.run_id,
        mode=options.audit_mode,
        dry_run=options.dry_run,
        scope={"user_ids": list(scope.user_ids), "organization_ids": list(scope.organization_ids)},
        started_at=started,
        counts=counts or {},
    )


@asset(
    group_name=SYNC_GROUP,
    kinds={"clerk", "pandas"},
    description="Clerk's users, organizations and memberships in the run's scope, read through the Backend API.",
)
def clerk_snapshot(clerk: ClerkClient, mirror_db: MirrorDatabase, sync_options: SyncOptions) -> Output[Snapshot]:
    started = time.perf_counter()
    snapshot, report = read_clerk(clerk, sync_options.scope, include_private_metadata=mirror_db.include_private_metadata)
    requests = sum(stats.get("requests", 0) for stats in report.fetch_stats.values())
    throttled = sum(stats.get("responses_429", 0) for stats in report.fetch_stats.values())
    retries = sum(stats.get("retries", 0) for stats in report.fetch_stats.values())
    return Output(
        snapshot,
        metadata={
            "scope": MetadataValue.text(sync_options.scope.describe()),
            **{f"rows.{entity}": MetadataValue.int(count) for entity, count in report.rows.items()},
            **{f"repeats_dropped.{entity}": MetadataValue.int(count) for entity, count in report.repeats_dropped.items()},
            "requests": MetadataValue.int(requests),
            "responses_429": MetadataValue.int(throttled),
            "retries": MetadataValue.int(retries),
            "seconds": MetadataValue.float(round(time.perf_counter() - started, 3)),
            "fetch_stats": MetadataValue.json(report.fetch_stats),
        },
    )


@asset(
    group_name=SYNC_GROUP,
    kinds={"postgres", "pandas"},
    description="The mirror tables' rows in the run's scope, before this run writes anything.",
)
def mirror_snapshot(mirror_db: MirrorDatabase, sync_options: SyncOptions) -> Output[MirrorState]:
    started = time.perf_counter()
    mirror_db.ensure_ready()
    state = read_mirror(mirror_db.engine, mirror_db.db_schema, sync_options.scope)
    return Output(
        state,
        metadata={
            "schema": MetadataValue.text(mirror_db.db_schema),
            **{f"rows_in_scope.{e}": MetadataValue.int(n) for e, n in state.snapshot.row_counts().items()},
            **{f"live_rows.{e}": MetadataValue.int(n) for e, n in state.live_rows.items()},
            "seconds": MetadataValue.float(round(time.perf_counter() - started, 3)),
        },
    )


@asset(
    group_name=SYNC_GROUP,
    kinds={"pandas"},
    description="What differs between Clerk and the mirror: rows to insert, update, restore and delete, "
    "duplicates, conflicting e-mails and validation problems.",
)
def sync_plan(clerk_snapshot: Snapshot, mirror_snapshot: MirrorState, sync_options: SyncOptions) -> Output[SyncPlan]:
    started = time.perf_counter()
    plan = plan_sync(clerk_snapshot, mirror_snapshot.snapshot, live_rows_before=mirror_snapshot.live_rows)
    metadata = plan_metadata(plan, dry_run=sync_options.dry_run)
    metadata["seconds"] = MetadataValue.float(round(time.perf_counter() - started, 3))
    return Output(plan, metadata=metadata)


@multi_asset(
    specs=[
        AssetSpec(
            key,
            group_name=MIRROR_GROUP,
            kinds={"postgres"},
            deps=["sync_plan", "clerk_snapshot"],
            skippable=True,
            description=f"The mirror table {entity}: what applications join against.",
        )
        for entity, key in MIRROR_TABLE_KEYS.items()
    ],
    check_specs=[
        AssetCheckSpec(
            "matches_clerk",
            asset=key,
            description="Read back after apply, the table in scope equals Clerk's snapshot: nothing left to change.",
        )
        for key in MIRROR_TABLE_KEYS.values()
    ],
    ins={"sync_plan": AssetIn(), "clerk_snapshot": AssetIn()},
    # Subsettable only so that a dry run may skip every output: the plan is applied whole
    # whichever tables are selected, since one transaction must keep them consistent.
    can_subset=True,
)
def mirror_tables(
    context: AssetExecutionContext,
    sync_plan: SyncPlan,
    clerk_snapshot: Snapshot,
    mirror_db: MirrorDatabase,
    sync_options: SyncOptions,
):
    """Apply the plan in one transaction, then read the scope back and verify it."""
    record = sync_run_record(context, sync_options, counts={"planned": sync_plan.counts()})
    if sync_options.dry_run:
        record_sync_run(mirror_db.engine, mirror_db.db_schema, record, "dry_run")
        context.log.info("Dry run: the plan is in sync_plan's metadata; no mirror row written.")
        return

    try:
        result = apply_plan(mirror_db.engine, mirror_db.db_schema, sync_plan, record, mirror_db.apply_settings)
    except Exception as error:
        record_sync_run(mirror_db.engine, mirror_db.db_schema, record, "failed", message=str(error).splitlines()[0][:500])
        raise

    after = read_mirror(mirror_db.engine, mirror_db.db_schema, sync_plan.scope)
    leftover = plan_sync(clerk_snapshot, after.snapshot, live_rows_before=after.live_rows)
    for entity, key in MIRROR_TABLE_KEYS.items():
        if key not in context.selected_asset_keys:
            continue
        written = result.rows_written[entity]
        yield MaterializeResult(
            asset_key=key,
            metadata={
                "sync_run_id": MetadataValue.int(result.sync_run_id),
                "rows_written": MetadataValue.int(sum(written.values())),
                **counts_metadata({entity: written}, prefix="written."),
                "live_rows": MetadataValue.int(after.live_rows[entity]),
                "apply_seconds": MetadataValue.float(round(result.seconds, 3)),
            },
        )
        remaining = leftover.entity(entity)
        yield AssetCheckResult(
            asset_key=key,
            check_name="matches_clerk",
            passed=remaining.is_noop,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "rows_still_differing": MetadataValue.int(len(remaining.upserts) + len(remaining.deletes)),
                "sample": sample_table(remaining.upserts, ["id", "change_kind", "changed_columns"]),
            },
        )
