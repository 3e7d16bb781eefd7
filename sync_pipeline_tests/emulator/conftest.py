"""Emulators for the tests: a shared read-only one per module, a private one for changes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sync_pipeline.emulator import EmulatorServer
from sync_pipeline_tests.emulator.emulator_http import SEED, SMALL_ORGS, SMALL_USERS, http_client


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """Shared by a module's tests: do not change its data, faults or settings."""
    with EmulatorServer(users=SMALL_USERS, orgs=SMALL_ORGS, seed=SEED, requests_per_10s=0) as server:
        yield server


@pytest.fixture
def client(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with http_client(emulator) as http:
        yield http


@pytest.fixture
def private_emulator() -> Iterator[EmulatorServer]:
    """An emulator of the test's own, free to change."""
    with EmulatorServer(users=SMALL_USERS, orgs=SMALL_ORGS, seed=SEED, requests_per_10s=0) as server:
        yield server


@pytest.fixture
def private_client(private_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with http_client(private_emulator) as http:
        yield http
