"""The pipeline on embedded defaults: the Clerk emulator, the embedded Postgres, a local Dagster home.

``sync-pipeline demo`` syncs the emulator's generated instance into the mirror twice (the
second time nothing changed, so nothing is written) and ``sync-pipeline ui`` opens the
Dagster UI over the same database and run history. Both stop what they started when they
end: the emulator, and the embedded PostgreSQL unless another process still uses it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sync_pipeline.embedded import ensure_state_dir, release_embedded_postgres, start_embedded_postgres, embedded_data_dir

DEMO_SECRET_KEY = "sk_test_emulator"
DEMO_SEED = 42
# How long `ui` gives Dagster's processes to stop after SIGTERM before it kills them.
UI_STOP_GRACE_SECONDS = 10.0

# The local instance: Dagster's default storage (SQLite in this directory), the run queue
# letting one mirror-writing run through at a time and looked at every second, sensors
# evaluated in threads (as deploy/dagster.yaml does), no telemetry.
LOCAL_INSTANCE_CONFIG = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
    tag_concurrency_limits:
      - key: "sync_pipeline/writes_mirror"
        limit: 1
sensors:
  use_threads: true
  num_workers: 4
telemetry:
  enabled: false
"""
# What earlier versions wrote: replaced by the current one. A file that is neither was
# written by the user, and is left alone.
_EARLIER_LOCAL_INSTANCE_CONFIGS = (
    """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    tag_concurrency_limits:
      - key: "sync_pipeline/writes_mirror"
        limit: 1
telemetry:
  enabled: false
""",
)


def use_local_dagster_home() -> None:
    """Runs go to <state dir>/dagster_home unless the user chose a DAGSTER_HOME."""
    if not os.environ.get("DAGSTER_HOME"):
        home = ensure_state_dir() / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        instance_config = home / "dagster.yaml"
        current = instance_config.read_text() if instance_config.exists() else ""
        if "run_coordinator" not in current or current in _EARLIER_LOCAL_INSTANCE_CONFIGS:
            instance_config.write_text(LOCAL_INSTANCE_CONFIG)
        os.environ["DAGSTER_HOME"] = str(home)


@contextmanager
def demo_environment(users: int, orgs: int) -> Iterator[str]:
    """Emulator up, database chosen, environment set for the job; yields the database URL.

    The embedded PostgreSQL, when this started it, stops when the block ends (unless
    another process, say a ``ui`` in another terminal, still uses it).
    """
    from sync_pipeline.emulator import EmulatorServer

    use_local_dagster_home()
    embedded = not os.environ.get("DATABASE_URL")
    if embedded:
        os.environ["DATABASE_URL"] = start_embedded_postgres(stop_at_exit=True)
        print(f"Database: embedded PostgreSQL in {embedded_data_dir()} (set DATABASE_URL to use your own)")
    else:
        print("Database: DATABASE_URL")
    try:
        with EmulatorServer(users=users, orgs=orgs, seed=DEMO_SEED, secret_key=DEMO_SECRET_KEY) as emulator:
            os.environ["CLERK_API_URL"] = emulator.base_url
            os.environ["CLERK_SECRET_KEY"] = DEMO_SECRET_KEY
            print(f"Clerk: the emulator at {emulator.base_url} ({users} users, {orgs} organizations, seed {DEMO_SEED})")
            yield os.environ["DATABASE_URL"]
    finally:
        if embedded:
            release_embedded_postgres()
            del os.environ["DATABASE_URL"]


def run_demo(*, users: int, orgs: int, verbose: bool = False) -> int:
    from sync_pipeline.defs.run_config import SyncRunConfig
    from sync_pipeline.runner import EXIT_OK, run_sync
    from sync_pipeline.terminal_progress import showing_progress

    with demo_environment(users, orgs), showing_progress():
        first = run_sync(SyncRunConfig(), verbose=verbose)
        print("\n" + first.summary())
        if first.exit_code != EXIT_OK:
            return first.exit_code
        second = run_sync(SyncRunConfig(), verbose=verbose)
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


# The code location under the name the deployment gives it (deploy/workspace.grpc.yaml), so
# that links into the UI (/locations/sync_pipeline/…) are the same locally and in production.
WORKSPACE = """\
load_from:
  - python_module:
      module_name: sync_pipeline.definitions
      location_name: sync_pipeline
"""


def dagster_dev_command(port: int, workspace: Path, host: str = "127.0.0.1") -> list[str]:
    """Dagster's local UI (webserver, daemon, code server) over this code location, via the dg CLI.

    ``workspace`` is written here (:data:`WORKSPACE`). Warnings and errors only on the
    console: at INFO the daemon prints a line for every sensor tick (one every few
    seconds); each tick, skipped or not, is in the UI.
    """
    workspace.write_text(WORKSPACE)
    return [
        sys.executable, "-c", "from dagster_dg_cli.cli import main; main()", "dev",
        "-w", str(workspace), "-p", str(port), "-h", host, "--log-level", "warning",
    ]


def run_ui(*, port: int, users: int, orgs: int) -> int:
    """``dg dev`` over the demo's database and run history, with the emulator serving Clerk.

    Dagster runs in a process group of its own: SIGTERM (a supervisor, ``docker stop``) or
    Ctrl-C here reach every process it started, and whatever has not stopped after
    ``UI_STOP_GRACE_SECONDS`` is killed. Then the emulator and the embedded PostgreSQL stop.
    """
    with demo_environment(users, orgs):
        url = f"http://127.0.0.1:{port}"
        print(f"Starting the Dagster UI on {url} (Ctrl-C to stop)", flush=True)
        state = ensure_state_dir()
        command = dagster_dev_command(port, state / "workspace.yaml")
        env = os.environ.copy()
        if env.get("SYNC_APP_TABLES"):  # Dagster runs in the state directory: a relative path must survive that
            env["SYNC_APP_TABLES"] = str(Path(env["SYNC_APP_TABLES"]).resolve())
        # Run from the state directory: from a repository's root, Dagster would warn about
        # the dagster.yaml it finds there but does not use (DAGSTER_HOME is the state's).
        process = subprocess.Popen(command, env=env, cwd=state, start_new_session=True)
        with _forwarding_stop_signals(process) as stop_requested:
            _announce_when_ready(process, url, stop_requested)
            while process.poll() is None and not stop_requested:
                time.sleep(0.2)
        return _stop_process_group(process) if stop_requested else process.returncode or 0


@contextmanager
def _forwarding_stop_signals(process: subprocess.Popen) -> Iterator[list[int]]:
    """While the block runs, SIGTERM and SIGINT here become a SIGINT to ``process``, and are noted.

    SIGINT, to the leader alone: that is what makes ``dagster dev`` shut its webserver and
    daemon down in order (a signal to the whole group at once ends the code server while
    the webserver still calls it, and it prints a traceback).
    """
    received: list[int] = []

    def forward(signum: int, _frame) -> None:  # noqa: ANN001
        received.append(signum)
        try:
            process.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _announce_when_ready(process: subprocess.Popen, url: str, stop_requested: list[int]) -> None:
    import httpx

    while process.poll() is None and not stop_requested:
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                print(f"Dagster UI ready: {url}", flush=True)
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)


def _stop_process_group(process: subprocess.Popen) -> int:
    """Wait for Dagster's processes to stop after the SIGINT sent them; kill what remains."""
    import psutil

    try:
        members = [process, *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        members = []
    deadline = time.monotonic() + UI_STOP_GRACE_SECONDS
    try:
        process.wait(timeout=UI_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    # Children that left the group (or outlived dagster dev) are ended one by one.
    remaining = [p for p in members[1:] if p.is_running()]
    _gone, alive = psutil.wait_procs(remaining, timeout=max(0.0, deadline - time.monotonic()))
    for survivor in alive:
        try:
            survivor.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    print("Dagster UI stopped.", flush=True)
    return 0
