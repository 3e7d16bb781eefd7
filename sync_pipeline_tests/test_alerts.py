"""Alerts reach a real HTTP destination, name the run and link to it, and repeat nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import DagsterEventType, build_run_status_sensor_context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sync_pipeline.defs.alerts import sync_check_alerts, sync_failure_alerts
from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.emulator import EmulatorServer, FaultKind
from sync_pipeline_tests.harness import SyncHarness
from sync_pipeline_tests.servers import serve_in_thread


@pytest.fixture
def alert_inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict]]:
    received: list[dict] = []

    async def collect(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    with serve_in_thread(Starlette(routes=[Route("/alerts", collect, methods=["POST"])])) as url:
        monkeypatch.setenv("SYNC_ALERT_WEBHOOK_URL", f"{url}/alerts")
        monkeypatch.setenv("DAGSTER_UI_URL", "http://dagster.example")
        yield received


def evaluate(sensor, harness: SyncHarness, result, event_type: DagsterEventType) -> None:  # noqa: ANN001
    run = harness.instance.get_run_by_id(result.run_id)
    event = next(e for e in result.all_events if e.event_type == event_type)
    with build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=harness.instance,
        dagster_run=run,
        dagster_event=event,
        resources={"mirror_db": MirrorDatabase(database_url=harness.database_url, db_schema=harness.schema)},
    ) as context:
        sensor(context.for_run_failure() if event_type == DagsterEventType.RUN_FAILURE else context)


def test_a_failed_sync_is_announced_once_with_its_cause_and_a_link(harness: SyncHarness, alert_inbox: list[dict]) -> None:
    assert harness.run().success  # creates the schema
    harness.emulator.faults.add(FaultKind.UNAUTHORIZED, times=None)
    failed = harness.run()
    assert not failed.success

    evaluate(sync_failure_alerts, harness, failed, DagsterEventType.RUN_FAILURE)
    evaluate(sync_failure_alerts, harness, failed, DagsterEventType.RUN_FAILURE)  # a second tick

    (alert,) = alert_inbox
    assert alert["title"] == "full_sync_job failed"
    assert "401" in alert["summary"] and "CLERK_SECRET_KEY" in alert["summary"]
    assert alert["link"] == f"http://dagster.example/runs/{failed.run_id}"
    assert harness.emulator.secret_key not in str(alert)


def test_a_failing_check_is_announced_once_per_distinct_problem(harness: SyncHarness, alert_inbox: list[dict]) -> None:
    store = harness.emulator.store
    store.create_user(email_addresses=["shared@example.com"], first_name="One")
    store.create_user(email_addresses=["shared@example.com"], first_name="Two")
    first = harness.run()
    assert first.success
    evaluate(sync_check_alerts, harness, first, DagsterEventType.RUN_SUCCESS)
    second = harness.run()  # tomorrow: the same conflict, still there
    evaluate(sync_check_alerts, harness, second, DagsterEventType.RUN_SUCCESS)

    conflicts = [a for a in alert_inbox if "live_primary_emails_distinct" in a["title"]]
    assert len(conflicts) == 1
    assert conflicts[0]["severity"] == "warning"
    assert "shared@example.com" in conflicts[0]["details"]["sample"]

    store.create_user(email_addresses=["other@example.com"], first_name="Three")
    store.create_user(email_addresses=["other@example.com"], first_name="Four")
    third = harness.run()  # a new conflict is news
    evaluate(sync_check_alerts, harness, third, DagsterEventType.RUN_SUCCESS)
    assert len([a for a in alert_inbox if "live_primary_emails_distinct" in a["title"]]) == 2
