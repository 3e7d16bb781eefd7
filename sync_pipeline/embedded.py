"""Embedded defaults for a machine that has only Python: a local Postgres from a pip package.

When ``DATABASE_URL`` is unset, the CLI starts a private PostgreSQL server (the
``pgserver`` wheel ships the binaries) reached over a unix socket, so the demo, the
Dagster UI and the tests run with nothing installed but the project.

Its data, and the local Dagster instance, live in the state directory:
``$SYNC_PIPELINE_HOME`` if set, else the per-user state directory
(``~/.local/state/sync-pipeline`` on Linux), never the directory the user stands in.
``sync-pipeline stop`` stops a server left running; ``sync-pipeline clean --yes`` also
removes the directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from sync_pipeline.errors import ConfigurationError

STATE_DIR_VARIABLE = "SYNC_PIPELINE_HOME"
# pgserver's record of the processes using a server: the last one to leave stops it.
_HANDLES_FILE = ".handle_pids.json"


def state_dir() -> Path:
    """Where local state lives: $SYNC_PIPELINE_HOME, else the per-user state directory."""
    configured = os.environ.get(STATE_DIR_VARIABLE)
    if configured:
        return Path(configured).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_state_dir("sync-pipeline", appauthor=False))


def embedded_data_dir() -> Path:
    return state_dir() / "pgdata"


def ensure_state_dir() -> Path:
    """The state directory, created if need be; says where on stderr the one time it is created."""
    directory = state_dir()
    if not directory.exists():
        directory.mkdir(parents=True)
        print(
            f"sync-pipeline: local state (embedded PostgreSQL, Dagster runs) goes to {directory} "
            f"(set {STATE_DIR_VARIABLE} to move it; `sync-pipeline clean --yes` removes it)",
            file=sys.stderr,
        )
    return directory


def start_embedded_postgres(data_dir: Path | None = None, *, stop_at_exit: bool = False) -> str:
    """Start (or reuse) the embedded server and return a SQLAlchemy URL for it.

    pgserver keeps the server running for as long as some process still uses it, so a
    demo and a ``sync-pipeline ui`` in another terminal share one server. With
    ``stop_at_exit`` the server stops when this process exits and no other one still
    holds it (:func:`release_embedded_postgres` stops it sooner); without, it stays up
    until ``sync-pipeline stop``.
    """
    if data_dir is None:
        ensure_state_dir()
        data_dir = embedded_data_dir()
    data_dir = data_dir.resolve()
    # A unix socket path must fit in ~107 bytes; pgserver puts the socket in data_dir.
    if len(str(data_dir)) > 90:
        raise ConfigurationError(
            f"the embedded database directory {data_dir} is too long for a unix socket: "
            f"set {STATE_DIR_VARIABLE} to a shorter path, or set DATABASE_URL"
        )
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    pgserver = _pgserver()
    with pgserver.PostgresServer._lock:
        _forget_dead_handles(data_dir)
    server = pgserver.get_server(data_dir, cleanup_mode="stop" if stop_at_exit else None)
    _tune_for_bulk_writes(server.get_uri())
    # pgserver's URI is libpq-style with the socket directory as host.
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


def release_embedded_postgres(data_dir: Path | None = None) -> None:
    """This process is done with the server: stop it now unless another process still uses it.

    Only for a server started here with ``stop_at_exit``; a no-op otherwise.
    """
    pgserver = _pgserver()
    server = pgserver.PostgresServer._instances.get((data_dir or embedded_data_dir()).resolve())
    if server is not None and server.cleanup_mode is not None:
        server.cleanup()


def _pgserver():  # noqa: ANN202 - the module, imported late: it is heavy and absent on Windows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        try:
            import pgserver
        except ImportError:  # pragma: no cover - pgserver is a hard dependency off Windows
            raise ConfigurationError("DATABASE_URL is not set and the embedded Postgres (pgserver) is unavailable") from None
    return pgserver


def _forget_dead_handles(data_dir: Path) -> None:
    """Drop processes that died without saying so (a ``ui`` killed hard) from pgserver's record.

    pgserver stops a server only when the last process it recorded leaves; one killed with
    SIGKILL never leaves, and every later process would then leave the server running.
    """
    import psutil

    handles = data_dir / _HANDLES_FILE
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except ValueError:
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


@dataclass(frozen=True)
class StopResult:
    data_dir: Path
    was_running: bool
    pid: int | None = None


def stop_embedded_postgres(data_dir: Path | None = None) -> StopResult:
    """Stop the embedded server of ``data_dir`` (default: the state directory's) if it runs."""
    import psutil

    data_dir = (data_dir or embedded_data_dir()).resolve()
    pid = _postmaster_pid(data_dir)
    if pid is None or not psutil.pid_exists(pid):
        return StopResult(data_dir, was_running=False)
    pgserver = _pgserver()
    from pgserver._commands import pg_ctl

    # pgserver runs the server as its own system user when we are root; pg_ctl must too.
    user = "pgserver" if os.name != "nt" and os.geteuid() == 0 else None
    with pgserver.PostgresServer._lock:
        try:
            pg_ctl(["-m", "fast", "-w", "-t", "20", "stop"], pgdata=data_dir, user=user, timeout=30)
        except (subprocess.SubprocessError, OSError):
            pass  # stopped meanwhile, or pg_ctl could not: end the process itself
        if psutil.pid_exists(pid):
            process = psutil.Process(pid)
            process.terminate()
            try:
                process.wait(5)
            except psutil.TimeoutExpired:
                process.kill()
        handles = data_dir / _HANDLES_FILE
        if handles.exists():
            handles.write_text("[]")
    return StopResult(data_dir, was_running=True, pid=pid)


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        first_line = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        return int(first_line)
    except (OSError, IndexError, ValueError):
        return None


def remove_state_dir() -> tuple[Path, StopResult | None]:
    """Stop the embedded server, then delete the state directory (a no-op when there is none)."""
    directory = state_dir()
    if not directory.exists():
        return directory, None
    stopped = stop_embedded_postgres()
    shutil.rmtree(directory)
    return directory, stopped


# initdb's defaults suit a laptop's idle server, not a sync writing gigabytes in one
# transaction: with 1 GB of WAL between checkpoints, a million-user sync forces a checkpoint
# every few seconds, and every page it touches next is logged whole again. It applies on
# reload; the README recommends the same for a team's own server. (WAL compression was
# measured too: on two cores its CPU cost more than the smaller WAL saved.)
_BULK_WRITE_SETTINGS = {"max_wal_size": "8GB"}


def _tune_for_bulk_writes(uri: str) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as connection:
        current = dict(connection.execute(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name = ANY(%s)", [list(_BULK_WRITE_SETTINGS)]
        ).fetchall())
        if current.get("max_wal_size") == "8192MB":
            return
        for name, value in _BULK_WRITE_SETTINGS.items():
            connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        connection.execute("SELECT pg_reload_conf()")


def database_url_or_embedded() -> str:
    """``DATABASE_URL``, else the embedded server, stopped again when this command ends (unless a
    ``demo`` or ``ui`` running meanwhile still uses it)."""
    return os.environ.get("DATABASE_URL") or start_embedded_postgres(stop_at_exit=True)
