"""Shared fixtures: a real Postgres (embedded, or TEST_DATABASE_URL) and a fresh schema per test."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, instance_for_test

from sync_pipeline.embedded import start_embedded_postgres
from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.mirror.database import create_mirror_engine
from sync_pipeline_tests.harness import SyncHarness

# The webhook sensor looks once per evaluation in tests, as the tick-by-tick tests expect;
# test_sensor.py sets a wait where it tests the wait.
os.environ["SYNC_WEBHOOK_SENSOR_WAIT_SECONDS"] = "0"


@pytest.fixture(scope="session")
def database_url() -> str:
    """TEST_DATABASE_URL when set (e.g. the CI machine's server), else a private embedded server."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    # Not under pytest's basetemp: pytest deletes all but the newest three of those, so three
    # later pytest sessions of the same user (another checkout's tests) would delete this
    # server's data under it, and every later test would meet "connection refused".
    directory = Path(tempfile.mkdtemp(prefix="sync-pipeline-test-pg-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)  # registered first: runs after the server stops
    return start_embedded_postgres(directory / "data", stop_at_exit=True)


@pytest.fixture(scope="session")
def engine(database_url: str) -> sa.Engine:
    engine = create_mirror_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def schema(engine: sa.Engine) -> str:
    """A schema of its own for each test, dropped afterwards; nothing leaks between tests."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that touch Postgres carry the ``database`` marker, so CI can rerun them on another server."""
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.database)


# == a sync under test: its own Clerk emulator, a Dagster instance, the harness ==========

SYNC_USERS, SYNC_ORGS, SYNC_SEED = 200, 20, 11


@pytest.fixture
def clerk_emulator() -> Iterator[EmulatorServer]:
    """Free to change: each test gets its own Clerk."""
    with EmulatorServer(users=SYNC_USERS, orgs=SYNC_ORGS, seed=SYNC_SEED, secret_key="sk_live_test", requests_per_10s=0) as server:
        yield server


@pytest.fixture(scope="module")
def dagster_instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def harness(clerk_emulator: EmulatorServer, engine: sa.Engine, database_url: str, schema: str, dagster_instance: DagsterInstance) -> SyncHarness:
    return SyncHarness(emulator=clerk_emulator, engine=engine, database_url=database_url, schema=schema, instance=dagster_instance)
