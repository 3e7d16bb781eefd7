"""The code location: everything Dagster loads, assembled from ``sync_pipeline.defs``.

Settings come from the environment (``sync_pipeline.settings`` lists them). Secrets go
through ``EnvVar``: read when a run starts, never shown in the UI or run config.
"""

from dagster import Definitions, EnvVar, load_asset_checks_from_modules, load_assets_from_modules

from sync_pipeline import settings
from sync_pipeline.clerk.client import ClerkClient
from sync_pipeline.defs import assets, checks
from sync_pipeline.defs.alerts import sync_check_alerts, sync_failure_alerts
from sync_pipeline.defs.io_managers import FrameFilesystemIOManager
from sync_pipeline.defs.jobs import full_sync_job, partial_sync_job
from sync_pipeline.defs.resources import MirrorDatabase, SyncOptions
from sync_pipeline.defs.schedules import daily_full_sync
from sync_pipeline.defs.sensors import clerk_webhook_sensor


def build_resources() -> dict:
    return {
        "clerk": ClerkClient(
            secret_key=EnvVar("CLERK_SECRET_KEY"),
            api_url=settings.clerk_api_url(),
            requests_per_10s=settings.clerk_requests_per_10s(),
            rate_share=settings.clerk_rate_share(),
            stall_timeout_seconds=settings.clerk_stall_timeout_seconds(),
        ),
        "mirror_db": MirrorDatabase(
            database_url=EnvVar("DATABASE_URL"),
            db_schema=settings.sync_schema(),
            include_private_metadata=settings.include_private_metadata(),
            hard_delete=settings.hard_delete(),
        ),
        "sync_options": SyncOptions(),
    }


def build_definitions(resources: dict) -> Definitions:
    """The code location over the given resources (tests pass their own).

    Step outputs go through :class:`FrameFilesystemIOManager` unless ``resources`` names
    another ``io_manager``: a run may execute each step in its own process, and Dagster's
    default pickles a million-row snapshot to disk and back at every hand-off.
    """
    resources = {"io_manager": FrameFilesystemIOManager(), **resources}
    return Definitions(
        assets=load_assets_from_modules([assets]),
        asset_checks=load_asset_checks_from_modules([assets, checks]),
        jobs=[full_sync_job, partial_sync_job],
        schedules=[daily_full_sync],
        sensors=[clerk_webhook_sensor, sync_failure_alerts, sync_check_alerts],
        resources=resources,
    )


defs = build_definitions(build_resources())
