"""The sync as assets: snapshot Clerk and the mirror, plan the difference, apply it.

                  ┌─> clerk_snapshot ─┐
    sync_scope ───┤                   ├─> sync_plan ──[delete_guard]──> clerk_mirror/users, …/organizations,
                  └─> mirror_snapshot ┘                                 …/organization_memberships ─> clerk_webhook_inbox
                                                                        app_tables

``mirror_snapshot`` also reads the application's declared tables (``SYNC_APP_TABLES``) in
scope, and the same apply transaction keeps them consistent (the ``app_tables`` asset
reports what it wrote).

Each step is a thin adapter around a pure or I/O module; the logic lives in
``sync_pipeline.diff`` (pure) and ``sync_pipeline.mirror`` / ``sync_pipeline.clerk`` (I/O).
"""


import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

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

from sync_pipeline.app_tables.rules import plan_app_tables
from sync_pipeline.app_tables.snapshot import AppTablesSnapshot, read_app_tables
from sync_pipeline.clerk.client import ClerkClient
from sync_pipeline.collector import fewer_collections
from sync_pipeline.frames import select_rows
from sync_pipeline.clerk.snapshot import read_clerk
from sync_pipeline.defs.metadata import counts_table, plan_metadata, read_report_table, sample_table
from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.defs.run_config import SCOPE_TAG, RunScope, SyncRunConfig
from sync_pipeline.diff.plan import SyncPlan
from sync_pipeline.diff.rules import plan_leftover, plan_sync
from sync_pipeline.mirror.apply import ApplyResult, SyncRunRecord, apply_plan, record_sync_run
from sync_pipeline.mirror.snapshot import MirrorState, read_live_keys, read_mirror, read_mirror_rows
from sync_pipeline.errors import ConfigurationError
from sync_pipeline.model import ENTITIES, Snapshot, SyncScope
from sync_pipeline.scope_check import ids_not_in_clerk
from sync_pipeline.text_columns import is_in
from sync_pipeline.webhooks import inbox
from sync_pipeline.webhooks.runs import events_for_run, organizations_holding_roles, organizations_of_users, run_lag

SYNC_GROUP = "clerk_sync"
MIRROR_GROUP = "clerk_mirror"
MIRROR_TABLE_KEYS = {entity: AssetKey(["clerk_mirror", entity]) for entity in ENTITIES}
# In the sync group, which the jobs select: it is written by the mirror's apply, in its transaction.
APP_TABLES_KEY = AssetKey("app_tables")


@dataclass
class DatabaseSnapshot:
    """What ``mirror_snapshot`` reads before the run writes: the mirror and the application's tables, in scope."""

    mirror: MirrorState
    app_tables: AppTablesSnapshot


def planned_counts(plan: SyncPlan) -> dict:
    """The plan's counts as the audit trail (sync_runs.counts) records them."""
    counts: dict = {"planned": plan.counts()}
    if plan.app_tables:
        counts["app_tables_planned"] = plan.app_table_counts()
    return counts


def sync_run_record(
    context: AssetExecutionContext, options: SyncRunConfig, scope: SyncScope, counts: dict | None = None
) -> SyncRunRecord:
    run = context.instance.get_run_stats(context.run_id) if context.instance else None
    started = datetime.fromtimestamp(run.start_time, tz=timezone.utc) if run and run.start_time else datetime.now(timezone.utc)
    return SyncRunRecord(
        run_id=context.run_id,
        mode=options.audit_mode,
        dry_run=options.dry_run,
        scope={
            "user_ids": list(scope.user_ids),
            "organization_ids": list(scope.organization_ids),
            **({"role_ids": list(scope.role_ids)} if scope.role_ids else {}),
            **({"permission_ids": list(scope.permission_ids)} if scope.permission_ids else {}),
            "webhook_events": len(scope.event_ids),
        },
        started_at=started,
        counts=counts or {},
    )


@asset(
    group_name=SYNC_GROUP,
    kinds={"postgres"},
    description="What this run covers: the ids in run config, plus the users and organizations of the webhook "
    "events it answers (named by svix id, or received in a replay window); for a deleted user (or one named by "
    "hand) also the organizations of its live memberships in the mirror, whose members_count moves. A full sync "
    "also answers every event pending when it starts, since it reads all of Clerk afterwards. The run's options "
    "(its config here: dry_run, the guard, the application-table kinds) travel with the scope to every later step.",
)
def sync_scope(context: AssetExecutionContext, config: SyncRunConfig, mirror_db: MirrorDatabase) -> Output[RunScope]:
    mirror_db.ensure_ready()
    explicit = config.explicit_scope
    events = events_for_run(
        mirror_db.engine,
        mirror_db.db_schema,
        svix_ids=config.webhook_event_ids,
        since=config.replay_since,
        until=config.replay_until,
        pending_too=explicit.is_full and not config.answers_webhooks,
    )
    affected = inbox.affected_scope(events)
    user_ids, organization_ids = affected["user_ids"], affected["organization_ids"]
    if config.answers_webhooks and explicit.is_full and not any(affected.values()):
        # Never widen an empty partial run into a full sync.
        raise ConfigurationError("the webhook events named for this run affect no user or organization: nothing to sync")
    fan_out = None
    if explicit.is_full and not config.answers_webhooks:
        scope = SyncScope(event_ids=tuple(e.svix_id for e in events))
    else:
        # A role's or a permission's change moves the permissions of every membership of the
        # roles it changes: those organizations' memberships are read again.
        fan_out = organizations_holding_roles(
            mirror_db.engine, mirror_db.db_schema, affected["role_ids"], affected["permission_ids"]
        )
        if fan_out.deferred_organizations:
            context.log.warning(f"role/permission change: {fan_out.describe()}")
        organization_ids = [*organization_ids, *fan_out.organization_ids]
        users = sorted({*explicit.user_ids, *user_ids})
        # A deleted user's memberships go with it, and Clerk may send no membership event:
        # their organizations' members_count (on the organization and embedded in each of
        # its memberships) moves all the same. Ids named by hand may be deleted users too.
        possibly_gone = {*explicit.user_ids, *(e.user_id for e in events if e.event_type == "user.deleted" and e.user_id)}
        member_organizations = organizations_of_users(mirror_db.engine, mirror_db.db_schema, sorted(possibly_gone))
        scope = SyncScope(
            user_ids=tuple(users),
            organization_ids=tuple(sorted({*explicit.organization_ids, *organization_ids, *member_organizations})),
            event_ids=tuple(e.svix_id for e in events),
            role_ids=fan_out.role_ids,
            permission_ids=tuple(affected["permission_ids"]),
        )
    types = pd.Series([e.event_type for e in events], dtype="string").value_counts().to_dict()
    run_scope = RunScope(scope=scope, options=config)
    return Output(
        run_scope,
        tags=run_scope.work_tags,
        metadata={
            "scope": MetadataValue.text(scope.describe()),
            "mode": MetadataValue.text(config.audit_mode),
            "dry_run": MetadataValue.bool(config.dry_run),
            "user_ids": MetadataValue.int(len(scope.user_ids)),
            "organization_ids": MetadataValue.int(len(scope.organization_ids)),
            "webhook_events": MetadataValue.int(len(events)),
            "webhook_event_types": MetadataValue.json({str(k): int(v) for k, v in types.items()}),
            **(
                {"role_change": MetadataValue.text(fan_out.describe()), "role_change_requests": MetadataValue.int(fan_out.requests)}
                if fan_out is not None and (fan_out.role_ids or affected["permission_ids"])
                else {}
            ),
        },
    )


@asset(
    group_name=SYNC_GROUP,
    kinds={"clerk", "pandas"},
    description="Clerk's users, organizations and memberships in the run's scope, read through the Backend API. "
    "Each materialization is tagged sync_pipeline/scope=full or =partial; a partial one also carries the last full "
    "read's rows (last_full_read_rows, last_full_read_run), so the latest still shows the whole instance.",
)
def clerk_snapshot(
    context: AssetExecutionContext, sync_scope: RunScope, clerk: ClerkClient, mirror_db: MirrorDatabase
) -> Output[Snapshot]:
    started = time.perf_counter()
    scope = sync_scope.scope
    with fewer_collections(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="mirror-live-keys") as pool:
        # The mirror's live ids, which a full scan's absences are checked against, are read
        # while Clerk is paged: the database works while the client waits on the network.
        live_keys = pool.submit(read_live_keys, mirror_db.engine, mirror_db.db_schema) if scope.is_full else None
        snapshot, report = read_clerk(
            clerk,
            scope,
            include_private_metadata=mirror_db.include_private_metadata,
            mirror_live_keys=live_keys.result if live_keys is not None else None,
        )
    requests = sum(stats.get("requests", 0) for stats in report.fetch_stats.values())
    throttled = sum(stats.get("responses_429", 0) for stats in report.fetch_stats.values())
    retries = sum(stats.get("retries", 0) for stats in report.fetch_stats.values())
    # A scoped run's ids that Clerk does not have: mistyped, or deleted (their mirror rows go).
    not_in_clerk = {} if scope.is_full else {"not_in_clerk": MetadataValue.json(ids_not_in_clerk(scope, snapshot))}
    return Output(
        snapshot,
        tags=sync_scope.work_tags,
        metadata={
            "scope": MetadataValue.text(scope.describe()),
            **not_in_clerk,
            **({} if scope.is_full else last_full_read(context)),
            "rows_read": read_report_table(report),
            "requests": MetadataValue.int(requests),
            "responses_429": MetadataValue.int(throttled),
            "retries": MetadataValue.int(retries),
            "seconds": MetadataValue.float(round(time.perf_counter() - started, 3)),
            "fetch_stats": MetadataValue.json(report.fetch_stats),
        },
    )


# What a partial read of Clerk carries forward from the last full one.
LAST_FULL_READ_KEYS = ("last_full_read_run", "last_full_read_rows")


def last_full_read(context: AssetExecutionContext) -> dict:
    """The last full read's run and rows, from clerk_snapshot's latest materialization (itself, or what it carried).

    A partial run reads a few ids; its materialization is the latest, and without this the UI would show a
    handful of rows as if they were Clerk. One lookup, whatever the number of partial runs since.
    """
    event = context.instance.get_latest_materialization_event(context.asset_key)
    latest = event.asset_materialization if event is not None else None
    if latest is None:
        return {}
    if latest.tags.get(SCOPE_TAG) == "full" and "rows_read" in latest.metadata:
        return {"last_full_read_run": MetadataValue.dagster_run(event.run_id), "last_full_read_rows": latest.metadata["rows_read"]}
    return {key: latest.metadata[key] for key in LAST_FULL_READ_KEYS if key in latest.metadata}


@asset(
    group_name=SYNC_GROUP,
    kinds={"postgres", "pandas"},
    description="The mirror tables' rows in the run's scope, before this run writes anything; and the rows in "
    "scope of the application tables SYNC_APP_TABLES declares, once every declared name has been checked "
    "against the database (a bad one fails the run here, before any write).",
)
def mirror_snapshot(sync_scope: RunScope, mirror_db: MirrorDatabase) -> Output[DatabaseSnapshot]:
    started = time.perf_counter()
    with fewer_collections():
        state = read_mirror(mirror_db.engine, mirror_db.db_schema, sync_scope.scope)
    app_tables = read_app_tables(mirror_db.engine, mirror_db.app_tables(), sync_scope.scope)
    return Output(
        DatabaseSnapshot(mirror=state, app_tables=app_tables),
        tags=sync_scope.work_tags,
        metadata={
            "schema": MetadataValue.text(mirror_db.db_schema),
            "rows": counts_table(
                {e: {"rows_in_scope": n, "live_rows": state.live_rows.get(e, 0)} for e, n in state.snapshot.row_counts().items()}
            ),
            "app_tables": MetadataValue.text(app_tables.source or "none declared (SYNC_APP_TABLES unset)"),
            **(
                {
                    "app_table_rows": counts_table(
                        {label: {"rows_in_scope": len(t.rows), "rows": t.total_rows} for label, t in app_tables.tables.items()},
                        row_label="table",
                    )
                }
                if app_tables.tables
                else {}
            ),
            "seconds": MetadataValue.float(round(time.perf_counter() - started, 3)),
        },
    )


@asset(
    group_name=SYNC_GROUP,
    kinds={"pandas"},
    description="What differs between Clerk and the mirror: rows to insert, update, restore and delete, "
    "duplicates, conflicting e-mails and validation problems; and in the application's tables, rows missing "
    "for a live user or membership, orphaned rows and duplicates.",
)
def sync_plan(sync_scope: RunScope, clerk_snapshot: Snapshot, mirror_snapshot: DatabaseSnapshot) -> Output[SyncPlan]:
    started = time.perf_counter()
    sync_options = sync_scope.options
    mirror = mirror_snapshot.mirror
    plan = plan_sync(clerk_snapshot, mirror.snapshot, live_rows_before=mirror.live_rows)
    plan.app_tables = plan_app_tables(mirror_snapshot.app_tables, clerk_snapshot, sync_options.checked_app_table_kinds())
    metadata = plan_metadata(plan, dry_run=sync_options.dry_run)
    metadata["seconds"] = MetadataValue.float(round(time.perf_counter() - started, 3))
    return Output(plan, metadata=metadata, tags=sync_scope.work_tags)


@multi_asset(
    specs=[
        AssetSpec(
            key,
            group_name=MIRROR_GROUP,
            kinds={"postgres"},
            deps=["sync_scope", "sync_plan", "clerk_snapshot"],
            skippable=True,
            description=f"The mirror table {entity}: what applications join against.",
        )
        for entity, key in MIRROR_TABLE_KEYS.items()
    ]
    + [
        AssetSpec(
            APP_TABLES_KEY,
            group_name=SYNC_GROUP,
            kinds={"postgres"},
            deps=["sync_scope", "sync_plan", "clerk_snapshot"],
            skippable=True,
            description="The application's tables SYNC_APP_TABLES declares, kept consistent with Clerk in the "
            "mirror's transaction: rows provisioned, orphans deleted or anonymized, duplicates removed.",
        )
    ],
    check_specs=[
        AssetCheckSpec(
            "matches_clerk",
            asset=key,
            description="The rows the apply wrote, read back from the table, equal Clerk's snapshot: nothing left "
            "to change (rows not written equalled Clerk when planned, and only a sync writes the mirror).",
        )
        for key in MIRROR_TABLE_KEYS.values()
    ]
    + [
        AssetCheckSpec(
            "app_tables_follow_their_policies",
            asset=APP_TABLES_KEY,
            description="Read back after apply, no declared table has a row missing, orphaned or duplicated in scope "
            "(of the kinds the run fixes).",
        )
    ],
    ins={"sync_scope": AssetIn(), "sync_plan": AssetIn(), "clerk_snapshot": AssetIn()},
    # Subsettable only so that a dry run may skip every output: the plan is applied whole
    # whichever tables are selected, since one transaction must keep them consistent.
    can_subset=True,
)
def mirror_tables(
    context: AssetExecutionContext,
    sync_scope: RunScope,
    sync_plan: SyncPlan,
    clerk_snapshot: Snapshot,
    mirror_db: MirrorDatabase,
):
    """Apply the plan in one transaction, then read the scope back and verify it."""
    sync_options = sync_scope.options
    record = sync_run_record(context, sync_options, sync_plan.scope, counts=planned_counts(sync_plan))
    if sync_options.dry_run:
        record_sync_run(mirror_db.engine, mirror_db.db_schema, record, "dry_run")
        context.log.info("Dry run: the plan is in sync_plan's metadata; no mirror row written.")
        return

    def answer_webhook_events(connection) -> None:
        # In the apply's transaction: events count as processed exactly when the mirror has their changes.
        inbox.mark_processed(connection, mirror_db.db_schema, list(sync_plan.scope.event_ids), context.run_id)

    try:
        result = apply_plan(
            mirror_db.engine,
            mirror_db.db_schema,
            sync_plan,
            record,
            mirror_db.apply_settings,
            before_commit=answer_webhook_events if sync_plan.scope.event_ids else None,
        )
    except Exception as error:
        record_sync_run(mirror_db.engine, mirror_db.db_schema, record, "failed", message=str(error).splitlines()[0][:500])
        raise

    after, leftover = read_back(mirror_db, sync_plan, clerk_snapshot)
    for entity, key in MIRROR_TABLE_KEYS.items():
        if key not in context.selected_asset_keys:
            continue
        written = result.rows_written[entity]
        yield MaterializeResult(
            asset_key=key,
            tags=sync_scope.work_tags,
            metadata={
                "sync_run_id": MetadataValue.int(result.sync_run_id),
                "rows_written": MetadataValue.int(sum(written.values())),
                "written": counts_table({entity: written}),
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
    if sync_plan.app_tables and APP_TABLES_KEY in context.selected_asset_keys:
        yield from _app_tables_results(mirror_db, sync_options, sync_plan, clerk_snapshot, result)


def read_back(mirror_db: MirrorDatabase, plan: SyncPlan, clerk: Snapshot) -> tuple[MirrorState, SyncPlan]:
    """The rows the apply wrote, read back from the mirror and planned against Clerk again.

    Rows the plan did not write equalled Clerk when it was made, and nothing but a sync
    (under the write lock) writes the mirror, so only what was written is read back: the
    check costs what the sync changed, not the size of the tables. A no-op reads nothing.
    """
    touched = plan.touched_ids()
    if not any(len(ids) for ids in touched.values()):
        # Nothing written, nothing to read back: the plan itself found no difference.
        live = {name: entity.live_rows_before for name, entity in plan.entities.items()}
        empty = Snapshot(scope=plan.scope, **{e: clerk.frame(e).iloc[0:0] for e in ENTITIES})
        return MirrorState(snapshot=empty, live_rows=live), plan
    after = read_mirror_rows(mirror_db.engine, mirror_db.db_schema, touched, plan.scope)
    # select_rows filters Arrow text chunk by chunk: a plain mask would copy every raw document.
    written = Snapshot(
        scope=plan.scope,
        nul_replaced=clerk.nul_replaced,
        **{e: select_rows(clerk.frame(e), is_in(clerk.frame(e)["id"], touched[e])) for e in ENTITIES},
    )
    # Only the writes left matter here: the sync's plan already reported validation and e-mail conflicts.
    return after, plan_leftover(written, after.snapshot, live_rows_before=after.live_rows)


def _app_tables_results(
    mirror_db: MirrorDatabase, sync_options: SyncRunConfig, sync_plan: SyncPlan, clerk_snapshot: Snapshot, result: ApplyResult
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """What the apply wrote to the application's tables, and whether they now follow their policies."""
    yield MaterializeResult(
        asset_key=APP_TABLES_KEY,
        metadata={
            "sync_run_id": MetadataValue.int(result.sync_run_id),
            "rows_written": MetadataValue.int(sum(sum(kinds.values()) for kinds in result.app_tables_written.values())),
            "written": counts_table(result.app_tables_written, row_label="table"),
        },
    )
    after = read_app_tables(mirror_db.engine, mirror_db.app_tables(), sync_plan.scope)
    leftover = plan_app_tables(after, clerk_snapshot, sync_options.checked_app_table_kinds())
    remaining = {label: plan.writes() for label, plan in leftover.items() if not plan.is_noop}
    yield AssetCheckResult(
        asset_key=APP_TABLES_KEY,
        check_name="app_tables_follow_their_policies",
        passed=not remaining,
        severity=AssetCheckSeverity.ERROR,
        metadata={"tables_still_drifting": MetadataValue.json(remaining)},
    )


@asset(
    group_name=MIRROR_GROUP,
    kinds={"postgres"},
    deps=list(MIRROR_TABLE_KEYS.values()),
    description="Clerk's webhook events in the inbox table: how many wait, and how long events took from "
    "the receiver to the mirror (received -> processed), for this run and over the last hour.",
)
def clerk_webhook_inbox(context: AssetExecutionContext, mirror_db: MirrorDatabase) -> MaterializeResult:
    health = inbox.inbox_health(mirror_db.engine, mirror_db.db_schema)
    this_run = run_lag(mirror_db.engine, mirror_db.db_schema, context.run_id)
    return MaterializeResult(
        metadata={
            "pending": MetadataValue.int(health.pending_count),
            "oldest_pending_seconds": MetadataValue.float(round(health.oldest_pending_age_seconds or 0.0, 3)),
            "answered_by_this_run": MetadataValue.int(this_run.events),
            "this_run_lag_max_seconds": MetadataValue.float(round(this_run.max_seconds, 3)),
            "this_run_lag_p50_seconds": MetadataValue.float(round(this_run.p50_seconds, 3)),
            "last_hour_processed": MetadataValue.int(health.processed_last_hour),
            "last_hour_lag_p95_seconds": MetadataValue.float(round(health.lag_p95_seconds or 0.0, 3)),
            "last_hour_lag_max_seconds": MetadataValue.float(round(health.lag_max_seconds or 0.0, 3)),
        }
    )
