"""The command line as a user meets it: summaries on success, one line on every mistake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync_pipeline.cli import main
from sync_pipeline.emulator import EmulatorServer

KEY = "sk_live_cli_test_key_1234"


@pytest.fixture
def clerk() -> Iterator[EmulatorServer]:
    with EmulatorServer(users=120, orgs=12, seed=5, secret_key=KEY, requests_per_10s=0) as server:
        yield server


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, clerk: EmulatorServer, database_url: str, schema: str) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("CLERK_SECRET_KEY", KEY)
    monkeypatch.setenv("CLERK_API_URL", clerk.base_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SYNC_SCHEMA", schema)


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_sync_prints_a_summary_then_analyze_finds_no_drift(environment: None, capsys: pytest.CaptureFixture) -> None:
    assert main(["sync"]) == 0
    out = capsys.readouterr().out
    assert "users" in out and "120" in out
    assert "Mirror rows written:" in out

    assert main(["analyze"]) == 0
    assert "no drift" in capsys.readouterr().out


def test_a_dry_run_says_so_and_a_scoped_sync_reports_its_scope(environment: None, capsys: pytest.CaptureFixture, clerk: EmulatorServer) -> None:
    assert main(["sync", "--dry-run"]) == 0
    assert "no mirror row written" in capsys.readouterr().out

    user_id = next(iter(clerk.store.iter_users()))["id"]
    assert main(["sync", "--user-id", user_id]) == 0
    assert "scoped: 1 user(s)" in capsys.readouterr().out


def test_a_missing_key_is_one_line_naming_the_variable(environment: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("CLERK_SECRET_KEY")

    assert main(["sync"]) == 3
    assert "CLERK_SECRET_KEY" in one_line(capsys.readouterr().err)


def test_a_wrong_key_is_one_line_and_never_echoes_the_key(environment: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("CLERK_SECRET_KEY", "sk_live_revoked_secret_value")

    assert main(["sync"]) == 3  # bad configuration, as a missing key is
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert "401" in line and "CLERK_SECRET_KEY" in line
    assert "sk_live_revoked_secret_value" not in captured.err + captured.out

    assert main(["analyze"]) == 3  # analyze reads Clerk outside a Dagster run: the same answer
    assert "401" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [("--user-id", "", "empty"), ("--org-id", "", "empty"), ("--user-id", "../users", "characters"), ("--org-id", "org 1", "characters")],
)
def test_an_id_that_cannot_be_clerks_is_refused_before_anything_runs(
    environment: None, capsys: pytest.CaptureFixture, flag: str, value: str, problem: str
) -> None:
    for command in (["sync"], ["analyze"], ["sync", "--dry-run"]):
        assert main([*command, flag, value]) == 3
        line = one_line(capsys.readouterr().err)
        assert flag in line and problem in line


def test_an_option_out_of_range_is_one_line_naming_it_before_anything_runs(environment: None, capsys: pytest.CaptureFixture) -> None:
    assert main(["sync", "--max-delete-share", "2"]) == 3
    line = one_line(capsys.readouterr().err)
    assert "max_delete_share=2.0" in line and "less than or equal to 1" in line


def test_ids_clerk_does_not_have_are_listed_in_the_output_and_the_run(
    environment: None, capsys: pytest.CaptureFixture, clerk: EmulatorServer
) -> None:
    real = next(iter(clerk.store.iter_users()))["id"]
    assert main(["sync", "--user-id", real, "--user-id", "nonsense", "--org-id", "org_0000000000000000000000000"]) == 0
    out = capsys.readouterr().out
    assert "Not in Clerk" in out and "nonsense" in out and "org_0000000000000000000000000" in out
    assert real not in out.split("Not in Clerk", 1)[1]

    assert main(["analyze", "--user-id", "nonsense"]) == 0
    assert "1 user id(s): nonsense" in capsys.readouterr().out


def test_ids_not_in_clerk_are_in_the_clerk_snapshot_metadata(
    environment: None, monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture
) -> None:
    from dagster import AssetKey, DagsterInstance

    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert main(["sync", "--user-id", "user_missing1"]) == 0
    with DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(AssetKey("clerk_snapshot"))
    assert event.asset_materialization.metadata["not_in_clerk"].value == {
        "user": ["user_missing1"], "organization": [], "role": [], "permission": []
    }


def test_an_unreachable_database_is_one_line(environment: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://sync:hunter2@127.0.0.1:9/nowhere?connect_timeout=2")

    assert main(["sync"]) == 3
    line = one_line(capsys.readouterr().err)
    assert "cannot connect" in line and "DATABASE_URL" in line
    assert "hunter2" not in line


def test_the_guard_refusal_exits_2(environment: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    assert main(["sync"]) == 0
    capsys.readouterr()
    with EmulatorServer(users=0, orgs=0, secret_key=KEY, requests_per_10s=0) as empty:
        monkeypatch.setenv("CLERK_API_URL", empty.base_url)
        assert main(["sync"]) == 2
        line = one_line(capsys.readouterr().err)
        assert "refused by the delete guard" in line and "allow_mass_delete" in line


def test_status_answers_whether_the_mirror_is_right(environment: None, capsys: pytest.CaptureFixture) -> None:
    assert main(["status"]) == 0
    assert "NEVER SYNCED" in capsys.readouterr().out
    assert main(["status", "--check"]) == 1

    assert main(["sync"]) == 0
    capsys.readouterr()
    assert main(["status", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Mirror: OK") and "last full sync:     succeeded" in out


def test_analyze_is_the_sync_jobs_dry_run_and_nothing_is_handed_over_through_the_environment(
    environment: None, monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture, engine, schema: str, clerk: EmulatorServer
) -> None:
    import os

    import sqlalchemy as sa
    from dagster import DagsterInstance

    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    before = dict(os.environ)
    user_id = next(iter(clerk.store.iter_users()))["id"]

    assert main(["analyze", "--user-id", user_id]) == 0
    assert "drift found" in capsys.readouterr().out
    assert main(["sync", "--dry-run"]) == 0
    capsys.readouterr()
    assert dict(os.environ) == before

    with DagsterInstance.get() as instance:
        runs = sorted(instance.get_runs(), key=lambda run: instance.get_run_stats(run.run_id).start_time)
    assert [run.job_name for run in runs] == ["full_sync_job", "full_sync_job"]
    # Both are the job's dry run, launched with the Launchpad's schema; analyze labels itself in the audit trail.
    assert runs[0].run_config["ops"]["sync_scope"]["config"] == {
        "dry_run": True, "user_ids": [user_id], "organization_ids": [], "mode": "analyze"
    }
    assert runs[1].run_config["ops"]["sync_scope"]["config"] == {
        "dry_run": True, "user_ids": [], "organization_ids": [], "allow_mass_delete": False
    }
    with engine.connect() as connection:
        assert connection.execute(sa.text(f'SELECT count(*) FROM "{schema}".users')).scalar_one() == 0
        audit = connection.execute(sa.text(f'SELECT mode, dry_run, outcome FROM "{schema}".sync_runs ORDER BY id')).all()
    assert [tuple(row) for row in audit] == [("analyze", True, "dry_run"), ("full", True, "dry_run")]


def test_the_parser_imports_no_emulator_and_names_its_port() -> None:
    """Every command builds the parser first: the emulator (Starlette, uvicorn, svix) is imported only to serve it."""
    import subprocess
    import sys

    from sync_pipeline.cli import EMULATOR_DEFAULT_PORT
    from sync_pipeline.emulator.server import DEFAULT_PORT

    assert EMULATOR_DEFAULT_PORT == DEFAULT_PORT
    probe = (
        "import sys; from sync_pipeline.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('sync_pipeline.emulator', 'starlette', 'uvicorn', 'svix', 'dagster', 'pandas') if m in sys.modules))"
    )
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert imported == "[]"
