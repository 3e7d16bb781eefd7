"""`sync-pipeline app-tables …` as a user meets it: dry runs by default, one line on every mistake."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sync_pipeline.cli import main
from sync_pipeline.emulator import EmulatorServer
from sync_pipeline_tests.app_tables.conftest import EXAMPLES

KEY = "sk_live_cli_app_tables_key"


@pytest.fixture
def clerk() -> Iterator[EmulatorServer]:
    with EmulatorServer(users=60, orgs=6, seed=5, secret_key=KEY, requests_per_10s=0) as server:
        yield server


@pytest.fixture
def declarations(engine: sa.Engine, app_schema: str, tmp_path: Path) -> Path:
    """The demo's tables and declarations (examples/), in the test's own schema."""
    sql = (EXAMPLES / "app_tables.sql").read_text().replace("app.", f'"{app_schema}".')
    sql = sql.replace("CREATE SCHEMA IF NOT EXISTS app;", "")
    with engine.begin() as connection:
        connection.execute(sa.text(sql))
    path = tmp_path / "app_tables.yaml"
    path.write_text((EXAMPLES / "app_tables.yaml").read_text().replace("table: app.", f"table: {app_schema}."))
    return path


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, clerk: EmulatorServer, database_url: str, schema: str) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("CLERK_SECRET_KEY", KEY)
    monkeypatch.setenv("CLERK_API_URL", clerk.base_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SYNC_SCHEMA", schema)
    monkeypatch.setenv("SYNC_APP_TABLES", "")  # restored afterwards, whatever --config sets


def count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(sql)).scalar_one()


def test_analyze_then_provision_as_a_dry_run_then_applied(
    environment: None, declarations: Path, engine: sa.Engine, app_schema: str, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = ["--config", str(declarations)]
    assert main(["app-tables", "analyze", *config]) == 0
    out = capsys.readouterr().out
    assert "drift found" in out and f"{app_schema}.user_settings" in out and "missing, user user_" in out

    assert main(["app-tables", "provision", *config]) == 0
    out = capsys.readouterr().out
    assert "Dry run: no mirror row written, no application-table row either." in out
    assert count(engine, f'SELECT count(*) FROM "{app_schema}".user_settings') == 0

    assert main(["app-tables", "provision", "--apply", *config]) == 0
    out = capsys.readouterr().out
    assert f"Application-table rows written: " in out and f"{app_schema}.user_settings insert 60" in out
    assert count(engine, f'SELECT count(*) FROM "{app_schema}".user_settings') == 60

    # --config is handed to the run, not left in the environment for whatever runs next.
    assert os.environ["SYNC_APP_TABLES"] == ""
    assert main(["analyze"]) == 0
    assert "application tables" not in capsys.readouterr().out
    monkeypatch.setenv("SYNC_APP_TABLES", str(declarations))
    assert main(["analyze"]) == 0  # with SYNC_APP_TABLES set, the plain report covers the tables too
    assert "no drift: the mirror matches Clerk and the application tables follow their policies" in capsys.readouterr().out


def test_integrity_reports_then_creates_the_constraints(
    environment: None, declarations: Path, engine: sa.Engine, app_schema: str, capsys: pytest.CaptureFixture
) -> None:
    config = ["--config", str(declarations)]
    assert main(["app-tables", "sync", "--apply", *config]) == 0
    capsys.readouterr()

    assert main(["app-tables", "integrity", *config]) == 0
    out = capsys.readouterr().out
    assert "foreign key tasks_owner_id_fkey (owner_id) ->" in out and "ON DELETE CASCADE: ready" in out
    assert "Dry run: nothing created" in out

    assert main(["app-tables", "integrity", "--apply", *config]) == 0
    assert "Created 6 constraint(s)." in capsys.readouterr().out
    assert count(engine, f"SELECT count(*) FROM pg_constraint WHERE connamespace = '\"{app_schema}\"'::regnamespace AND contype = 'f'") == 5


def test_a_misspelled_column_is_one_line_and_exit_3(
    environment: None, declarations: Path, engine: sa.Engine, app_schema: str, capsys: pytest.CaptureFixture
) -> None:
    declarations.write_text(declarations.read_text().replace("user_id_column: owner_id", "user_id_column: owner"))

    assert main(["app-tables", "sync", "--apply", "--config", str(declarations)]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"tables[2] ({app_schema}.tasks).user_id_column: column 'owner' does not exist" in err
    assert "did you mean 'owner_id'?" in err
    assert count(engine, f'SELECT count(*) FROM "{app_schema}".user_settings') == 0


def test_without_declarations_the_app_table_commands_say_what_to_set(environment: None, capsys: pytest.CaptureFixture) -> None:
    assert main(["app-tables", "cleanup"]) == 3
    assert "SYNC_APP_TABLES is not set" in capsys.readouterr().err
