"""Application tables under test: real tables in a schema of their own, beside the test's mirror schema.

``app.declare(yaml)`` writes a declarations file (``{app}`` stands for the test's
application schema) and ``app.run(...)`` runs the real sync job with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import ExecuteInProcessResult

from sync_pipeline.definitions import build_definitions
from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline_tests.harness import SyncHarness
from sync_pipeline.defs.run_config import sync_run_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class AppTablesHarness:
    sync: SyncHarness
    schema: str  # the application's schema
    directory: Path
    config_path: Path | None = None

    def sql(self, text: str) -> str:
        return text.replace("{app}", f'"{self.schema}"').replace("{mirror}", f'"{self.sync.schema}"')

    def execute(self, text: str, **params) -> None:
        with self.sync.engine.begin() as connection:
            connection.execute(sa.text(self.sql(text)), params)

    def query(self, text: str, **params) -> pd.DataFrame:
        with self.sync.engine.connect() as connection:
            return pd.read_sql(sa.text(self.sql(text)), connection, params=params)

    def declare(self, yaml_text: str) -> Path:
        self.config_path = self.directory / "app_tables.yaml"
        self.config_path.write_text(yaml_text.replace("{app}", self.schema), encoding="utf-8")
        return self.config_path

    def resources(self, *, hard_delete: bool = False) -> dict:
        resources = self.sync.resources()
        resources["mirror_db"] = MirrorDatabase(
            database_url=self.sync.database_url,
            db_schema=self.sync.schema,
            app_tables_config=str(self.config_path or ""),
            hard_delete=hard_delete,
        )
        return resources

    def run(
        self, job: str = "full_sync_job", run_config: dict | None = None, *, hard_delete: bool = False, **options
    ) -> ExecuteInProcessResult:
        return build_definitions(self.resources(hard_delete=hard_delete)).resolve_job_def(job).execute_in_process(
            run_config=run_config or sync_run_config(options),
            instance=self.sync.instance,
            raise_on_error=False,
        )

    def changes(self, entity_prefix: str | None = None) -> pd.DataFrame:
        """The audit trail's rows for the application's tables, every run."""
        prefix = entity_prefix or self.schema
        return self.sync.query(
            "SELECT * FROM {schema}.sync_changes WHERE entity LIKE :prefix ORDER BY id", prefix=f"{prefix}.%"
        )


@pytest.fixture
def app_schema(engine: sa.Engine, schema: str) -> Iterator[str]:
    name = f"{schema}_app"
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    yield name
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


@pytest.fixture
def app(harness: SyncHarness, app_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTablesHarness:
    # The resource falls back to $SYNC_APP_TABLES; a value leaking from elsewhere must not reach these runs.
    monkeypatch.delenv("SYNC_APP_TABLES", raising=False)
    return AppTablesHarness(sync=harness, schema=app_schema, directory=tmp_path)
