"""Embedded defaults for a machine that has only Python: a local Postgres from a pip package.

When ``DATABASE_URL`` is unset, the CLI starts a private PostgreSQL server (the
``pgserver`` wheel ships the binaries) with its data in ``.sync-pipeline/`` under the
working directory, reached over a unix socket, so the demo, the Dagster UI and the tests
run with nothing installed but the project.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from sync_pipeline.errors import ConfigurationError

DEFAULT_STATE_DIR = Path(".sync-pipeline")


def state_dir() -> Path:
    """Where embedded state lives: $SYNC_PIPELINE_HOME, else ./.sync-pipeline."""
    return Path(os.environ.get("SYNC_PIPELINE_HOME", DEFAULT_STATE_DIR)).resolve()


def start_embedded_postgres(data_dir: Path | None = None, *, stop_at_exit: bool = False) -> str:
    """Start (or reuse) the embedded server and return a SQLAlchemy URL for it.

    pgserver keeps the server running for as long as some process still uses it, so
    the demo, a later ``sync-pipeline ui`` and the tests share one server per directory.
    """
    data_dir = (data_dir or state_dir() / "pgdata").resolve()
    # A unix socket path must fit in ~107 bytes; pgserver puts the socket in data_dir.
    if len(str(data_dir)) > 90:
        raise ConfigurationError(
            f"the embedded database directory {data_dir} is too long for a unix socket: "
            "set SYNC_PIPELINE_HOME to a shorter path, or set DATABASE_URL"
        )
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        try:
            import pgserver
        except ImportError:  # pragma: no cover - pgserver is a hard dependency off Windows
            raise ConfigurationError("DATABASE_URL is not set and the embedded Postgres (pgserver) is unavailable") from None
        server = pgserver.get_server(data_dir, cleanup_mode="stop" if stop_at_exit else None)
    _tune_for_bulk_writes(server.get_uri())
    # pgserver's URI is libpq-style with the socket directory as host.
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


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
    return os.environ.get("DATABASE_URL") or start_embedded_postgres()
