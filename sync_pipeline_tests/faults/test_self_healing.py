"""Faults that used to stop the mirror until a person acted: each now heals by itself.

Each case injects the fault from outside (a TCP proxy that stalls, a database turned
read-only, kill -9, hostile signed events, a hostile declaration, a password where
SQLAlchemy does not look) and ends with the mirror equal to Clerk, without anyone
acting, nothing lost and no secret printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, build_sensor_context
from dagster._core.instance.ref import InstanceRef
from sqlalchemy.engine import make_url

from sync_pipeline.cli import main
from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.defs.sensors import clerk_webhook_sensor
from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.emulator.webhooks import new_message_id
from sync_pipeline.mirror.database import create_mirror_engine
from sync_pipeline.mirror.masked_urls import masked_database_url, without_url_secrets
from sync_pipeline.model import USERS
from sync_pipeline.webhooks import inbox
from sync_pipeline.webhooks.orphaned_runs import PROCESS_TAG
from sync_pipeline.webhooks.receiver import WEBHOOK_PATH, create_app, receiver_engine
from sync_pipeline_tests.faults.report import FaultReport
from sync_pipeline_tests.faults.support import (
    ADVISORY_LOCKS,
    ReceiverProcess,
    apply_lock_key,
    assert_mirror_equals_clerk,
    cli_environment,
    failure,
    free_port,
    run,
    wait_for,
)
from sync_pipeline_tests.faults.tcp_proxy import StallingProxy
from sync_pipeline_tests.faults.test_webhook_input import SECRET, sign
from sync_pipeline_tests.harness import SyncHarness

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


# ------------------------------------------------------------------ shared pieces

@contextmanager
def admin(database_url: str) -> Iterator[sa.Connection]:
    """A connection of its own, in autocommit, outside every pool under test."""
    url = make_url(database_url).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def clerk_changes(harness: SyncHarness, count: int, tag: str) -> list[dict]:
    """``count`` users renamed in Clerk: the events Clerk emits for them."""
    store = harness.emulator.store
    first = len(store.events)
    for user in list(store.iter_users())[:count]:
        store.update_user(user["id"], first_name=f"{tag} {user['id'][-6:]}")
    return store.events[first:]


def signed(event: dict, msg_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    return body, sign(body, msg_id=msg_id or new_message_id())


def drain(harness: SyncHarness, report: FaultReport, *, instance: DagsterInstance | None = None) -> int:
    """Run what the real sensor asks for until nothing is pending; returns the runs made."""
    resources = {"mirror_db": MirrorDatabase(database_url=harness.database_url, db_schema=harness.schema)}
    cursor, runs = None, 0
    for _ in range(20):
        with build_sensor_context(instance=instance or harness.instance, cursor=cursor, resources=resources) as context:
            result = clerk_webhook_sensor(context)
        requests = list(getattr(result, "run_requests", None) or [])
        if not requests:
            return runs
        cursor = result.cursor
        for request in requests:
            outcome = run(harness, report, job="partial_sync_job", run_config=request.run_config, instance=instance)
            assert outcome.success, failure(outcome)
            runs += 1
    raise AssertionError("the sensor never ran dry")


def statuses(engine: sa.Engine, schema: str) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.text(f'SELECT status, count(*) FROM "{schema}".webhook_events GROUP BY 1')).all())


@pytest.fixture
def synced(harness: SyncHarness, fault_report: FaultReport) -> SyncHarness:
    """The test's Clerk and mirror, in step after a first full sync."""
    assert run(harness, fault_report).success
    return harness


@pytest.fixture
def cli_env(synced: SyncHarness, monkeypatch: pytest.MonkeyPatch) -> SyncHarness:
    """The environment a `sync-pipeline` command of this process needs (no DAGSTER_HOME: an ephemeral instance)."""
    for name, value in cli_environment(synced).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("SYNC_APP_TABLES", raising=False)
    return synced


# ------------------------------------------------------------------ 1. stalled connections

def test_the_receiver_heals_after_its_database_connections_stall(
    synced: SyncHarness, fault_report: FaultReport, tmp_path: Path
) -> None:
    """A proxy stops forwarding on the open connections for 2 s (new ones pass) while every
    pooled connection waits for an answer: the answers are lost. Those connections are cut
    at the held-connection deadline, and the next delivery after the stall is stored."""
    harness = synced
    proxy = StallingProxy.to(harness.database_url)
    receiver = ReceiverProcess(
        cli_environment(harness, DATABASE_URL=proxy.url_for(harness.database_url), CLERK_WEBHOOK_SECRET=SECRET),
        tmp_path / "receiver.log",
    )
    events = clerk_changes(harness, 12, "Stalled")
    bodies = {new_message_id(): event for event in events}
    ids = list(bodies)
    answers: dict[str, int] = {}  # the last answer to each event
    sent: list[str] = []

    def deliver(svix_id: str) -> None:
        sent.append(svix_id)
        body, headers = signed(bodies[svix_id], svix_id)
        try:
            answers[svix_id] = httpx.post(receiver.url + WEBHOOK_PATH, content=body, headers=headers, timeout=30).status_code
        except httpx.HTTPError:
            answers[svix_id] = 0

    table = f'"{harness.schema}".webhook_events'
    lock_engine = sa.create_engine(make_url(harness.database_url).set(drivername="postgresql+psycopg"), poolclass=sa.pool.NullPool)
    try:
        receiver.wait_ready()
        deliver(ids[0])
        with lock_engine.connect() as holder, admin(harness.database_url) as watcher:
            # Every pooled connection (2 + 2 overflow) ends up inside an INSERT that waits for this lock...
            holder.begin()
            holder.execute(sa.text(f"LOCK TABLE {table} IN SHARE MODE"))
            in_flight = [threading.Thread(target=deliver, args=(svix_id,)) for svix_id in ids[1:5]]
            for thread in in_flight:
                thread.start()
            waiting = wait_for(
                lambda: watcher.execute(
                    sa.text("SELECT count(*) FROM pg_locks WHERE relation = CAST(:t AS regclass) AND NOT granted"), {"t": table}
                ).scalar_one() == 4,
                timeout=30, interval=0.02,
            )
            assert waiting, "the deliveries never all waited inside the database"
            # ...and the answers, sent when it is released, are lost in the stall.
            stall_ends = proxy.stall_open_connections(2.0)
            holder.rollback()
        fault_report.fault("database connections stalled (proxy)")
        for thread in in_flight:
            thread.join(timeout=60)
        time.sleep(max(0.0, stall_ends - time.monotonic()))

        # After the stall: the next delivery is stored, and the health check says so.
        deliver(ids[5])
        assert answers[ids[5]] == 200, answers
        assert httpx.get(receiver.url + "/healthz", timeout=30).status_code == 200
        # Svix retries what was refused while the connections were cut: every one lands now.
        for svix_id in ids[1:5] + ids[6:]:
            if answers.get(svix_id) != 200:
                deliver(svix_id)
    finally:
        log = receiver.stop()
        proxy.close()
        lock_engine.dispose()
    fault_report.replayed(len(sent))

    assert proxy.dropped_bytes > 0, "the stall never met an answer"
    assert log.count("was cut") >= 4, log[-3000:]
    assert all(code == 200 for code in answers.values()), answers
    assert statuses(harness.engine, harness.schema) == {"pending": len(bodies)}  # nothing lost, nothing twice
    drain(harness, fault_report)
    assert_mirror_equals_clerk(harness, fault_report)


# ------------------------------------------------------------------ 2. read-only, then writable

@pytest.fixture
def own_database(database_url: str) -> Iterator[str]:
    """A database of the test's own on the same server, dropped afterwards: the shared one is never made read-only."""
    name = f"t_readonly_{uuid.uuid4().hex[:8]}"
    with admin(database_url) as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with admin(database_url) as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_the_receiver_stores_again_as_soon_as_the_database_is_writable(
    own_database: str, database_url: str, dagster_instance: DagsterInstance, fault_report: FaultReport
) -> None:
    name = make_url(own_database).database
    engine = create_mirror_engine(own_database)
    with EmulatorServer(users=30, orgs=4, seed=41, secret_key="sk_live_readonly", requests_per_10s=0) as emulator:
        harness = SyncHarness(emulator=emulator, engine=engine, database_url=own_database, schema="clerk", instance=dagster_instance)
        try:
            assert run(harness, fault_report).success
            events = clerk_changes(harness, 12, "ReadOnly")
            deliveries = [signed(event) for event in events]
            codes: list[int] = []
            with TestClient(create_app(receiver_engine(own_database), "clerk", secret=SECRET)) as client:
                assert client.post(WEBHOOK_PATH, content=deliveries[0][0], headers=deliveries[0][1]).status_code == 200

                # A failover to a read-only server, as the pool sees it: its sessions end, new ones are read-only.
                with admin(database_url) as connection:
                    connection.execute(sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
                    connection.execute(
                        sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
                    )
                fault_report.fault("database read-only")
                health_read_only = client.get("/healthz")
                # The deliveries come last: it is their own failures that must rid the pool of read-only sessions.
                for body, headers in deliveries[1:6]:
                    codes.append(client.post(WEBHOOK_PATH, content=body, headers=headers).status_code)

                with admin(database_url) as connection:
                    connection.execute(sa.text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
                # The very next delivery is stored, on a fresh session; then Svix's retries of the refused ones.
                next_code = client.post(WEBHOOK_PATH, content=deliveries[6][0], headers=deliveries[6][1]).status_code
                health_writable = client.get("/healthz").status_code
                retried = [client.post(WEBHOOK_PATH, content=b, headers=h).status_code for b, h in deliveries[1:6] + deliveries[7:]]
            fault_report.replayed(len(deliveries) + 5)

            assert codes == [503] * 5, codes  # refused as unavailable (Svix retries), never a 500
            assert health_read_only.status_code == 503 and health_read_only.json()["database"] == "read-only"
            assert next_code == 200 and health_writable == 200
            assert retried == [200] * len(retried)
            assert statuses(engine, "clerk") == {"pending": len(deliveries)}
            drain(harness, fault_report)
            assert_mirror_equals_clerk(harness, fault_report)
        finally:
            engine.dispose()


# ------------------------------------------------------------------ 3. a killed `webhooks process`

def test_a_killed_webhooks_process_leaves_no_run_that_blocks_the_sensor(
    synced: SyncHarness, fault_report: FaultReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = synced
    for event in clerk_changes(harness, 5, "Killed"):
        inbox.store_delivery(harness.engine, harness.schema, svix_id=new_message_id(), svix_timestamp=None, payload=event)
    home = tmp_path / "dagster_home"
    home.mkdir()
    key = apply_lock_key(harness.schema)

    with admin(harness.database_url) as holder:
        # Held, so the child stops at its apply: its run is STARTED when it is killed.
        holder.execute(sa.text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": key})
        with (tmp_path / "process.log").open("w") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "sync_pipeline.cli", "webhooks", "process"],
                env=cli_environment(harness, DAGSTER_HOME=str(home)), stdout=log, stderr=subprocess.STDOUT,
            )
            try:
                waiting = wait_for(
                    lambda: child.poll() is not None
                    or [pid for pid, granted in holder.execute(sa.text(ADVISORY_LOCKS), {"key": key}).all() if not granted],
                    timeout=120, interval=0.1,
                )
                assert child.poll() is None and waiting, (tmp_path / "process.log").read_text()
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=30)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        fault_report.fault("webhooks process killed mid-run")
        fault_report.ran()
        holder.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        (stuck,) = instance.get_runs(filters=RunsFilter(job_name="partial_sync_job"))
        assert stuck.status == DagsterRunStatus.STARTED and PROCESS_TAG in stuck.tags
        assert statuses(harness.engine, harness.schema) == {"pending": 5}

        # The next tick fails the run nobody runs, and launches its events again.
        assert drain(harness, fault_report, instance=instance) >= 1
        stuck = instance.get_run_by_id(stuck.run_id)
        assert stuck.status == DagsterRunStatus.FAILURE
        assert statuses(harness.engine, harness.schema) == {"processed": 5}
    assert_mirror_equals_clerk(harness, fault_report)


# ------------------------------------------------------------------ 4. absurd ids; 7. `..`

def test_absurd_signed_ids_are_set_aside_and_the_legitimate_change_goes_through(
    cli_env: SyncHarness, fault_report: FaultReport, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = cli_env
    hostile = [{"type": "user.updated", "object": "event", "data": {"id": f"user_{i:02d}" + "x" * 9_993}} for i in range(20)]
    (legitimate,) = clerk_changes(harness, 1, "Legitimate")
    requests_before = dict(harness.emulator.stats.requests_by_path)

    with TestClient(create_app(receiver_engine(harness.database_url), harness.schema, secret=SECRET)) as client:
        answers = [client.post(WEBHOOK_PATH, content=b, headers=h).json() for b, h in map(signed, hostile + [legitimate])]
    fault_report.tried("signed event with a 10,000-character id", len(hostile))

    assert [a["status"] for a in answers] == ["invalid"] * 20 + ["pending"]
    assert main(["webhooks", "process"]) == 0
    assert main(["status"]) == 0
    printed = capsys.readouterr()
    assert "invalid events:     20 in the last day" in printed.out
    assert "data.id 10000 characters long (at most 128): 20" in printed.out
    assert "x" * 200 not in printed.out + printed.err  # the reason is said, the id never shown
    new_paths = set(harness.emulator.stats.requests_by_path) - set(requests_before)
    assert not [p for p in harness.emulator.stats.requests_by_path if "x" * 200 in p], new_paths  # never sent to Clerk
    assert statuses(harness.engine, harness.schema) == {"invalid": 20, "processed": 1}
    assert_mirror_equals_clerk(harness, fault_report)


def test_a_dot_dot_user_id_never_widens_a_scoped_sync(
    cli_env: SyncHarness, fault_report: FaultReport, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = cli_env
    membership = next(iter(harness.emulator.store.iter_memberships()))
    hostile = [
        {"type": "user.updated", "object": "event", "data": {"id": ".."}},
        {"type": "organizationMembership.updated", "object": "event",
         "data": {**membership, "public_user_data": {**membership["public_user_data"], "user_id": ".."}}},
    ]
    (legitimate,) = clerk_changes(harness, 1, "Legitimate")
    before = harness.emulator.stats.requests_under("/v1/organization_memberships")

    with TestClient(create_app(receiver_engine(harness.database_url), harness.schema, secret=SECRET)) as client:
        answers = [client.post(WEBHOOK_PATH, content=b, headers=h).json() for b, h in map(signed, hostile + [legitimate])]
    fault_report.tried("signed event with a '..' id", len(hostile))

    assert [a["status"] for a in answers] == ["invalid", "invalid", "pending"]
    assert main(["webhooks", "process"]) == 0
    capsys.readouterr()
    # The partial run read its one user's memberships, never the whole instance's.
    assert harness.emulator.stats.requests_under("/v1/organization_memberships") == before
    assert not [p for p in harness.emulator.stats.requests_by_path if ".." in p]
    assert statuses(harness.engine, harness.schema) == {"invalid": 2, "processed": 1}
    assert_mirror_equals_clerk(harness, fault_report)


# ------------------------------------------------------------------ 5. passwords never printed

PASSWORD_FORMS = {
    "userinfo": "postgresql://sync:{secret}@127.0.0.1:{port}/mirror",
    "query password": "postgresql://sync@127.0.0.1:{port}/mirror?password={secret}",
    "query sslpassword": "postgresql://sync@127.0.0.1:{port}/mirror?sslpassword={secret}&sslmode=disable",
    "options": "postgresql://sync@127.0.0.1:{port}/mirror?options=-c%20password%3D{secret}",
    "PGPASSWORD-style parameter": "postgresql://sync@127.0.0.1:{port}/mirror?PGPASSWORD={secret}",
    "service and password": "postgresql://sync@127.0.0.1:{port}/mirror?service=mirror_service&password={secret}",
}
COMMANDS = {
    "sync": ["sync"],
    "status": ["status"],
    "webhooks process": ["webhooks", "process"],
    "webhooks serve": ["webhooks", "serve", "--port", "1"],
}


@pytest.mark.parametrize("form", list(PASSWORD_FORMS))
def test_no_form_of_database_password_is_printed(
    form: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fault_report: FaultReport
) -> None:
    secret = f"S3cret{uuid.uuid4().hex[:10]}"
    # Nothing listens there: every command meets "cannot connect" and says so in one line.
    url = PASSWORD_FORMS[form].format(secret=secret, port=free_port())
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PGPASSWORD", secret)  # libpq's variable, read by the driver, never printed either
    monkeypatch.setenv("CLERK_SECRET_KEY", "sk_test_masking")
    monkeypatch.setenv("CLERK_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("PGSERVICEFILE", os.devnull)
    for command, argv in COMMANDS.items():
        code = main(argv)
        printed = capsys.readouterr()
        text = printed.out + printed.err
        assert code != 0, (command, text)
        assert secret not in text, (command, text)
        assert "127.0.0.1" in text or "service" in text, (command, text)  # the target is still named
        fault_report.tried(f"database password ({form})")


@pytest.mark.parametrize(
    ("url", "secret", "shown"),
    [
        ("postgresql://u:pw%40x@h/db", "pw@x", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?password=pw1", "pw1", "postgresql://u@h/db?password=***"),
        ("postgresql://u@h/db?sslpassword=pw2&sslmode=require", "pw2", "postgresql://u@h/db?sslmode=require&sslpassword=***"),
        ("postgresql://u@h/db?options=-c%20password%3Dpw3", "pw3", "postgresql://u@h/db?options=-c%20password=***"),
        ("postgresql://u@h/db?dbname=host%3Dh%20password%3D%27p%20w4%27", "p w4", "postgresql://u@h/db?dbname=host=h%20password=***"),
        ("postgresql://u@h/db?dbname=postgresql%3A%2F%2Fu%3Apw5%40h%2Fdb", "pw5", "postgresql://u@h/db?dbname=postgresql://u:***@h/db"),
        ("postgresql:///db?service=prod&passfile=/etc/pgpass", None, "postgresql:///db?passfile=/etc/pgpass&service=prod"),
    ],
)
def test_a_database_url_is_printed_with_every_password_masked(url: str, secret: str | None, shown: str) -> None:
    from urllib.parse import quote

    assert masked_database_url(url) == shown
    if secret is not None:
        # A driver's message quoting the secret, as typed or encoded, is masked too.
        text = without_url_secrets(f"could not connect to {url}: {secret} / {quote(secret, safe='')}", url)
        assert secret not in text and quote(secret, safe="") not in text, text


def test_an_unparseable_url_is_never_echoed() -> None:
    assert masked_database_url("not a url with pw") == "<unparseable URL>"


def test_the_receiver_start_up_line_masks_a_query_password(
    synced: SyncHarness, tmp_path: Path, fault_report: FaultReport
) -> None:
    secret = f"S3cret{uuid.uuid4().hex[:10]}"
    url = make_url(synced.database_url)
    url = url.update_query_dict({"password": secret}).render_as_string(hide_password=False)
    receiver = ReceiverProcess(cli_environment(synced, DATABASE_URL=url, CLERK_WEBHOOK_SECRET=SECRET), tmp_path / "receiver.log")
    try:
        receiver.wait_ready()
    finally:
        log = receiver.stop()
    fault_report.tried("database password (receiver start-up)")
    assert "Clerk webhook receiver:" in log and "password=***" in log, log
    assert secret not in log


# ------------------------------------------------------------------ 6. a default the table refuses

def test_a_default_the_table_refuses_leaves_the_mirror_following_clerk(
    synced: SyncHarness, fault_report: FaultReport, tmp_path: Path
) -> None:
    harness = synced
    app_schema = f"{harness.schema}_app"
    with harness.engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{app_schema}"'))
        connection.execute(
            sa.text(
                f'CREATE TABLE "{app_schema}".user_settings (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, '
                "clerk_user_id text NOT NULL, theme text NOT NULL CONSTRAINT theme_is_known CHECK (theme IN ('light', 'dark')))"
            )
        )
    declaration = tmp_path / "app_tables.yaml"
    declaration.write_text(
        f"tables:\n  - table: {app_schema}.user_settings\n    user_id_column: clerk_user_id\n"
        "    orphans: delete\n    provision: {per: user, defaults: {theme: system}}\n",
        encoding="utf-8",
    )
    try:
        fault_report.tried("application-table default refused by a CHECK")
        for tag in ("Refused default 1", "Refused default 2"):
            clerk_changes(harness, 3, tag)
            result = run(harness, fault_report, mirror={"app_tables_config": str(declaration)})

            assert result.success, failure(result)
            assert_mirror_equals_clerk(harness, fault_report)  # the mirror follows Clerk while the YAML is in place
            message = harness.sync_runs()["message"].iloc[-1]
            assert "user_settings: provisioning refused" in message and "theme_is_known" in message, message
            evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "app_tables_follow_their_policies")
            assert not evaluation.passed  # the rows still missing are reported
        with harness.engine.connect() as connection:
            assert connection.execute(sa.text(f'SELECT count(*) FROM "{app_schema}".user_settings')).scalar_one() == 0
        assert len(harness.live_ids(USERS)) == len(list(harness.emulator.store.iter_users()))
    finally:
        with harness.engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{app_schema}" CASCADE'))


def test_an_event_whose_run_always_fails_is_isolated_and_the_rest_of_its_batch_goes_through(
    cli_env: SyncHarness, fault_report: FaultReport, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not every poison can be seen in the event: here the database refuses one user's row.
    `webhooks process` splits the failing batch until that event is alone, processes every
    other one, and exits 1 naming the run that failed."""
    harness = cli_env
    events = clerk_changes(harness, 8, "Poisoned")
    poisoned = events[5]["data"]["id"]
    for event in events:
        inbox.store_delivery(harness.engine, harness.schema, svix_id=new_message_id(), svix_timestamp=None, payload=event)
    schema = harness.schema
    with admin(harness.database_url) as connection:
        connection.execute(sa.text(
            f'CREATE FUNCTION "{schema}".refuse_one() RETURNS trigger LANGUAGE plpgsql AS '
            f"$$ BEGIN RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation'; END $$"
        ))
        connection.execute(sa.text(
            f'CREATE TRIGGER refuse_one BEFORE INSERT ON "{schema}".users FOR EACH ROW '
            f"WHEN (NEW.id = '{poisoned}') EXECUTE FUNCTION \"{schema}\".refuse_one()"
        ))
    fault_report.fault("an event whose every run fails")
    try:
        code = main(["webhooks", "process"])
    finally:
        with admin(harness.database_url) as connection:
            connection.execute(sa.text(f'DROP TRIGGER refuse_one ON "{schema}".users'))
    printed = capsys.readouterr()

    assert code == 1 and "refused by the test" in printed.err, printed
    with harness.engine.connect() as connection:
        left = connection.execute(
            sa.text(f'SELECT user_id FROM "{schema}".webhook_events WHERE status = \'pending\'')
        ).scalars().all()
    assert left == [poisoned]  # the seven others were processed in spite of it
    # Once the cause is gone, the next pass (the sensor's paced retry, or this) answers it too.
    assert main(["webhooks", "process"]) == 0
    assert statuses(harness.engine, schema) == {"processed": 8}
    assert_mirror_equals_clerk(harness, fault_report)
