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

    assert main(["sync"]) == 1
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert "401" in line and "CLERK_SECRET_KEY" in line
    assert "sk_live_revoked_secret_value" not in captured.err + captured.out


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
