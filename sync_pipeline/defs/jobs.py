"""Jobs: the full sync. Scope, dry run and the guard are run config (resources.sync_options)."""

from dagster import AssetSelection, define_asset_job

from sync_pipeline.defs.assets import MIRROR_TABLE_KEYS, SYNC_GROUP

SYNC_ASSETS = AssetSelection.groups(SYNC_GROUP) | AssetSelection.assets(*MIRROR_TABLE_KEYS.values())

full_sync_job = define_asset_job(
    "full_sync_job",
    selection=SYNC_ASSETS,
    description="Read all of Clerk and the mirror, plan the difference, apply it behind the delete guard. "
    "Set resources.sync_options.config (user_ids, organization_ids, dry_run, allow_mass_delete) for a "
    "scoped or dry-run backfill.",
    tags={"sync_pipeline/kind": "full", "sync_pipeline/writes_mirror": "true"},
)
