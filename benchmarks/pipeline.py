"""One sync, phase by phase, through the very functions the Dagster assets call, in their order.

============  ======================================================================
phase         what runs (the asset that runs it)
============  ======================================================================
scope         ``MirrorDatabase.ensure_ready`` + ``events_for_run`` (``sync_scope``)
fetch         ``read_clerk`` (``clerk_snapshot``); meanwhile ``read_mirror`` (``mirror_snapshot``)
              in a process of its own, as Dagster's multiprocess executor runs the two
              steps side by side (``benchmarks/mirror_step.py``)
snapshot      what is left of ``read_mirror`` once the fetch is done, and loading its
              frames from the IO manager's file (the wait the ``sync_plan`` step has)
diff          ``plan_sync`` + ``plan_metadata`` (``sync_plan``) + ``delete_guard_violations``
              (the ``delete_guard`` check)
apply         ``apply_plan`` (``mirror_tables``)
verify        ``read_back``: the rows written, read again and planned against Clerk
              (``mirror_tables``' ``matches_clerk`` checks)
============  ======================================================================

Dagster's own cost (run start, step launch, the IO manager handing outputs between
steps) is not in these phases, except for loading the mirror snapshot's file;
``handoff`` measures the IO manager part separately.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sync_pipeline.clerk.client import ClerkClient
from sync_pipeline.clerk.snapshot import read_clerk
from sync_pipeline.defs.assets import read_back
from sync_pipeline.defs.metadata import plan_metadata
from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.diff.guard import delete_guard_violations
from sync_pipeline.diff.plan import SyncPlan
from sync_pipeline.diff.rules import plan_sync
from sync_pipeline.mirror.apply import SyncRunRecord, apply_plan
from sync_pipeline.mirror.snapshot import read_live_keys
from sync_pipeline.model import ENTITIES, Snapshot, SyncScope
from sync_pipeline.webhooks.runs import events_for_run

from benchmarks.measure import Case, Recorder
from benchmarks.mirror_step import MirrorSnapshotStep


@dataclass
class SyncOutcome:
    clerk: Snapshot
    plan_counts: dict[str, dict[str, int]]
    rows_written: dict[str, dict[str, int]]
    leftover_changes: int
    fetch_stats: dict[str, Any] = field(default_factory=dict)
    plan: SyncPlan | None = None

    @property
    def total_written(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.rows_written.values())


def _sum_stats(fetch_stats: dict[str, dict], key: str) -> int:
    return sum(int(stats.get(key, 0)) for stats in fetch_stats.values())


def run_sync(
    recorder: Recorder,
    case: Case,
    *,
    clerk: ClerkClient,
    mirror_db: MirrorDatabase,
    scope: SyncScope,
    emulator=None,  # noqa: ANN001 - EmulatorProcess, for the server-side request counts
    reuse_clerk: Snapshot | None = None,
    keep_plan: bool = False,
) -> SyncOutcome:
    """Run one sync of ``scope``; every phase is appended to ``case``.

    ``reuse_clerk`` skips the fetch and uses that snapshot (Clerk unchanged since it was read).
    """
    with MirrorSnapshotStep(mirror_db.database_url, mirror_db.db_schema, scope) as mirror_step:
        return _run_sync(recorder, case, clerk, mirror_db, scope, emulator, reuse_clerk, keep_plan, mirror_step)


def _run_sync(recorder, case, clerk, mirror_db, scope, emulator, reuse_clerk, keep_plan, mirror_step) -> SyncOutcome:  # noqa: ANN001
    engine, schema = mirror_db.engine, mirror_db.db_schema

    with recorder.phase(case, "scope") as phase:
        mirror_db.ensure_ready()
        events = events_for_run(engine, schema, pending_too=scope.is_full)
        phase.extra["webhook_events"] = len(events)

    fetch_stats: dict[str, Any] = {}
    if reuse_clerk is None:
        if emulator is not None:
            emulator.reset_stats()
        with recorder.phase(case, "fetch") as phase:
            mirror_step.start()
            # As the clerk_snapshot asset does: the mirror's live ids are read while Clerk is paged.
            with ThreadPoolExecutor(max_workers=1) as pool:
                live_keys = pool.submit(read_live_keys, engine, schema) if scope.is_full else None
                clerk_snapshot, report = read_clerk(
                    clerk, scope, include_private_metadata=mirror_db.include_private_metadata,
                    mirror_live_keys=live_keys.result if live_keys is not None else None,
                )
            phase.rows = sum(report.rows.values())
            phase.requests = _sum_stats(report.fetch_stats, "requests")
            phase.responses_429 = _sum_stats(report.fetch_stats, "responses_429")
            phase.extra = {
                "rows": dict(report.rows),
                "retries": _sum_stats(report.fetch_stats, "retries"),
                "pages": _sum_stats(report.fetch_stats, "pages"),
                "client_seconds_per_call": {k: v.get("seconds") for k, v in report.fetch_stats.items()},
                # The rate each list was read at against the budget the client was given, and
                # how many created_at windows the users were walked in by cursor.
                "requests_per_second": {
                    k: {"held": round(v.get("requests_per_10s", 0) / 10, 2), "budget": (v.get("target_per_10s") or 0) / 10}
                    for k, v in report.fetch_stats.items()
                },
                "user_windows": report.fetch_stats.get("users", {}).get("user_windows", 0),
            }
        if emulator is not None:
            served = emulator.stats()
            phase.extra["emulator_requests"] = served["requests"]
            phase.extra["emulator_429s"] = served["responses_429"]
        fetch_stats = report.fetch_stats
    else:
        clerk_snapshot = reuse_clerk
        mirror_step.start()

    with recorder.phase(case, "snapshot") as phase:
        state = mirror_step.result()
        # Rows, not phase.rows: a rate over the wait left after the fetch would say nothing.
        phase.extra["rows"] = sum(state.snapshot.row_counts().values())
        phase.extra["mirror_step"] = mirror_step.timings  # its read and store, beside the fetch

    with recorder.phase(case, "diff") as phase:
        plan = plan_sync(clerk_snapshot, state.snapshot, live_rows_before=state.live_rows)
        plan_metadata(plan, dry_run=False)
        violations = delete_guard_violations(plan)
        phase.rows = sum(clerk_snapshot.row_counts().values()) + sum(state.snapshot.row_counts().values())
        phase.extra["planned"] = plan.counts()
    if violations:
        raise RuntimeError(f"the delete guard refused the benchmark's plan: {[v.describe() for v in violations]}")
    del state

    plan_counts = plan.counts()
    record = SyncRunRecord(
        run_id=f"benchmark-{case.name}",
        mode="full" if scope.is_full else "scoped",
        dry_run=False,
        scope={"user_ids": list(scope.user_ids), "organization_ids": list(scope.organization_ids), "webhook_events": 0},
        started_at=datetime.now(timezone.utc),
        counts={"planned": plan_counts},
    )
    with recorder.phase(case, "apply") as phase:
        result = apply_plan(engine, schema, plan, record, mirror_db.apply_settings)
        phase.rows = result.total_rows_written
        phase.extra["written"] = result.rows_written
    with recorder.phase(case, "verify") as phase:
        after, leftover = read_back(mirror_db, plan, clerk_snapshot)
        phase.rows = sum(after.snapshot.row_counts().values())
        left = sum(len(leftover.entity(e).upserts) + len(leftover.entity(e).deletes) for e in ENTITIES)
        phase.extra["rows_still_differing"] = left
    del after, leftover
    kept_plan = plan if keep_plan else None
    del plan

    return SyncOutcome(
        clerk=clerk_snapshot,
        plan_counts=plan_counts,
        rows_written=result.rows_written,
        leftover_changes=left,
        fetch_stats=fetch_stats,
        plan=kept_plan,
    )
