"""Postgres failing under the apply: every case rolls back whole, and a rerun converges.

Faults are injected from another connection (a backend killed, the apply's advisory lock
held) or by the schema itself (a trigger that stalls or raises, a constraint), while the
real job runs. "Nothing written" is checked on every mirror row's xmin. One Clerk and one
mirror serve the module: each case starts in step, and ends in step again.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count

import pytest
import sqlalchemy as sa

from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.model import MEMBERSHIPS, ORGANIZATIONS, USERS
from sync_pipeline_tests.faults.report import FaultReport
from sync_pipeline_tests.faults.support import (
    ADVISORY_LOCKS,
    apply_lock_key,
    assert_mirror_equals_clerk,
    assert_nothing_written,
    cli_environment,
    failure,
    run,
    wait_for,
)
from sync_pipeline_tests.harness import SyncHarness, as_json

STALL = "__stall__"  # a first name whose row the stall trigger holds up
_serial = count()


@pytest.fixture(scope="module")
def shared(engine: sa.Engine, database_url: str, dagster_instance, fault_report: FaultReport) -> Iterator[SyncHarness]:  # noqa: ANN001
    schema = f"t_dbfaults_{uuid.uuid4().hex[:8]}"
    with EmulatorServer(users=200, orgs=20, seed=29, secret_key="sk_live_db_faults", requests_per_10s=0) as emulator:
        harness = SyncHarness(emulator=emulator, engine=engine, database_url=database_url, schema=schema, instance=dagster_instance)
        assert run(harness, fault_report).success
        try:
            yield harness
        finally:
            with engine.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
def harness(shared: SyncHarness) -> SyncHarness:
    """The module's Clerk and mirror, in step at the start of each case."""
    return shared


@contextmanager
def admin(harness: SyncHarness) -> Iterator[sa.Connection]:
    """Another connection, in autocommit: the one that injects the fault.

    Not from the pool: a session advisory lock taken on it must go when it is closed.
    """
    engine = sa.create_engine(harness.engine.url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def pending_changes(harness: SyncHarness, *, stall: bool = False) -> dict[str, str]:
    """Clerk deletes a user, renames one and adds one; ``stall`` names the renamed one STALL."""
    store = harness.emulator.store
    n = next(_serial)
    users = [u["id"] for u in store.iter_users()]
    deleted, renamed = users[5 + 2 * n], users[6 + 2 * n]
    store.delete_user(deleted)
    store.update_user(renamed, first_name=STALL if stall else f"Renamed {n}")
    created = store.create_user(email_addresses=[f"db-fault-{n}@example.com"], first_name="Created")
    return {"deleted": deleted, "renamed": renamed, "created": created["id"]}


@contextmanager
def trigger(harness: SyncHarness, table: str, body: str, *, when: str = "true") -> Iterator[None]:
    """A BEFORE INSERT trigger on a mirror table (it fires for ON CONFLICT updates too), dropped afterwards."""
    schema = harness.schema
    with admin(harness) as connection:
        connection.execute(
            sa.text(
                f'CREATE OR REPLACE FUNCTION "{schema}".fault_{table}() RETURNS trigger LANGUAGE plpgsql AS '
                f"$$ BEGIN {body}; RETURN NEW; END $$"
            )
        )
        connection.execute(
            sa.text(
                f'CREATE TRIGGER fault BEFORE INSERT ON "{schema}".{table} FOR EACH ROW WHEN ({when}) '
                f'EXECUTE FUNCTION "{schema}".fault_{table}()'
            )
        )
    try:
        yield
    finally:
        with admin(harness) as connection:
            connection.execute(sa.text(f'DROP TRIGGER IF EXISTS fault ON "{schema}".{table}'))


def stall_users(harness: SyncHarness, seconds: float):  # noqa: ANN201
    return trigger(harness, "users", f"PERFORM pg_sleep({seconds})", when=f"NEW.first_name = '{STALL}'")


def stalled_backend(harness: SyncHarness) -> int | None:
    with admin(harness) as connection:
        return connection.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE :pattern "
                "AND pid <> pg_backend_pid()"
            ),
            {"pattern": f'%"{harness.schema}".users%'},
        ).scalar()


def backends(harness: SyncHarness) -> list:
    """What every other backend is doing, and the advisory locks it holds or waits for (for failure messages)."""
    with admin(harness) as connection:
        return connection.execute(
            sa.text(
                "SELECT a.pid, a.state, a.wait_event, l.granted, left(a.query, 100) FROM pg_stat_activity a "
                "LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' "
                "WHERE a.datname IS NOT NULL AND a.pid <> pg_backend_pid()"
            )
        ).all()


def converges(harness: SyncHarness, report: FaultReport, *, mirror: dict | None = None, **kwargs) -> None:
    """The rerun after the fault: succeeds, and the mirror is Clerk."""
    result = run(harness, report, mirror={"lock_timeout_seconds": 20, **(mirror or {})}, **kwargs)
    assert result.success, (failure(result), backends(harness))
    assert_mirror_equals_clerk(harness, report)


def test_a_connection_killed_mid_apply_rolls_back_and_a_rerun_converges(harness: SyncHarness, fault_report: FaultReport) -> None:
    changes = pending_changes(harness, stall=True)
    before = harness.row_versions()
    killed: list[int] = []

    def kill_when_stalled() -> None:
        pid = wait_for(lambda: stalled_backend(harness), timeout=60)
        if pid:
            with admin(harness) as connection:
                connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            killed.append(pid)

    # The apply's deletes are done and its users upsert is under way when its backend is killed.
    with stall_users(harness, 30):
        killer = threading.Thread(target=kill_when_stalled)
        killer.start()
        result = run(harness, fault_report)
        killer.join()
    fault_report.fault("database backend killed mid-apply")

    assert killed, "the apply never reached the stalled row"
    assert not result.success
    assert "AdminShutdown" in failure(result) or "terminat" in failure(result).lower(), failure(result)
    assert_nothing_written(harness, fault_report, before)
    assert harness.row(USERS, changes["deleted"])["deleted_at"] is None  # the delete before it rolled back too
    assert harness.sync_runs()["outcome"].iloc[-1] == "failed"
    converges(harness, fault_report)


def test_a_held_lock_makes_a_sync_fail_cleanly_or_wait(harness: SyncHarness, fault_report: FaultReport) -> None:
    pending_changes(harness)
    before = harness.row_versions()
    key = apply_lock_key(harness.schema)

    with admin(harness) as holder:
        holder.execute(sa.text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": key})
        fault_report.fault("database apply lock held")
        refused = run(harness, fault_report, mirror={"lock_timeout_seconds": 1})

        assert not refused.success
        assert "SyncLockTimeout" in failure(refused), failure(refused)
        assert_nothing_written(harness, fault_report, before)
        assert "write lock" in harness.sync_runs()["message"].iloc[-1]

        # Released while the next sync waits for it: that one goes through.
        releaser = threading.Timer(1.5, lambda: holder.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key}))
        started = time.monotonic()
        releaser.start()
        try:
            converges(harness, fault_report, mirror={"lock_timeout_seconds": 30})
        finally:
            releaser.join()
    assert time.monotonic() - started >= 1.5


def test_a_statement_timeout_rolls_back_and_a_rerun_converges(harness: SyncHarness, fault_report: FaultReport) -> None:
    changes = pending_changes(harness, stall=True)
    before = harness.row_versions()
    fault_report.fault("database statement timeout")

    with stall_users(harness, 3):
        result = run(harness, fault_report, mirror={"statement_timeout_seconds": 0.5})

    assert not result.success
    assert "statement timeout" in failure(result), failure(result)
    assert_nothing_written(harness, fault_report, before)
    assert harness.row(USERS, changes["deleted"])["deleted_at"] is None
    converges(harness, fault_report, mirror={"statement_timeout_seconds": 30})


FAILING_STATEMENTS = {
    # The disk-full class (SQLSTATE 53xxx), met by the last upsert of the transaction or an earlier one.
    "disk full": (MEMBERSHIPS, "RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'"),
    "out of memory": (ORGANIZATIONS, "RAISE EXCEPTION 'out of memory' USING ERRCODE = 'out_of_memory'"),
    "check constraint": (MEMBERSHIPS, None),
}


@contextmanager
def failing_statement(harness: SyncHarness, case: str) -> Iterator[None]:
    table, body = FAILING_STATEMENTS[case]
    if body is not None:
        with trigger(harness, table, body):
            yield
        return
    with admin(harness) as connection:
        connection.execute(sa.text(f'ALTER TABLE "{harness.schema}".{table} ADD CONSTRAINT fault CHECK (role IS NULL) NOT VALID'))
    try:
        yield
    finally:
        with admin(harness) as connection:
            connection.execute(sa.text(f'ALTER TABLE "{harness.schema}".{table} DROP CONSTRAINT IF EXISTS fault'))


@pytest.mark.parametrize("case", list(FAILING_STATEMENTS))
def test_a_failing_statement_rolls_back_everything_before_it(harness: SyncHarness, fault_report: FaultReport, case: str) -> None:
    changes = pending_changes(harness)
    # Renaming an organization rewrites its memberships too: every table has rows to write.
    organization = list(harness.emulator.store.iter_organizations())[next(_serial) % 20]["id"]
    harness.emulator.store.update_organization(organization, name=f"Renamed organization {case}")
    before = harness.row_versions()
    fault_report.fault(f"database {case}")

    with failing_statement(harness, case):
        result = run(harness, fault_report)

    assert not result.success
    assert_nothing_written(harness, fault_report, before)  # the rows written before it rolled back too
    assert harness.row(USERS, changes["deleted"])["deleted_at"] is None
    assert harness.sync_runs()["outcome"].iloc[-1] == "failed"
    converges(harness, fault_report)


def test_two_syncs_started_at_once_never_write_together(
    harness: SyncHarness, fault_report: FaultReport, tmp_path  # noqa: ANN001
) -> None:
    """Two `sync-pipeline sync` processes, as two launched runs would be: one writes, the other waits.

    Processes rather than threads: runs never share a Python process in production, and
    two in-process runs in one interpreter also share its import lock and logging, which is
    not the fault under test.
    """
    pending_changes(harness, stall=True)
    runs_before = len(harness.sync_runs())
    key = apply_lock_key(harness.schema)
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def lock_state(connection: sa.Connection) -> tuple[int, int]:
        rows = connection.execute(sa.text(ADVISORY_LOCKS), {"key": key}).all()
        return sum(1 for _, g in rows if g), sum(1 for _, g in rows if not g)

    def watch_lock() -> None:
        with admin(harness) as connection:
            while not done.is_set():
                samples.append(lock_state(connection))
                time.sleep(0.02)

    def logs() -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text()[-3000:]}" for path in sorted(tmp_path.glob("sync-*.log")))

    # Both syncs are started together and held at the apply's lock until both are there, so
    # they meet for sure; then the first to get it holds it a while (the stalled row).
    with stall_users(harness, 1.0), admin(harness) as gate:
        gate.execute(sa.text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": key})
        children = []
        for name in ("first", "second"):
            log = (tmp_path / f"sync-{name}.log").open("w")
            children.append(subprocess.Popen(
                [sys.executable, "-m", "sync_pipeline.cli", "sync"], env=cli_environment(harness),
                stdout=log, stderr=subprocess.STDOUT,
            ))
        try:
            both_waiting = wait_for(
                lambda: lock_state(gate)[1] == 2 or any(child.poll() is not None for child in children),
                timeout=120, interval=0.1,
            ) and lock_state(gate)[1] == 2
            assert both_waiting, f"both syncs never waited at the lock; backends: {backends(harness)}\n{logs()}"
            watcher = threading.Thread(target=watch_lock)
            watcher.start()
            gate.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})
            codes = [child.wait(timeout=120) for child in children]
            done.set()
            watcher.join()
        finally:
            done.set()
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
    fault_report.ran(2)
    fault_report.fault("database two syncs at once")

    assert codes == [0, 0], logs()
    assert max(granted for granted, _ in samples) == 1  # never two holders
    assert any(granted == 1 and waiting == 1 for granted, waiting in samples)  # one waited for the other
    # One wrote the changes; the other, planned before them, found nothing left to write.
    runs = harness.sync_runs().iloc[runs_before:]
    assert list(runs["outcome"]) == ["succeeded", "succeeded"]
    written = sorted(
        sum(sum(kinds.values()) for kinds in as_json(counts)["written"].values()) for counts in runs["counts"]
    )
    assert written[0] == 0 and written[1] > 0, written
    assert_mirror_equals_clerk(harness, fault_report)


def test_a_sync_process_killed_between_plan_and_apply_writes_nothing_and_a_rerun_converges(
    harness: SyncHarness, fault_report: FaultReport, tmp_path  # noqa: ANN001
) -> None:
    changes = pending_changes(harness)
    before = harness.row_versions()
    runs_before = len(harness.sync_runs())
    key = apply_lock_key(harness.schema)

    with admin(harness) as holder:
        # The lock makes the child stop at the apply's first statement, its plan made.
        holder.execute(sa.text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": key})
        with (tmp_path / "sync.log").open("w") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "sync_pipeline.cli", "sync"], env=cli_environment(harness), stdout=log, stderr=subprocess.STDOUT
            )
            try:
                waiting = wait_for(
                    lambda: child.poll() is not None
                    or [pid for pid, granted in holder.execute(sa.text(ADVISORY_LOCKS), {"key": key}).all() if not granted],
                    timeout=120,
                    interval=0.1,
                )
                assert child.poll() is None, (tmp_path / "sync.log").read_text()
                assert waiting, "the child never reached the apply"
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=30)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        fault_report.fault("run process killed between plan and apply")
        fault_report.ran()
    # The lock is free again; the dead process's backend gives up once it finds its client gone.

    assert child.returncode == -signal.SIGKILL
    assert_nothing_written(harness, fault_report, before)
    assert harness.row(USERS, changes["deleted"])["deleted_at"] is None
    assert len(harness.sync_runs()) == runs_before  # the killed run left no trace
    converges(harness, fault_report)
    assert harness.row(USERS, changes["deleted"])["deleted_at"] is not None
