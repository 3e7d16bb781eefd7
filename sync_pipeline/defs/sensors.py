"""The webhook sensor: pending inbox events become one partial-sync run per batch.

Why no high-water-mark cursor: the receiver commits rows concurrently, so a row with an
earlier ``received_at`` (or a smaller anything) can become visible after a later one, and
a "greater than the last seen" cursor would skip it forever. Instead each tick reads the
oldest *pending* events — a row committed late is still pending, so it is found on the
next tick — and the cursor only remembers the last batch launched and how often, so that
the same batch is never launched twice while its run is in flight, and is relaunched
(with a new run key, after a pause) when its run failed and left the events pending.

The sensor never calls Clerk: it reads one indexed query and returns at once, far inside
Dagster's 60 s tick limit.
"""

import hashlib
import json
import time

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sync_pipeline import settings
from sync_pipeline.defs.jobs import partial_sync_job
from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.webhooks import inbox

IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
FIRST_RETRY_PAUSE_SECONDS = 60.0
MAX_RETRY_PAUSE_SECONDS = 3600.0


def retry_pause_seconds(failed_attempts: int) -> float:
    """60 s after the first failure, doubling up to an hour: a batch that keeps failing
    (a guard refusal, Clerk down) is retried without hammering anything."""
    return min(FIRST_RETRY_PAUSE_SECONDS * 2 ** (failed_attempts - 1), MAX_RETRY_PAUSE_SECONDS)


def batch_digest(svix_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(svix_ids)).encode()).hexdigest()[:20]


def partial_sync_request(events: list[inbox.InboxEvent], run_key: str) -> RunRequest:
    user_ids, organization_ids = inbox.affected_ids(events)
    return RunRequest(
        run_key=run_key,
        run_config={
            "resources": {
                "sync_options": {
                    "config": {
                        "user_ids": list(user_ids),
                        "organization_ids": list(organization_ids),
                        "webhook_event_ids": [e.svix_id for e in events],
                        "mode": "partial",
                    }
                }
            }
        },
        tags={"sync_pipeline/webhook_events": str(len(events))},
    )


@sensor(
    job=partial_sync_job,
    minimum_interval_seconds=settings.webhook_sensor_interval_seconds(),
    default_status=DefaultSensorStatus.RUNNING,
    description="Turns pending Clerk webhook events into partial syncs of the users and organizations they name.",
)
def clerk_webhook_sensor(context: SensorEvaluationContext, mirror_db: MirrorDatabase) -> SensorResult | SkipReason:
    mirror_db.ensure_ready()
    events = inbox.pending_events(mirror_db.engine, mirror_db.db_schema, limit=settings.webhook_batch_size())
    if not events:
        return SkipReason("no pending webhook events")
    in_flight = context.instance.get_run_records(
        filters=RunsFilter(job_name=partial_sync_job.name, statuses=IN_FLIGHT), limit=1
    )
    if in_flight:
        return SkipReason(f"{len(events)} event(s) pending; a partial sync is still running")

    cursor = json.loads(context.cursor) if context.cursor else {}
    digest = batch_digest([e.svix_id for e in events])
    if cursor.get("batch") == digest:
        # The same events are still pending after their run ended: it failed. Retry, paced.
        failed_attempts = cursor.get("attempt", 1)
        pause = retry_pause_seconds(failed_attempts)
        waited = time.time() - cursor.get("launched_at", 0.0)
        if waited < pause:
            return SkipReason(
                f"the last run for these {len(events)} event(s) failed ({failed_attempts}x); retrying in {pause - waited:.0f}s"
            )
        attempt = failed_attempts + 1
    else:
        attempt = 1
    run_key = f"webhooks-{digest}-{attempt}"
    next_cursor = json.dumps({"batch": digest, "attempt": attempt, "launched_at": time.time()})
    return SensorResult(run_requests=[partial_sync_request(events, run_key)], cursor=next_cursor)
