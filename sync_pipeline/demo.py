"""The pipeline on embedded defaults: the Clerk emulator, the embedded Postgres, a local Dagster home.

``sync-pipeline demo`` syncs the emulator's generated instance into the mirror twice (the
second time nothing changed, so nothing is written) and ``sync-pipeline ui`` opens the
Dagster UI over the same database and run history.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from collections.abc import Iterator

from sync_pipeline.embedded import start_embedded_postgres, state_dir

DEMO_SECRET_KEY = "sk_test_emulator"
DEMO_SEED = 42


def _use_local_dagster_home() -> None:
    """Runs go to .sync-pipeline/dagster_home unless the user chose a DAGSTER_HOME."""
    if not os.environ.get("DAGSTER_HOME"):
        home = state_dir() / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        instance_config = home / "dagster.yaml"
        if not instance_config.exists():  # local SQLite storage, and no telemetry banner
            instance_config.write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = str(home)


@contextmanager
def demo_environment(users: int, orgs: int) -> Iterator[str]:
    """Emulator up, database chosen, environment set for the job; yields the database URL."""
    from sync_pipeline.emulator import EmulatorServer

    _use_local_dagster_home()
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = start_embedded_postgres()
        print(f"Database: embedded PostgreSQL in {state_dir() / 'pgdata'} (set DATABASE_URL to use your own)")
    else:
        print("Database: DATABASE_URL")
    with EmulatorServer(users=users, orgs=orgs, seed=DEMO_SEED, secret_key=DEMO_SECRET_KEY) as emulator:
        os.environ["CLERK_API_URL"] = emulator.base_url
        os.environ["CLERK_SECRET_KEY"] = DEMO_SECRET_KEY
        print(f"Clerk: the emulator at {emulator.base_url} ({users} users, {orgs} organizations, seed {DEMO_SEED})")
        yield os.environ["DATABASE_URL"]


def run_demo(*, users: int, orgs: int, verbose: bool = False) -> int:
    from sync_pipeline.runner import EXIT_OK, SyncRequest, run_sync

    with demo_environment(users, orgs):
        first = run_sync(SyncRequest(), verbose=verbose)
        print("\n" + first.summary())
        if first.exit_code != EXIT_OK:
            return first.exit_code
        second = run_sync(SyncRequest(), verbose=verbose)
        written = sum(sum(kinds.values()) for kinds in second.rows_written.values())
        print(f"\nSecond sync, Clerk unchanged: {written} mirror rows written in {second.seconds:.1f}s.")
        if second.exit_code != EXIT_OK:
            return second.exit_code
    print(
        "\nThe mirror is in schema "
        f"'{os.environ.get('SYNC_SCHEMA', 'clerk')}'. See both runs, the plan and the checks in the Dagster UI:\n"
        "    sync-pipeline ui      (then open http://127.0.0.1:3000)"
    )
    return EXIT_OK


def run_ui(*, port: int, users: int, orgs: int) -> int:
    """``dagster dev`` over the demo's database and run history, with the emulator serving Clerk."""
    with demo_environment(users, orgs):
        command = [sys.executable, "-m", "dagster", "dev", "-m", "sync_pipeline.definitions", "-p", str(port)]
        print(f"Starting the Dagster UI on http://127.0.0.1:{port} (Ctrl-C to stop)")
        try:
            return subprocess.call(command, env=os.environ.copy())
        except KeyboardInterrupt:
            return 0
