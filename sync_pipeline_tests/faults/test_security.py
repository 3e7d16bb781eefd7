"""Security: no secret in anything a run writes, private metadata kept out when asked, a
least-privilege database role, and a receiver that refuses what it must not take.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import uuid
import warnings
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from svix.webhooks import Webhook

from sync_pipeline.cli import main
from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.model import MEMBERSHIPS, ORGANIZATIONS, USERS
from sync_pipeline.webhooks.receiver import WEBHOOK_PATH, create_app
from sync_pipeline_tests.faults.report import FaultReport
from sync_pipeline_tests.faults.support import assert_mirror_equals_clerk, failure, run
from sync_pipeline_tests.harness import SyncHarness

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

GRANTS = Path(__file__).resolve().parents[2] / "deploy" / "grants.sql"


def schema_text(engine: sa.Engine, schema: str) -> str:
    """Every row of every table in ``schema``, as text: what the run left in the database."""
    with engine.connect() as connection:
        tables = connection.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :schema"), {"schema": schema}
        ).scalars().all()
        return "\n".join(
            row for table in tables for row in connection.execute(sa.text(f'SELECT t::text FROM "{schema}"."{table}" t')).scalars()
        )


def everything_in(directory: Path) -> str:
    """Every file under ``directory`` as text, SQLite databases read table by table with
    compressed blobs inflated (Dagster stores snapshots zlib-compressed)."""
    parts = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        parts.append(data.decode("utf-8", errors="replace"))
        if data.startswith(b"SQLite format 3"):
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                for (table,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                    for row in connection.execute(f'SELECT * FROM "{table}"'):
                        for value in row:
                            if isinstance(value, bytes):
                                try:
                                    value = zlib.decompress(value)
                                except zlib.error:
                                    pass
                                value = value.decode("utf-8", errors="replace")
                            parts.append(str(value))
            finally:
                connection.close()
    return "\n".join(parts)


def dagster_records(dagster_home: Path) -> str:
    """Through Dagster's own API: every run (config, tags), its job and plan snapshots, every event."""
    from dagster import DagsterInstance
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    import sync_pipeline.definitions as definitions

    parts = []
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for record in instance.get_run_records():
            dagster_run = record.dagster_run
            parts.append(serialize_value(dagster_run))
            if dagster_run.job_snapshot_id:
                parts.append(serialize_value(instance.get_job_snapshot(dagster_run.job_snapshot_id)))
            if dagster_run.execution_plan_snapshot_id:
                parts.append(serialize_value(instance.get_execution_plan_snapshot(dagster_run.execution_plan_snapshot_id)))
            parts.extend(serialize_value(entry) for entry in instance.all_logs(dagster_run.run_id))
    # What the UI is sent about the code location (resources included).
    parts.append(serialize_value(RepositorySnap.from_def(definitions.build_definitions(definitions.build_resources()).get_repository_def())))
    return "\n".join(parts)


def test_no_secret_reaches_logs_run_metadata_the_audit_trail_or_the_ui(
    database_url: str, engine: sa.Engine, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture, fault_report: FaultReport,
) -> None:
    key = f"sk_live_{secrets.token_hex(16)}"
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    db_password = f"Pw-{secrets.token_hex(8)}"  # the embedded server trusts local connections: any password works
    url = make_url(database_url).set(password=db_password).render_as_string(hide_password=False)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    with EmulatorServer(users=60, orgs=6, seed=3, secret_key=key, requests_per_10s=0) as clerk:
        for name, value in {
            "CLERK_SECRET_KEY": key, "CLERK_API_URL": clerk.base_url, "CLERK_WEBHOOK_SECRET": webhook_secret,
            "CLERK_REQUESTS_PER_10S": "10000", "DATABASE_URL": url, "SYNC_SCHEMA": schema, "DAGSTER_HOME": str(dagster_home),
        }.items():
            monkeypatch.setenv(name, value)

        assert main(["-v", "sync"]) == 0
        # A change arrives through the receiver, signed with the webhook secret, and is processed.
        first = len(clerk.store.events)
        clerk.store.update_user(next(iter(clerk.store.iter_users()))["id"], first_name="Via webhook")
        with TestClient(create_app(engine, schema, secret=webhook_secret)) as receiver:
            for event in clerk.store.events[first:]:
                body, at, msg_id = json.dumps(event), datetime.now(timezone.utc), f"msg_{uuid.uuid4().hex}"
                headers = {"svix-id": msg_id, "svix-timestamp": str(int(at.timestamp())), "svix-signature": Webhook(webhook_secret).sign(msg_id, at, body)}
                assert receiver.post(WEBHOOK_PATH, content=body.encode(), headers=headers).status_code == 200
                assert receiver.post(WEBHOOK_PATH, content=body.encode(), headers={**headers, "svix-signature": "v1,forged"}).status_code == 401
        assert main(["-v", "webhooks", "process"]) == 0
        assert main(["analyze"]) == 0
        # A run that fails: the key is revoked while the sync reads Clerk.
        clerk.settings.secret_key = "sk_live_rotated_away"
        assert main(["-v", "sync"]) == 3  # a key Clerk rejects is bad configuration (exit 3)

    output = capfd.readouterr()
    corpus = {
        "CLI stdout": output.out,
        "CLI stderr and logs": output.err,
        "DAGSTER_HOME files": everything_in(dagster_home),
        "Dagster runs, snapshots, events, UI": dagster_records(dagster_home),
        "mirror schema (audit trail, inbox)": schema_text(engine, schema),
    }
    assert "Via webhook" in corpus["mirror schema (audit trail, inbox)"]  # the corpus holds what the runs did
    assert "Clerk rejected the secret key" in corpus["CLI stderr and logs"]
    assert len(corpus["Dagster runs, snapshots, events, UI"]) > 100_000
    forms = {
        "CLERK_SECRET_KEY": key, "its body": key.removeprefix("sk_live_"),
        "CLERK_WEBHOOK_SECRET": webhook_secret, "its key": webhook_secret.removeprefix("whsec_"),
        "the database password": db_password,
    }
    fault_report.tried("places grepped for secrets", len(corpus))
    leaks = [f"{secret} in {place}" for place, text in corpus.items() for secret, value in forms.items() if value in text]
    assert not leaks, leaks


# ------------------------------------------------------------------ private metadata

SECRET = "whsec_" + base64.b64encode(b"security-suite-webhook-secret!!").decode()


def sign(body: str) -> dict[str, str]:
    at, msg_id = datetime.now(timezone.utc), f"msg_{uuid.uuid4().hex}"
    return {"svix-id": msg_id, "svix-timestamp": str(int(at.timestamp())), "svix-signature": Webhook(SECRET).sign(msg_id, at, body)}


PRIVATE = "PRIVATE-MARKER-7f3a"


def test_private_metadata_is_kept_out_of_every_table_when_excluded(harness: SyncHarness, fault_report: FaultReport) -> None:
    """SYNC_INCLUDE_PRIVATE_METADATA=false: not in the mirror tables, their raw, the audit trail, nor the inbox."""
    store = harness.emulator.store
    excluded = {"include_private_metadata": False}
    users = [u["id"] for u in store.iter_users()]
    organizations = [o["id"] for o in store.iter_organizations()]
    store.update_user(users[0], private_metadata={"secret": PRIVATE})
    store.update_organization(organizations[0], private_metadata={"secret": PRIVATE})  # embedded in its memberships too
    assert run(harness, fault_report, mirror=excluded).success
    assert PRIVATE not in schema_text(harness.engine, harness.schema)

    # Changes of private metadata, through webhooks and a partial sync.
    first = len(store.events)
    store.update_user(users[1], private_metadata={"secret": PRIVATE + "-2"})
    membership = store.create_membership(organizations[0], users[2], private_metadata={"secret": PRIVATE + "-3"})
    with TestClient(create_app(harness.engine, harness.schema, secret=SECRET, include_private_metadata=False)) as receiver:
        for event in store.events[first:]:
            body = json.dumps(event)
            assert receiver.post(WEBHOOK_PATH, content=body.encode(), headers=sign(body)).status_code == 200
    from sync_pipeline.defs.sensors import partial_sync_request
    from sync_pipeline.webhooks import inbox

    request = partial_sync_request(inbox.pending_events(harness.engine, harness.schema, limit=100), run_key="private")
    assert run(harness, fault_report, job="partial_sync_job", run_config=request.run_config, mirror=excluded).success

    everything = schema_text(harness.engine, harness.schema)
    assert PRIVATE not in everything
    assert harness.row(MEMBERSHIPS, membership["id"])["role"] == "org:member"  # mirrored, less its private metadata
    for entity in (USERS, ORGANIZATIONS):
        leaked = harness.query(
            f"SELECT count(*) AS n FROM {{schema}}.{entity} WHERE private_metadata IS NOT NULL OR raw ? 'private_metadata'"
        )["n"][0]
        assert leaked == 0, entity
    # And the other way: with the default, the same data is mirrored whole.
    assert run(harness, fault_report).success
    assert PRIVATE in schema_text(harness.engine, harness.schema)
    assert_mirror_equals_clerk(harness, fault_report)


# ------------------------------------------------------------------ a least-privilege role


@pytest.fixture
def sync_role(engine: sa.Engine, schema: str) -> Iterator[dict]:
    """A role made by deploy/grants.sql for the test's schema; the other schema it must not touch."""
    role = f"clerk_sync_{uuid.uuid4().hex[:8]}"
    other = f"t_other_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{other}"'))
        connection.execute(sa.text(f'CREATE TABLE "{other}".payroll (id int, salary int)'))
        connection.execute(sa.text(f'INSERT INTO "{other}".payroll VALUES (1, 100)'))
        database = connection.execute(sa.text("SELECT current_database()")).scalar_one()
        # As a hardened database would be: nothing for PUBLIC beyond what grants.sql gives.
        connection.execute(sa.text(f'REVOKE CREATE, TEMPORARY ON DATABASE "{database}" FROM PUBLIC'))
    try:
        yield {"role": role, "other": other, "database": database}
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'GRANT TEMPORARY ON DATABASE "{database}" TO PUBLIC'))
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{other}" CASCADE'))
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            if connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
                connection.execute(sa.text(f'DROP OWNED BY "{role}"'))
                connection.execute(sa.text(f'DROP ROLE "{role}"'))


def apply_grants(engine: sa.Engine, role: str, schema: str) -> None:
    sql = GRANTS.read_text()
    sql = sql.replace('"clerk_sync"', f'"{role}"').replace('"clerk"', f'"{schema}"')
    with engine.begin() as connection:
        connection.connection.driver_connection.execute(sql)  # as psql would: the whole file, no placeholders


def role_url(database_url: str, role: str) -> str:
    return make_url(database_url).set(username=role, password="change-me").render_as_string(hide_password=False)


def assert_confined(database_url: str, role: str, other: str) -> None:
    """The role cannot read or write another schema, nor create in public."""
    confined = sa.create_engine(role_url(database_url, role), poolclass=sa.pool.NullPool)
    try:
        for statement in (
            f'SELECT * FROM "{other}".payroll',
            f'UPDATE "{other}".payroll SET salary = 0',
            f'CREATE TABLE "{other}".planted (x int)',
            "CREATE TABLE public.planted (x int)",
            "CREATE ROLE escalated",
            f'ALTER ROLE "{role}" SUPERUSER',
        ):
            with confined.connect() as connection, pytest.raises(sa.exc.ProgrammingError, match="permission denied|must be"):
                connection.execute(sa.text(statement))
    finally:
        confined.dispose()


def test_the_mirror_is_written_by_a_role_with_only_the_grants_of_deploy_grants_sql(
    harness: SyncHarness, sync_role: dict, fault_report: FaultReport
) -> None:
    apply_grants(harness.engine, sync_role["role"], harness.schema)
    as_role = {"database_url": role_url(harness.database_url, sync_role["role"])}

    # The first run creates the mirror's tables (the role owns its schema), the second applies changes.
    first = run(harness, fault_report, mirror=as_role)
    assert first.success, failure(first)
    harness.emulator.store.delete_user(next(iter(harness.emulator.store.iter_users()))["id"])
    second = run(harness, fault_report, mirror=as_role)
    assert second.success, failure(second)
    assert_mirror_equals_clerk(harness, fault_report)
    with harness.engine.connect() as connection:
        owners = set(connection.execute(sa.text("SELECT tableowner FROM pg_tables WHERE schemaname = :s"), {"s": harness.schema}).scalars())
    assert owners == {sync_role["role"]}
    # The receiver can store deliveries as the same role.
    role_engine = sa.create_engine(as_role["database_url"], poolclass=sa.pool.NullPool)
    try:
        with TestClient(create_app(role_engine, harness.schema, secret=SECRET)) as receiver:
            body = json.dumps({"type": "user.updated", "data": {"id": "user_1"}})
            assert receiver.post(WEBHOOK_PATH, content=body.encode(), headers=sign(body)).status_code == 200
    finally:
        role_engine.dispose()
    assert_confined(harness.database_url, sync_role["role"], sync_role["other"])


# Found here: the migrations ran CREATE SCHEMA IF NOT EXISTS on every run, which needs CREATE
# on the database even when the schema exists, so deploy/grants.sql had to grant it.


def test_the_role_needs_no_create_on_the_database(harness: SyncHarness, sync_role: dict, fault_report: FaultReport) -> None:
    apply_grants(harness.engine, sync_role["role"], harness.schema)
    result = run(harness, fault_report, mirror={"database_url": role_url(harness.database_url, sync_role["role"])})
    assert result.success, failure(result)
    engine = sa.create_engine(role_url(harness.database_url, sync_role["role"]), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection, pytest.raises(sa.exc.ProgrammingError, match="permission denied for database"):
            connection.execute(sa.text('CREATE SCHEMA "t_escape"'))
    finally:
        engine.dispose()
