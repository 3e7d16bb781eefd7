"""clerk_webhook_sensor tick by tick: nothing skipped, nothing launched twice, failures retried."""

from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa
from dagster import DagsterRunStatus, RunRequest, RunsFilter, SkipReason, build_sensor_context
from dagster._core.test_utils import create_run_for_test

from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.defs.sensors import batch_digest, clerk_webhook_sensor
from sync_pipeline.mirror.database import upgrade_schema
from sync_pipeline.webhooks import inbox
from sync_pipeline_tests.fixtures import load

USER_UPDATED = load("webhook_user.updated.json")


def tick(harness, cursor: str | None = None):  # noqa: ANN001, ANN201
    """One evaluation, as the daemon would run it; returns the result and the next cursor."""
    with build_sensor_context(
        instance=harness.instance,
        cursor=cursor,
        resources={"mirror_db": MirrorDatabase(database_url=harness.database_url, db_schema=harness.schema)},
    ) as context:
        result = clerk_webhook_sensor(context)
    next_cursor = getattr(result, "cursor", None)
    return result, next_cursor if next_cursor is not None else cursor


def store(harness, svix_id: str, user_id: str) -> None:  # noqa: ANN001
    payload = {**USER_UPDATED, "data": {**USER_UPDATED["data"], "id": user_id}}
    inbox.store_delivery(harness.engine, harness.schema, svix_id=svix_id, svix_timestamp=None, payload=payload)


def requests_of(result) -> list[RunRequest]:  # noqa: ANN001
    return list(result.run_requests or []) if not isinstance(result, SkipReason) else []


def test_each_batch_is_launched_once_and_late_commits_are_not_skipped(harness) -> None:  # noqa: ANN001
    upgrade_schema(harness.engine, harness.schema)
    result, cursor = tick(harness)
    assert isinstance(result, SkipReason)

    store(harness, "msg_b", "user_b")
    store(harness, "msg_a", "user_a")
    result, cursor = tick(harness, cursor)
    (request,) = requests_of(result)
    options = request.run_config["ops"]["sync_scope"]["config"]
    assert options["user_ids"] == ["user_a", "user_b"]
    assert sorted(options["webhook_event_ids"]) == ["msg_a", "msg_b"]
    assert request.run_key == f"webhooks-{batch_digest(['msg_a', 'msg_b'])}-1"

    # Its run is in flight: the same events are not launched again.
    create_run_for_test(harness.instance, job_name="partial_sync_job", status=DagsterRunStatus.STARTED)
    result, cursor = tick(harness, cursor)
    assert isinstance(result, SkipReason) and "still running" in result.skip_message

    # A row committed late, with an earlier received_at than everything seen so far,
    # is still pending and so still found once the run is over.
    store(harness, "msg_late", "user_late")
    with harness.engine.begin() as connection:
        connection.execute(
            sa.text(f"UPDATE \"{harness.schema}\".webhook_events SET received_at = now() - interval '1 hour' WHERE svix_id = 'msg_late'")
        )
        inbox.mark_processed(connection, harness.schema, ["msg_a", "msg_b"], "run-that-finished")
    for run in harness.instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        harness.instance.report_run_canceled(run)
    result, cursor = tick(harness, cursor)
    (request,) = requests_of(result)
    assert request.run_config["ops"]["sync_scope"]["config"]["webhook_event_ids"] == ["msg_late"]

    with harness.engine.begin() as connection:
        inbox.mark_processed(connection, harness.schema, ["msg_late"], "another-run")
    result, cursor = tick(harness, cursor)
    assert isinstance(result, SkipReason)


def test_a_batch_whose_run_failed_is_retried_after_a_pause_with_a_new_key(harness) -> None:  # noqa: ANN001
    upgrade_schema(harness.engine, harness.schema)
    store(harness, "msg_1", "user_1")
    result, cursor = tick(harness)
    (first,) = requests_of(result)

    # The run failed (nothing in flight, the event still pending): too soon to retry...
    result, cursor_after = tick(harness, cursor)
    assert isinstance(result, SkipReason) and "retrying in" in result.skip_message

    # ...and once the pause is over, a new run key, so Dagster launches it.
    state = json.loads(cursor)
    state["launched_at"] = time.time() - 3600
    result, _ = tick(harness, json.dumps(state))
    (retry,) = requests_of(result)
    assert retry.run_key != first.run_key and retry.run_key.endswith("-2")


def test_the_batch_is_bounded(harness, monkeypatch) -> None:  # noqa: ANN001
    upgrade_schema(harness.engine, harness.schema)
    monkeypatch.setenv("SYNC_WEBHOOK_BATCH_SIZE", "3")
    for i in range(5):
        store(harness, f"msg_{i}", f"user_{i}")

    result, _ = tick(harness)

    (request,) = requests_of(result)
    assert len(request.run_config["ops"]["sync_scope"]["config"]["webhook_event_ids"]) == 3


def test_a_run_whose_process_is_gone_is_failed_and_its_events_launched_again(harness) -> None:  # noqa: ANN001
    import subprocess
    import sys

    from sync_pipeline.webhooks.orphaned_runs import PROCESS_TAG, RunProcess

    upgrade_schema(harness.engine, harness.schema)
    store(harness, "msg_orphan", "user_orphan")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = RunProcess(RunProcess.current().host, gone.pid, "1")
    alive = create_run_for_test(
        harness.instance, job_name="partial_sync_job", status=DagsterRunStatus.STARTED, tags={PROCESS_TAG: RunProcess.current().tag()}
    )

    # A run whose process still runs (this one) holds the sensor, as it should...
    result, _ = tick(harness)
    assert isinstance(result, SkipReason) and "still running" in result.skip_message
    harness.instance.report_run_canceled(alive)

    # ...one whose process is gone does not.
    orphan = create_run_for_test(harness.instance, job_name="partial_sync_job", status=DagsterRunStatus.STARTED, tags={PROCESS_TAG: dead.tag()})
    result, _ = tick(harness)
    (request,) = requests_of(result)
    assert request.run_config["ops"]["sync_scope"]["config"]["webhook_event_ids"] == ["msg_orphan"]
    assert harness.instance.get_run_by_id(orphan.run_id).status == DagsterRunStatus.FAILURE


def test_a_run_of_another_host_or_without_the_tag_is_left_to_dagster(harness) -> None:  # noqa: ANN001
    from sync_pipeline.webhooks.orphaned_runs import PROCESS_TAG, RunProcess

    upgrade_schema(harness.engine, harness.schema)
    store(harness, "msg_other", "user_other")
    elsewhere = create_run_for_test(
        harness.instance, job_name="partial_sync_job", status=DagsterRunStatus.STARTED,
        tags={PROCESS_TAG: RunProcess("another-host", 1, "1").tag()},
    )
    result, _ = tick(harness)
    assert isinstance(result, SkipReason) and "still running" in result.skip_message
    assert harness.instance.get_run_by_id(elsewhere.run_id).status == DagsterRunStatus.STARTED
    harness.instance.report_run_canceled(elsewhere)


def later(seconds: float, action) -> threading.Thread:  # noqa: ANN001
    """Run ``action`` in another thread after ``seconds``, as a delivery or a run ending mid-evaluation."""
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()))
    thread.start()
    return thread


def test_an_event_arriving_while_the_sensor_waits_is_launched_by_the_same_evaluation(harness, monkeypatch) -> None:  # noqa: ANN001
    upgrade_schema(harness.engine, harness.schema)
    monkeypatch.setenv("SYNC_WEBHOOK_SENSOR_WAIT_SECONDS", "20")
    delivery = later(0.5, lambda: store(harness, "msg_mid_wait", "user_mid_wait"))
    started = time.monotonic()
    result, _ = tick(harness)
    elapsed = time.monotonic() - started
    delivery.join()
    (request,) = requests_of(result)
    assert request.run_config["ops"]["sync_scope"]["config"]["webhook_event_ids"] == ["msg_mid_wait"]
    assert elapsed < 20, "the evaluation returns once it has a run to request, not at the end of its wait"


def test_a_run_ending_while_the_sensor_waits_lets_the_next_batch_launch_at_once(harness, monkeypatch) -> None:  # noqa: ANN001
    upgrade_schema(harness.engine, harness.schema)
    store(harness, "msg_first", "user_first")
    result, cursor = tick(harness)
    (first,) = requests_of(result)
    run = create_run_for_test(harness.instance, job_name="partial_sync_job", status=DagsterRunStatus.STARTED)

    # The run answers its event and ends while the next evaluation waits; a second event is pending.
    store(harness, "msg_second", "user_second")

    def run_ends() -> None:
        with harness.engine.begin() as connection:
            inbox.mark_processed(connection, harness.schema, ["msg_first"], run.run_id)
        harness.instance.report_run_canceled(run)

    monkeypatch.setenv("SYNC_WEBHOOK_SENSOR_WAIT_SECONDS", "20")
    ending = later(0.5, run_ends)
    started = time.monotonic()
    result, _ = tick(harness, cursor)
    elapsed = time.monotonic() - started
    ending.join()
    (request,) = requests_of(result)
    assert request.run_config["ops"]["sync_scope"]["config"]["webhook_event_ids"] == ["msg_second"]
    assert request.run_key != first.run_key
    assert elapsed < 20


def test_with_no_wait_the_sensor_looks_once(harness, monkeypatch) -> None:  # noqa: ANN001
    upgrade_schema(harness.engine, harness.schema)
    monkeypatch.setenv("SYNC_WEBHOOK_SENSOR_WAIT_SECONDS", "0")
    delivery = later(1.0, lambda: store(harness, "msg_after", "user_after"))
    result, _ = tick(harness)
    delivery.join()
    assert isinstance(result, SkipReason) and result.skip_message == "no pending webhook events"


def test_a_wait_outside_its_range_is_a_one_line_configuration_error(monkeypatch) -> None:  # noqa: ANN001
    from sync_pipeline import settings
    from sync_pipeline.errors import ConfigurationError

    for bad in ("-1", "31", "soon", "nan"):
        monkeypatch.setenv("SYNC_WEBHOOK_SENSOR_WAIT_SECONDS", bad)
        with pytest.raises(ConfigurationError, match="SYNC_WEBHOOK_SENSOR_WAIT_SECONDS=.* from 0 to 30"):
            settings.webhook_sensor_wait_seconds()
    monkeypatch.setenv("SYNC_WEBHOOK_SENSOR_WAIT_SECONDS", "2.5")
    assert settings.webhook_sensor_wait_seconds() == 2.5
