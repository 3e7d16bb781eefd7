"""Jobs: the full sync and the partial sync. Both run the same assets; run config decides the scope.

``ops.sync_scope.config`` (:class:`~sync_pipeline.defs.run_config.SyncRunConfig`) carries the
scope (user_ids, organization_ids), the webhook events to answer (webhook_event_ids, or a
replay window), dry_run and the guard; ``sync_scope`` hands it on to every later step.
"""

from dagster import AssetSelection, define_asset_job

from sync_pipeline.defs.assets import MIRROR_TABLE_KEYS, SYNC_GROUP, clerk_webhook_inbox

SYNC_ASSETS = (
    AssetSelection.groups(SYNC_GROUP)
    | AssetSelection.assets(*MIRROR_TABLE_KEYS.values())
    | AssetSelection.assets(clerk_webhook_inbox)
)
# Every sync writes the mirror; the run queue (dagster.yaml) lets one at a time through.
WRITES_MIRROR = {"sync_pipeline/writes_mirror": "true"}

# Every step of a run in the run worker's own process, by default. The steps run one
# after the other anyway (each needs the one before; the mirror's live ids are read in a
# thread beside the Clerk scan, the memberships in a process of their own), and with the
# multiprocess executor each of the 11 steps starts a Python that imports Dagster and the
# code location again. Measured with `dagster job execute` (benchmarks/executors.py, see
# docs/performance.md), on 2 loaded cores at 100k users: a 10-user partial run 9.8 s in
# process against 57.9 s with a process per step, a no-op full run 24.3 s against 84.3 s.
# The Launchpad can still pick `multiprocess` under `execution.config`: a default, not a lock.
IN_PROCESS_BY_DEFAULT = {"execution": {"config": {"in_process": {}}}}

full_sync_job = define_asset_job(
    "full_sync_job",
    selection=SYNC_ASSETS,
    description="Read all of Clerk and the mirror, plan the difference, apply it behind the delete guard. "
    "Set ops.sync_scope.config (user_ids, organization_ids, dry_run, allow_mass_delete) for a "
    "scoped or dry-run backfill.",
    tags={"sync_pipeline/kind": "full", **WRITES_MIRROR},
    config=IN_PROCESS_BY_DEFAULT,
)

partial_sync_job = define_asset_job(
    "partial_sync_job",
    selection=SYNC_ASSETS,
    description="Re-read from Clerk, by id, the users and organizations that webhook events name, and apply "
    "them as the full sync would. Launched by clerk_webhook_sensor; launch it by hand with "
    "webhook_event_ids, or replay_since/replay_until, to re-process events after an outage or a bug.",
    tags={"sync_pipeline/kind": "partial", **WRITES_MIRROR},
    config=IN_PROCESS_BY_DEFAULT,
)
