"""Helpers of the fault suite: runs with chosen settings, the mirror held against Clerk, errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import sqlalchemy as sa
from dagster import DagsterInstance, ExecuteInProcessResult

from sync_pipeline.definitions import build_definitions
from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.entities import catalog
from sync_pipeline.model import ENTITIES, MEMBERSHIPS, ORGANIZATIONS, USERS
from sync_pipeline_tests.faults.report import FaultReport
from sync_pipeline_tests.harness import SyncHarness, as_json
from sync_pipeline.defs.run_config import sync_run_config
from sync_pipeline_tests.harness import clerk_objects as harness_clerk_objects

# Small pages, so that a fault "on a random page" has pages to choose from (200 users: 4 pages).
PAGED = {"page_size": 50}


def run(
    harness: SyncHarness,
    report: FaultReport | None = None,
    *,
    job: str = "full_sync_job",
    client: dict | None = None,
    mirror: dict | None = None,
    emulator: EmulatorServer | None = None,
    instance: DagsterInstance | None = None,
    schema: str | None = None,
    run_config: dict | None = None,
    **options,
) -> ExecuteInProcessResult:
    """One run of ``job`` as Dagster would launch it, with client and MirrorDatabase settings of the test's choosing."""
    resources = harness.resources(emulator, **{**PAGED, **(client or {})})
    resources["mirror_db"] = MirrorDatabase(
        **{"database_url": harness.database_url, "db_schema": schema or harness.schema, **(mirror or {})}
    )
    if report is not None:
        report.ran()
    return build_definitions(resources).resolve_job_def(job).execute_in_process(
        run_config=run_config or sync_run_config(options),
        instance=instance or harness.instance,
        raise_on_error=False,
    )


def failure(result: ExecuteInProcessResult) -> str:
    """Every step failure's error chain, as text (for asserting what failed and why)."""
    texts = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            texts.append(f"{error.cls_name}: {error.message.strip()}")
            error = error.cause
    return "\n".join(texts)


def clerk_objects(emulator: EmulatorServer) -> dict[str, dict[str, dict]]:
    """Everything Clerk holds now, by entity and id, as Clerk serves it (less what a
    description leaves out of ``raw``)."""
    by_entity = {}
    for entity, objects in harness_clerk_objects(emulator).items():
        left_out = catalog.describe(entity).raw_leaves_out
        by_entity[entity] = {o["id"]: {k: v for k, v in o.items() if k not in left_out} for o in objects}
    return by_entity


@dataclass
class Difference:
    missing: dict[str, set[str]] = field(default_factory=dict)  # in Clerk, not live in the mirror
    extra: dict[str, set[str]] = field(default_factory=dict)  # live in the mirror, gone from Clerk
    stale: dict[str, set[str]] = field(default_factory=dict)  # live in both, raw differs

    @property
    def lost(self) -> int:
        return sum(len(ids) for ids in self.missing.values())

    @property
    def none(self) -> bool:
        return not any(self.missing.values()) and not any(self.extra.values()) and not any(self.stale.values())


def mirror_against_clerk(harness: SyncHarness, emulator: EmulatorServer | None = None, schema: str | None = None) -> Difference:
    """How the live mirror rows differ from what Clerk serves now: ids, and every raw object."""
    clerk = clerk_objects(emulator or harness.emulator)
    difference = Difference()
    with harness.engine.connect() as connection:
        for entity in ENTITIES:
            rows = connection.execute(
                sa.text(f'SELECT id, raw::text FROM "{schema or harness.schema}".{entity} WHERE deleted_at IS NULL')
            ).all()
            live = {row_id: json.loads(raw) for row_id, raw in rows}
            difference.missing[entity] = set(clerk[entity]) - set(live)
            difference.extra[entity] = set(live) - set(clerk[entity])
            difference.stale[entity] = {i for i in set(live) & set(clerk[entity]) if live[i] != clerk[entity][i]}
    return difference


def assert_mirror_equals_clerk(harness: SyncHarness, report: FaultReport, **kwargs) -> None:
    """The live mirror is exactly Clerk: the same ids, every raw object equal. Lost rows go to the report."""
    difference = mirror_against_clerk(harness, **kwargs)
    report.lost(difference.lost)
    assert difference.none, difference


def assert_nothing_written(harness: SyncHarness, report: FaultReport, before: dict) -> None:
    """No mirror row was written since ``before`` (row versions by xmin, as the harness takes them)."""
    after = harness.row_versions()
    changed = {
        entity: {i for i in set(before[entity]) | set(after[entity]) if before[entity].get(i) != after[entity].get(i)}
        for entity in ENTITIES
    }
    report.lost(sum(len(ids) for ids in changed.values()))
    assert not any(changed.values()), changed


def raw_of(harness: SyncHarness, entity: str, object_id: str) -> dict:
    return as_json(harness.row(entity, object_id)["raw"])


def wait_for(probe, *, timeout: float, interval: float = 0.05):  # noqa: ANN001, ANN201
    """Call ``probe()`` until it returns something truthy (returned) or ``timeout`` passes (None)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    return None


def apply_lock_key(schema: str) -> str:
    """The advisory lock the apply takes (sync_pipeline.mirror.apply._lock_key)."""
    return f"sync_pipeline:apply:{schema}"


# pg_locks shows a bigint advisory key as classid (high half) and objid (low half), objsubid 1.
ADVISORY_LOCKS = """
    SELECT pid, granted FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND objid::bigint = (hashtext(:key)::bigint & 4294967295)
"""


# ------------------------------------------------------------------ processes of the suite

def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli_environment(harness: SyncHarness, **extra: str) -> dict[str, str]:
    """What a `sync-pipeline` process needs to reach the test's Clerk and mirror (no DAGSTER_HOME)."""
    import os

    environment = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    environment.update(
        CLERK_SECRET_KEY=harness.emulator.secret_key,
        CLERK_API_URL=harness.emulator.base_url,
        CLERK_REQUESTS_PER_10S="10000",
        DATABASE_URL=harness.database_url,
        SYNC_SCHEMA=harness.schema,
    )
    environment.update(extra)
    return environment


class ReceiverProcess:
    """`sync-pipeline webhooks serve` in a process of its own on 127.0.0.1, its output kept in a file."""

    def __init__(self, environment: dict[str, str], log_path) -> None:  # noqa: ANN001
        import subprocess
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sync_pipeline.cli", "webhooks", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        import httpx

        def healthy() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"the receiver exited: {open(self.log_path).read()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_for(healthy, timeout=timeout, interval=0.1):
            raise RuntimeError("the receiver did not become healthy")

    def stop(self) -> str:
        """Stop it (SIGTERM, as a process manager would) and return everything it printed."""
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return open(self.log_path, encoding="utf-8", errors="replace").read()


def run_loadgen(url: str, deliveries: list[tuple[str, str]], *, secret: str, path, concurrency: int, max_seconds: float):  # noqa: ANN001, ANN201
    """Start the load generator (sync_pipeline_tests.faults.loadgen) on ``deliveries``; returns the Popen."""
    import os
    import subprocess
    import sys

    with open(path, "w", encoding="utf-8") as out:
        for svix_id, body in deliveries:
            out.write(json.dumps({"id": svix_id, "body": body}) + "\n")
    return subprocess.Popen(
        [sys.executable, "-m", "sync_pipeline_tests.faults.loadgen", "--url", url, "--deliveries", str(path),
         "--concurrency", str(concurrency), "--max-seconds", str(max_seconds)],
        env={**os.environ, "LOADGEN_WEBHOOK_SECRET": secret},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
