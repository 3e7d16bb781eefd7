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

full_sync_job = define_asset_job(
    "full_sync_job",
    selection=SYNC_ASSETS,
    description="Read all of Clerk and the mirror, plan the difference, apply it behind the delete guard. "
    "Set ops.sync_scope.config (user_ids, organization_ids, dry_run, allow_mass_delete) for a "
    "scoped or dry-run backfill.",
    tags={"sync_pipeline/kind": "full", **WRITES_MIRROR},
)

partial_sync_job = define_asset_job(
    "partial_sync_job",
    selection=SYNC_ASSETS,
    description="Re-read from Clerk, by id, the users and organizations that webhook events name, and apply "
    "them as the full sync would. Launched by clerk_webhook_sensor; launch it by hand with "
    "webhook_event_ids, or replay_since/replay_until, to re-process events after an outage or a bug.",
    tags={"sync_pipeline/kind": "partial", **WRITES_MIRROR},
)
