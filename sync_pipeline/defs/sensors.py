"""The webhook sensor: pending inbox events become one partial-sync run per batch.

Why no high-water-mark cursor: the receiver commits rows concurrently, so a row with an
earlier ``received_at`` (or a smaller anything) can become visible after a later one, and
a "greater than the last seen" cursor would skip it forever. Instead each tick reads the
oldest *pending* events — a row committed late is still pending, so it is found on the
next tick — and the cursor only remembers the last batch launched and how often, so that
the same batch is never launched twice while its run is in flight. When its run failed
and left the events pending, the batch is split (:mod:`sync_pipeline.webhooks.batches`)
until the event that fails alone is found and held, retried alone after a pause, while
the others go on. A run whose process is gone (killed) is failed first, so it never
holds the sensor (:mod:`sync_pipeline.webhooks.orphaned_runs`).

The sensor never calls Clerk: it reads one indexed query and returns at once, far inside
Dagster's 60 s tick limit.
"""

import json
import time

from dagster import (
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
from sync_pipeline.defs.run_config import SyncRunConfig, sync_run_config
from sync_pipeline.webhooks import inbox
from sync_pipeline.webhooks.batches import (  # noqa: F401 - re-exported: the sensor's retry pacing
    FIRST_RETRY_PAUSE_SECONDS,
    MAX_RETRY_PAUSE_SECONDS,
    BatchState,
    batch_digest,
    next_batch,
    retry_pause_seconds,
)
from sync_pipeline.webhooks.orphaned_runs import IN_FLIGHT, fail_orphaned_runs


def partial_sync_options(events: list[inbox.InboxEvent]) -> SyncRunConfig:
    """The options of the partial sync that answers ``events``: what the sensor launches, and ``webhooks process`` runs."""
    user_ids, organization_ids = inbox.affected_ids(events)
    return SyncRunConfig(
        user_ids=list(user_ids),
        organization_ids=list(organization_ids),
        webhook_event_ids=[e.svix_id for e in events],
        mode="partial",
    )


def partial_sync_request(events: list[inbox.InboxEvent], run_key: str) -> RunRequest:
    return RunRequest(
        run_key=run_key,
        run_config=sync_run_config(partial_sync_options(events)),
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
    state = BatchState.from_json(json.loads(context.cursor) if context.cursor else None)
    batch_size = settings.webhook_batch_size()
    events = inbox.pending_events(mirror_db.engine, mirror_db.db_schema, limit=batch_size + len(state.held))
    if not events:
        return SkipReason("no pending webhook events")
    for run_id in fail_orphaned_runs(context.instance, partial_sync_job.name):
        context.log.warning(f"run {run_id} had no process behind it: marked failed, its events are retried")
    in_flight = context.instance.get_run_records(
        filters=RunsFilter(job_name=partial_sync_job.name, statuses=IN_FLIGHT), limit=1
    )
    if in_flight:
        return SkipReason(f"{len(events)} event(s) pending; a partial sync is still running")

    decision = next_batch(events, state, batch_size=batch_size, now=time.time())
    if not decision.events:
        # Nothing new to remember: the same cursor gives the same decision on the next tick.
        return SkipReason(decision.reason)
    run_key = f"webhooks-{decision.state.batch}-{decision.state.attempt}"
    cursor = json.dumps(decision.state.to_json())
    return SensorResult(run_requests=[partial_sync_request(decision.events, run_key)], cursor=cursor)
