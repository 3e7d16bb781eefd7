"""Fixtures for end-to-end syncs: an emulator of the test's own, a Dagster instance, a harness."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, instance_for_test

from sync_pipeline.emulator import EmulatorServer
from sync_pipeline_tests.harness import SyncHarness

USERS, ORGS, SEED = 200, 20, 11


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    """Free to change: each test gets its own Clerk."""
    with EmulatorServer(users=USERS, orgs=ORGS, seed=SEED, secret_key="sk_live_test", requests_per_10s=0) as server:
        yield server


@pytest.fixture(scope="module")
def dagster_instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def harness(emulator: EmulatorServer, engine: sa.Engine, database_url: str, schema: str, dagster_instance: DagsterInstance) -> SyncHarness:
    return SyncHarness(emulator=emulator, engine=engine, database_url=database_url, schema=schema, instance=dagster_instance)
