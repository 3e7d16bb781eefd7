"""Connecting to the mirror database and bringing its schema up to date (Alembic).

Every engine connects with a timeout and TCP keepalives (libpq's own options, unless
the URL sets them), recycles its connections, and discards a connection that turned
read-only (a failover, ``default_transaction_read_only``): such a session stays
read-only for its whole life, so a pooled one would fail every write after the
database is writable again. An engine made for short transactions (the webhook
receiver's) also gets a *held-connection deadline*: a connection checked out longer
than that has its socket shut down, so that a connection whose peer stopped answering
(a stalled proxy, a half-open TCP path that keepalives cannot see because a middlebox
acknowledges for the server) raises instead of blocking its thread, and its pool slot,
forever. The sync's own engine has no deadline and no statement timeout: its one big
transaction may rightly take long.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from pathlib import Path

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, InterfaceError, OperationalError, ProgrammingError

from sync_pipeline.errors import ConfigurationError, DatabaseUnavailableError
from sync_pipeline.mirror.masked_urls import masked_database_url, without_url_secrets

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# libpq's options (https://www.postgresql.org/docs/current/libpq-connect.html); a URL's own value wins.
# Keepalives find a dead peer of an idle pooled connection in about a minute; tcp_user_timeout
# ends a connection whose sent data stays unacknowledged that long.
CONNECTION_OPTIONS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
POOL_RECYCLE_SECONDS = 1800


def validate_schema_name(schema: str) -> str:
    """Schema names are interpolated into DDL, so only plain lower-case identifiers pass."""
    if not _SCHEMA_NAME.match(schema or ""):
        raise ConfigurationError(
            f"SYNC_SCHEMA={schema!r} is not a plain identifier: use lower-case letters, digits and _"
        )
    return schema


def safe_url(url: str) -> str:
    """The URL with every password in it masked, fit for logs and error messages."""
    return masked_database_url(url)


class HeldConnectionDeadlines:
    """Shuts down the socket of any connection checked out longer than ``seconds``.

    One daemon thread per engine looks at the armed connections a few times a second.
    Shutting the socket down (not closing the descriptor, which the driver still owns)
    makes the driver's blocked read return at once with "server closed the connection";
    SQLAlchemy then invalidates the connection and its pool slot is free again.
    """

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("the held-connection deadline must be positive")
        self.seconds = seconds
        self.cut = 0
        self._armed: dict[int, tuple[float, psycopg.Connection]] = {}
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def arm(self, dbapi_connection: psycopg.Connection) -> None:
        with self._lock:
            self._armed[id(dbapi_connection)] = (time.monotonic() + self.seconds, dbapi_connection)
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="held-connection-deadlines", daemon=True)
                self._watcher.start()

    def disarm(self, dbapi_connection: object) -> None:
        with self._lock:
            self._armed.pop(id(dbapi_connection), None)

    def _watch(self) -> None:
        interval = min(0.25, self.seconds / 4)
        while True:
            time.sleep(interval)
            now = time.monotonic()
            with self._lock:
                overdue = [conn for deadline, conn in self._armed.values() if deadline <= now]
                for conn in overdue:
                    self._armed.pop(id(conn), None)
            for conn in overdue:
                self._shut_down(conn)

    def _shut_down(self, dbapi_connection: psycopg.Connection) -> None:
        try:
            if dbapi_connection.closed:
                return
            descriptor = dbapi_connection.pgconn.socket
        except Exception:  # closed meanwhile: nothing to cut
            return
        try:
            with socket.socket(fileno=os.dup(descriptor)) as duplicate:
                duplicate.shutdown(socket.SHUT_RDWR)
        except OSError:
            return
        self.cut += 1
        logger.warning("a database connection held over %.0fs was cut (the server or a proxy stopped answering)", self.seconds)


def _is_read_only_error(error: BaseException | None) -> bool:
    return isinstance(error, psycopg.errors.ReadOnlySqlTransaction)


def _install_healing(engine: Engine, *, deadline_seconds: float | None, statement_timeout_seconds: float | None) -> None:
    """The events that keep a pool healthy: see the module's docstring."""

    @event.listens_for(engine, "handle_error")
    def _discard_read_only_sessions(context) -> None:  # noqa: ANN001 - SQLAlchemy's ExceptionContext
        # A read-only session never becomes writable: discard it (and the pool's other
        # connections of that time) so the next transaction gets a fresh session.
        if _is_read_only_error(context.original_exception):
            context.is_disconnect = True

    if statement_timeout_seconds is not None:

        @event.listens_for(engine, "connect")
        def _set_statement_timeout(dbapi_connection, connection_record) -> None:  # noqa: ANN001
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            dbapi_connection.execute(f"SET statement_timeout = {int(statement_timeout_seconds * 1000)}")
            dbapi_connection.autocommit = autocommit

    if deadline_seconds is None:
        return
    deadlines = HeldConnectionDeadlines(deadline_seconds)
    engine.held_connection_deadlines = deadlines  # type: ignore[attr-defined] - for tests and diagnostics

    @event.listens_for(engine, "checkout")
    def _arm_and_ping(dbapi_connection, connection_record, connection_proxy) -> None:  # noqa: ANN001
        # Our own pre-ping, under the deadline (SQLAlchemy's runs before any event could arm it).
        deadlines.arm(dbapi_connection)
        try:
            dbapi_connection.execute("SELECT 1")
            dbapi_connection.rollback()
        except psycopg.Error as error:
            deadlines.disarm(dbapi_connection)
            raise DisconnectionError(f"pre-ping failed: {type(error).__name__}") from None

    @event.listens_for(engine, "checkin")
    def _disarm_on_checkin(dbapi_connection, connection_record) -> None:  # noqa: ANN001
        deadlines.disarm(dbapi_connection)

    @event.listens_for(engine, "close")
    def _disarm_on_close(dbapi_connection, connection_record) -> None:  # noqa: ANN001
        deadlines.disarm(dbapi_connection)

    @event.listens_for(engine, "invalidate")
    def _disarm_on_invalidate(dbapi_connection, connection_record, exception) -> None:  # noqa: ANN001
        deadlines.disarm(dbapi_connection)


def create_mirror_engine(
    url: str,
    *,
    held_connection_deadline_seconds: float | None = None,
    statement_timeout_seconds: float | None = None,
    pool_timeout_seconds: float = 30.0,
) -> Engine:
    """An engine on psycopg 3, whatever driver the URL named (postgres:// and postgresql:// too).

    It connects with :data:`CONNECTION_OPTIONS` (the URL's own values win), recycles
    connections after :data:`POOL_RECYCLE_SECONDS`, pings each one it hands out, and
    discards a session found read-only. ``held_connection_deadline_seconds`` cuts any
    connection checked out longer than that (for short transactions only);
    ``statement_timeout_seconds`` sets the server's statement_timeout on each session.
    """
    if not url:
        raise ConfigurationError("DATABASE_URL is not set: give a SQLAlchemy URL such as postgresql://user@host/db")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError("DATABASE_URL is not a valid database URL (e.g. postgresql://user@host:5432/db)") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigurationError(f"DATABASE_URL must point at PostgreSQL, not {parsed.get_backend_name()}")
    parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args = {name: value for name, value in CONNECTION_OPTIONS.items() if name not in parsed.query}
    engine = sa.create_engine(
        parsed,
        connect_args=connect_args,
        # With a deadline, the checkout event pings under it instead.
        pool_pre_ping=held_connection_deadline_seconds is None,
        pool_recycle=POOL_RECYCLE_SECONDS,
        pool_timeout=pool_timeout_seconds,
        pool_size=2,
        max_overflow=2,
    )
    _install_healing(
        engine, deadline_seconds=held_connection_deadline_seconds, statement_timeout_seconds=statement_timeout_seconds
    )
    return engine


def check_connection(engine: Engine) -> None:
    """Fail early, in one line, when the database is unreachable or refuses us. No secret is printed."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except (OperationalError, InterfaceError, ProgrammingError) as error:  # unreachable, refused, or a bad option
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error).splitlines()[0]
        target = masked_database_url(engine.url)
        reason = without_url_secrets(reason, engine.url)
        raise DatabaseUnavailableError(f"cannot connect to the database {target} (DATABASE_URL): {reason}") from None


def upgrade_schema(engine: Engine, schema: str) -> None:
    """Create or upgrade the mirror tables in ``schema`` to the newest migration."""
    validate_schema_name(schema)
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        # Serialise concurrent upgrades (two syncs starting on a fresh database).
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"sync_pipeline:migrate:{schema}"})
        config.attributes["connection"] = connection
        config.attributes["schema"] = schema
        command.upgrade(config, "head")
