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

Why each evaluation waits: the daemon's sensor loop comes round every 5 s (Dagster's
``MIN_INTERVAL_LOOP_TIME``, fixed), so a sensor that looked once and returned would leave
an event that arrives just after it waiting up to 5 s (2.5 s on average) before its run
is even requested. Instead an evaluation keeps looking, every :data:`POLL_SECONDS`, for up
to ``SYNC_WEBHOOK_SENSOR_WAIT_SECONDS`` (4 s: most of the loop, with room for the tick's own
overhead so that the next loop never finds it still busy), and returns as soon as it has
a run to request: when events arrive, or when the partial run in flight ends. The wait
holds no lock and opens no transaction; with ``sensors: use_threads`` (dagster.yaml) it
holds back no other sensor. The sensor never calls Clerk, and the wait stays far inside
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


# How often a waiting evaluation looks again: an event arriving mid-wait is launched within
# this (0.125 s on average); each look is one indexed query on the inbox.
POLL_SECONDS = 0.25


def _pause(deadline: float) -> bool:
    """Sleep one poll if the evaluation's wait has room for it; False when it is over."""
    if time.monotonic() + POLL_SECONDS >= deadline:
        return False
    time.sleep(POLL_SECONDS)
    return True


def _partial_run_in_flight(context: SensorEvaluationContext) -> bool:
    return bool(
        context.instance.get_run_records(filters=RunsFilter(job_name=partial_sync_job.name, statuses=IN_FLIGHT), limit=1)
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
    deadline = time.monotonic() + settings.webhook_sensor_wait_seconds()
    orphans_checked = False
    while True:
        events = inbox.pending_events(mirror_db.engine, mirror_db.db_schema, limit=batch_size + len(state.held))
        if not events:
            if _pause(deadline):
                continue
            return SkipReason("no pending webhook events")
        if not orphans_checked:
            for run_id in fail_orphaned_runs(context.instance, partial_sync_job.name):
                context.log.warning(f"run {run_id} had no process behind it: marked failed, its events are retried")
            orphans_checked = True
        if _partial_run_in_flight(context):
            while _partial_run_in_flight(context):
                if not _pause(deadline):
                    return SkipReason(f"{len(events)} event(s) pending; a partial sync is still running")
            continue  # the run that just ended may have answered these events: read them again

        decision = next_batch(events, state, batch_size=batch_size, now=time.time())
        if not decision.events:
            # Held or paced: nothing to launch until time passes, so no point waiting here.
            # Nothing new to remember either: the same cursor gives the same decision next tick.
            return SkipReason(decision.reason)
        run_key = f"webhooks-{decision.state.batch}-{decision.state.attempt}"
        cursor = json.dumps(decision.state.to_json())
        return SensorResult(run_requests=[partial_sync_request(decision.events, run_key)], cursor=cursor)
