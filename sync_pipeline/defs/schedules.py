"""The daily full sync. Its time is SYNC_SCHEDULE_CRON (UTC), 03:00 by default."""

import os

from dagster import DefaultScheduleStatus, ScheduleDefinition

from sync_pipeline.defs.jobs import full_sync_job

DEFAULT_CRON = "0 3 * * *"

daily_full_sync = ScheduleDefinition(
    name="daily_full_sync",
    job=full_sync_job,
    cron_schedule=os.environ.get("SYNC_SCHEDULE_CRON", DEFAULT_CRON),
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Reconcile the whole mirror with Clerk once a day: catches every missed or lost webhook.",
)
