"""The daily full sync. Its time is SYNC_SCHEDULE_CRON (UTC), 03:00 by default."""

import os

from dagster import DefaultScheduleStatus, ScheduleDefinition

from sync_pipeline.defs.jobs import full_sync_job
from sync_pipeline.defs.run_config import SyncRunConfig, sync_run_config

DEFAULT_CRON = "0 3 * * *"

daily_full_sync = ScheduleDefinition(
    name="daily_full_sync",
    job=full_sync_job,
    run_config=sync_run_config(SyncRunConfig()),  # every option at its default: the whole instance, applied
    cron_schedule=os.environ.get("SYNC_SCHEDULE_CRON", DEFAULT_CRON),
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Reconcile the whole mirror with Clerk once a day: catches every missed or lost webhook.",
)
