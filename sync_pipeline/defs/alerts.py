"""Alert sensors: a failed sync, or a check that failed in a sync that ran, reaches people.

Both run in the daemon beside the schedule and the webhook sensor, and both go through
``sync_pipeline.alerts.send_once``, so the same problem is announced once.
"""

import os

from dagster import (
    AssetCheckSeverity,
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    run_failure_sensor,
    run_status_sensor,
)

from sync_pipeline.alerts import Alert, AlertDestinations, send_once
from sync_pipeline.defs.jobs import full_sync_job, partial_sync_job
from sync_pipeline.defs.resources import MirrorDatabase

SYNC_JOBS = [full_sync_job, partial_sync_job]


def destinations_from_env() -> AlertDestinations:
    return AlertDestinations(
        webhook_url=os.environ.get("SYNC_ALERT_WEBHOOK_URL", ""),
        slack_token=os.environ.get("SLACK_BOT_TOKEN", ""),
        slack_channel=os.environ.get("SYNC_ALERT_SLACK_CHANNEL", ""),
    )


def run_link(run_id: str) -> str:
    return f"{os.environ.get('DAGSTER_UI_URL', 'http://localhost:3000').rstrip('/')}/runs/{run_id}"


def failure_summary(context: RunFailureSensorContext) -> str:
    """The innermost error of the first failed step, one line; else the run failure message."""
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            return f"step {event.step_key}: {error.message.strip().splitlines()[0]}"
    return context.failure_event.message or "the run failed"


@run_failure_sensor(
    name="sync_failure_alerts",
    monitored_jobs=SYNC_JOBS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Posts an alert naming the run, what failed and a link into the UI when a sync run fails.",
)
def sync_failure_alerts(context: RunFailureSensorContext, mirror_db: MirrorDatabase) -> None:
    run = context.dagster_run
    alert = Alert(
        title=f"{run.job_name} failed",
        summary=failure_summary(context),
        link=run_link(run.run_id),
        run_id=run.run_id,
        job_name=run.job_name,
    )
    send_once(mirror_db.engine, mirror_db.db_schema, destinations_from_env(), alert)


@run_status_sensor(
    name="sync_check_alerts",
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=SYNC_JOBS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Posts an alert for each asset check that failed in a sync run that otherwise succeeded "
    "(e-mail conflicts, dangling memberships, a mirror that does not match Clerk, webhook lag), "
    "once per distinct problem.",
)
def sync_check_alerts(context: RunStatusSensorContext, mirror_db: MirrorDatabase) -> None:
    run = context.dagster_run
    for entry in context.instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.passed:
            continue
        metadata = {key: value.value for key, value in evaluation.metadata.items()}
        asset = evaluation.asset_key.to_user_string()
        alert = Alert(
            title=f"check {evaluation.check_name} failed on {asset}",
            summary=evaluation.description or ", ".join(f"{k}: {v}" for k, v in metadata.items() if k != "sample"),
            link=run_link(run.run_id),
            run_id=run.run_id,
            job_name=run.job_name,
            severity="warning" if evaluation.severity == AssetCheckSeverity.WARN else "error",
            details={k: str(v)[:1000] for k, v in metadata.items()},
            # The offending rows identify the problem: the same rows tomorrow are not news.
            fingerprint_parts=(evaluation.check_name, asset, str(metadata.get("sample", metadata))),
        )
        send_once(mirror_db.engine, mirror_db.db_schema, destinations_from_env(), alert)
