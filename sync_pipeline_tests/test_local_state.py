"""Local state as a newcomer meets it: in one known directory, and nothing left running.

Real processes throughout: the CLI in a subprocess, pgserver's real PostgreSQL, psutil to
see what still runs afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sync_pipeline.embedded import state_dir

CLI = [sys.executable, "-m", "sync_pipeline.cli"]


@pytest.fixture
def home() -> Iterator[Path]:
    """A state directory short enough for a unix socket (pytest's tmp_path may not be)."""
    directory = Path(tempfile.mkdtemp(prefix="sp-", dir="/tmp"))
    yield directory
    postmaster = directory / "pgdata" / "postmaster.pid"
    if postmaster.exists():  # a failed test must not leave its server behind either
        subprocess.run([*CLI, "stop"], env=_env(directory), capture_output=True, timeout=60)
    shutil.rmtree(directory, ignore_errors=True)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_HOME", "CLERK_SECRET_KEY", "CLERK_API_URL")}
    env["SYNC_PIPELINE_HOME"] = str(home / "state")
    return env


def _postmaster_pid(state: Path) -> int | None:
    pid_file = state / "pgdata" / "postmaster.pid"
    return int(pid_file.read_text().splitlines()[0]) if pid_file.exists() else None


def test_the_state_directory_is_the_per_user_one_unless_sync_pipeline_home_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SYNC_PIPELINE_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert state_dir() == tmp_path / "xdg" / "sync-pipeline"

    monkeypatch.setenv("SYNC_PIPELINE_HOME", "relative/here")
    assert state_dir() == tmp_path / "relative" / "here"


def test_the_demo_stops_the_postgres_it_started(home: Path) -> None:
    env = _env(home)
    completed = subprocess.run(
        [*CLI, "demo", "--users", "40", "--orgs", "4"], env=env, cwd=home, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    state = home / "state"
    # Said where it keeps its state, once; kept it there, not in the working directory.
    assert completed.stderr.count(str(state)) == 1, completed.stderr
    assert sorted(p.name for p in home.iterdir()) == ["state"]
    assert "Second sync, Clerk unchanged: 0 mirror rows written" in completed.stdout

    pid_file = state / "pgdata" / "postmaster.pid"
    assert not pid_file.exists(), "the embedded PostgreSQL is still running after the demo"
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(state / "pgdata") in " ".join(p.info["cmdline"] or [])]


def test_stop_ends_a_postgres_left_running_and_clean_removes_the_state(home: Path) -> None:
    env = _env(home)
    state = home / "state"
    # A server left running: started by a process that leaves without stopping it (as a `ui` killed hard does).
    subprocess.run(
        [sys.executable, "-c", "from sync_pipeline.embedded import start_embedded_postgres; start_embedded_postgres()"],
        env=env, check=True, capture_output=True, timeout=120,
    )
    pid = _postmaster_pid(state)
    assert pid is not None and psutil.pid_exists(pid)

    stopped = subprocess.run([*CLI, "stop"], env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not psutil.pid_exists(pid)
    again = subprocess.run([*CLI, "stop"], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "No embedded PostgreSQL running" in again.stdout

    refused = subprocess.run([*CLI, "clean"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 3 and str(state) in refused.stderr and "--yes" in refused.stderr
    assert state.exists()

    cleaned = subprocess.run([*CLI, "clean", "--yes"], env=env, capture_output=True, text=True, timeout=60)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert not state.exists()


def test_a_command_on_the_embedded_database_leaves_no_server_running(home: Path) -> None:
    env = _env(home)
    completed = subprocess.run([*CLI, "status"], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "NEVER SYNCED" in completed.stdout
    assert _postmaster_pid(home / "state") is None, "status left the embedded PostgreSQL running"


def test_a_sync_on_the_embedded_database_hands_its_url_to_the_job_and_leaves_the_environment_alone(home: Path) -> None:
    from sync_pipeline.emulator import EmulatorServer

    with EmulatorServer(users=20, orgs=2, seed=1, secret_key="sk_test_embedded_cli", requests_per_10s=0) as clerk:
        env = {**_env(home), "CLERK_SECRET_KEY": clerk.secret_key, "CLERK_API_URL": clerk.base_url}
        # The job's resources get the embedded server's URL from the runner, not from a DATABASE_URL it set.
        script = (
            "import os, sys; from sync_pipeline.cli import main; code = main(sys.argv[1:]); "
            "assert 'DATABASE_URL' not in os.environ, 'DATABASE_URL was set for the job'; sys.exit(code)"
        )
        completed = subprocess.run(
            [sys.executable, "-c", script, "sync"], env=env, cwd=home, capture_output=True, text=True, timeout=300
        )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "users" in completed.stdout and "Mirror rows written: " in completed.stdout
    assert _postmaster_pid(home / "state") is None, "sync left the embedded PostgreSQL running"


def test_the_local_dagster_home_gets_the_current_instance_file_unless_the_user_wrote_their_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import yaml

    from sync_pipeline import demo

    monkeypatch.setenv("SYNC_PIPELINE_HOME", str(tmp_path / "state"))
    instance_file = tmp_path / "state" / "dagster_home" / "dagster.yaml"

    def prepared() -> dict:
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        demo.use_local_dagster_home()
        assert os.environ["DAGSTER_HOME"] == str(instance_file.parent)
        return yaml.safe_load(instance_file.read_text())

    # A new state directory, then one an earlier version prepared: both get today's file.
    assert prepared()["sensors"] == {"use_threads": True, "num_workers": 4}
    instance_file.write_text(demo._EARLIER_LOCAL_INSTANCE_CONFIGS[0])
    current = prepared()
    assert current["sensors"]["use_threads"] and current["run_coordinator"]["config"]["dequeue_interval_seconds"] == 1

    # One the user changed is theirs.
    own = demo.LOCAL_INSTANCE_CONFIG.replace("limit: 1", "limit: 2")
    instance_file.write_text(own)
    prepared()
    assert instance_file.read_text() == own
