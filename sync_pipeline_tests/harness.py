"""A sync under test: the real job over the emulator (real HTTP) and a real Postgres schema."""

from __future__ import annotations

from collections.abc import Iterable

import json
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from dagster import DagsterInstance, ExecuteInProcessResult

from sync_pipeline.clerk.client import ClerkClient
from sync_pipeline.definitions import build_definitions
from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.model import ENTITIES
from sync_pipeline.defs.run_config import sync_run_config

TEST_CLIENT_SETTINGS = {"requests_per_10s": 10_000, "max_backoff_seconds": 0.2, "timeout_seconds": 5.0}


@dataclass
class SyncHarness:
    emulator: EmulatorServer
    engine: sa.Engine
    database_url: str
    schema: str
    instance: DagsterInstance

    def resources(self, emulator: EmulatorServer | None = None, **client_settings) -> dict:
        emulator = emulator or self.emulator
        return {
            "clerk": ClerkClient(
                secret_key=emulator.secret_key,
                api_url=emulator.base_url,
                **{**TEST_CLIENT_SETTINGS, **client_settings},
            ),
            "mirror_db": MirrorDatabase(database_url=self.database_url, db_schema=self.schema),
        }

    def definitions(self, emulator: EmulatorServer | None = None, **client_settings):  # noqa: ANN201
        return build_definitions(self.resources(emulator, **client_settings))

    def run(
        self,
        emulator: EmulatorServer | None = None,
        client_settings: dict | None = None,
        job: str = "full_sync_job",
        run_config: dict | None = None,
        **options,
    ) -> ExecuteInProcessResult:
        """Run a job as Dagster would, with ``options`` as the run's config (or a whole run_config)."""
        defs = self.definitions(emulator, **(client_settings or {}))
        return defs.resolve_job_def(job).execute_in_process(
            run_config=run_config or sync_run_config(options),
            instance=self.instance,
            raise_on_error=False,
        )

    def query(self, sql: str, **params) -> pd.DataFrame:
        with self.engine.connect() as connection:
            return pd.read_sql(sa.text(sql.replace("{schema}", f'"{self.schema}"')), connection, params=params)

    def live_ids(self, entity: str) -> set[str]:
        return set(self.query(f"SELECT id FROM {{schema}}.{entity} WHERE deleted_at IS NULL")["id"])

    def row(self, entity: str, object_id: str) -> dict:
        rows = self.query(f"SELECT * FROM {{schema}}.{entity} WHERE id = :id", id=object_id).to_dict("records")
        assert len(rows) == 1, f"{entity} {object_id}: {len(rows)} rows"
        return rows[0]

    def row_versions(self) -> dict[str, dict[str, str]]:
        """Each row's xmin: it changes exactly when the row is written, so it proves a no-op wrote nothing."""
        return {
            entity: dict(self.query(f"SELECT id, xmin::text AS version FROM {{schema}}.{entity}").itertuples(index=False))
            for entity in ENTITIES
        }

    def sync_runs(self) -> pd.DataFrame:
        return self.query("SELECT * FROM {schema}.sync_runs ORDER BY id")

    def changes_of_last_run(self) -> pd.DataFrame:
        return self.query(
            "SELECT * FROM {schema}.sync_changes WHERE sync_run_id = (SELECT max(id) FROM {schema}.sync_runs) ORDER BY id"
        )


def clerk_ids(emulator: EmulatorServer) -> dict[str, set[str]]:
    """What the emulator holds now, by entity."""
    return {entity: {obj["id"] for obj in objects} for entity, objects in clerk_objects(emulator).items()}


# The emulator store's iterator over each described entity, as Clerk's instance-wide list shows it.
_ITERATORS = {
    "users": "iter_users",
    "organizations": "iter_organizations",
    "organization_memberships": "iter_memberships",
    "organization_permissions": "iter_permissions",
    "organization_roles": "iter_roles",
    "organization_invitations": "iter_invitations",
    "organization_domains": "iter_domains",
}


def clerk_objects(emulator: EmulatorServer) -> dict[str, Iterable[dict]]:
    """What the emulator holds now, by entity: every described entity (a new one fails here
    until it is given its iterator)."""
    return {entity: getattr(emulator.store, _ITERATORS[entity])() for entity in ENTITIES}


def written_rows(result: ExecuteInProcessResult) -> int:
    """Mirror rows the run wrote, as its materializations report them."""
    total = 0
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[0] == "clerk_mirror":
            total += int(event.materialization.metadata["rows_written"].value)
    return total


def check_result(result: ExecuteInProcessResult, name: str, asset: str | None = None) -> bool:
    evaluations = [
        e for e in result.get_asset_check_evaluations()
        if e.check_name == name and (asset is None or e.asset_key.path[-1] == asset)
    ]
    assert evaluations, f"check {name} did not run"
    return all(e.passed for e in evaluations)


def as_json(value) -> object:
    return json.loads(value) if isinstance(value, str) else value
