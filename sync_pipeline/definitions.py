"""The code location: everything Dagster loads, assembled from ``sync_pipeline.defs``.

Settings come from the environment (``sync_pipeline.settings`` lists them). Secrets go
through ``EnvVar``: read when a run starts, never shown in the UI or run config.
"""

from sync_pipeline.collector import no_collections_while_importing

# The code location's imports, with the collector off: a run worker imports all of this
# before its first step, on the path from a webhook to the mirror.
with no_collections_while_importing():
    from dagster import AssetSpec, Definitions, EnvVar, load_asset_checks_from_modules, load_assets_from_modules

    from sync_pipeline import settings
    from sync_pipeline.clerk.client import ClerkClient
    from sync_pipeline.defs import assets, checks
    from sync_pipeline.defs.alerts import sync_check_alerts, sync_failure_alerts
    from sync_pipeline.defs.io_managers import FrameFilesystemIOManager
    from sync_pipeline.defs.jobs import full_sync_job, partial_sync_job
    from sync_pipeline.defs.resources import MirrorDatabase
    from sync_pipeline.defs.schedules import daily_full_sync
    from sync_pipeline.defs.sensors import clerk_webhook_sensor


def build_resources(*, database_url: str | None = None, app_tables_config: str = "") -> dict:
    """The resources, from the environment unless given: the CLI passes the embedded database's URL when
    DATABASE_URL is unset, and the application tables' file its ``--config`` names.

    A URL given here is recorded with the run (it is the resource's config): only one without a secret may be.
    DATABASE_URL itself goes through ``EnvVar``, whose value Dagster never records.
    """
    return {
        "clerk": ClerkClient(
            secret_key=EnvVar("CLERK_SECRET_KEY"),
            api_url=settings.clerk_api_url(),
            requests_per_10s=settings.clerk_requests_per_10s(),
            rate_share=settings.clerk_rate_share(),
            stall_timeout_seconds=settings.clerk_stall_timeout_seconds(),
        ),
        "mirror_db": MirrorDatabase(
            database_url=database_url or EnvVar("DATABASE_URL"),
            db_schema=settings.sync_schema(),
            include_private_metadata=settings.include_private_metadata(),
            hard_delete=settings.hard_delete(),
            app_tables_config=app_tables_config,
        ),
    }


def build_definitions(resources: dict) -> Definitions:
    """The code location over the given resources (tests pass their own).

    Step outputs go through :class:`FrameFilesystemIOManager` unless ``resources`` names
    another ``io_manager``: a run may execute each step in its own process, and Dagster's
    default pickles a million-row snapshot to disk and back at every hand-off.
    """
    resources = {"io_manager": FrameFilesystemIOManager(), **resources}
    asset_defs = load_assets_from_modules([assets])
    if not _app_tables_declared(resources):
        asset_defs = [a.map_asset_specs(_app_tables_off) if assets.APP_TABLES_KEY in a.keys else a for a in asset_defs]
    return Definitions(
        assets=asset_defs,
        asset_checks=load_asset_checks_from_modules([assets, checks]),
        jobs=[full_sync_job, partial_sync_job],
        schedules=[daily_full_sync],
        sensors=[clerk_webhook_sensor, sync_failure_alerts, sync_check_alerts],
        resources=resources,
    )


APP_TABLES_OFF_GROUP = "app_tables_off"


def _app_tables_declared(resources: dict) -> bool:
    return bool(getattr(resources.get("mirror_db"), "app_tables_config", "") or settings.app_tables_path())


def _app_tables_off(spec: AssetSpec) -> AssetSpec:
    """With no application tables declared, their asset says so and leaves the sync's group (and its jobs).

    Called for every spec of the multi-asset that also writes the mirror tables: those stay as they are.
    """
    if spec.key != assets.APP_TABLES_KEY:
        return spec
    return spec.replace_attributes(
        group_name=APP_TABLES_OFF_GROUP,
        description="Off: SYNC_APP_TABLES is not set, so no application table is kept consistent. Point it at "
        "a YAML file declaring your tables (examples/app_tables.yaml) to turn this on.",
    )


with no_collections_while_importing():  # the definitions built here are long-lived objects too
    defs = build_definitions(build_resources())
