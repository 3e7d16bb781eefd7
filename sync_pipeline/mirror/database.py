"""Connecting to the mirror database and bringing its schema up to date (Alembic)."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from sync_pipeline.errors import ConfigurationError, DatabaseUnavailableError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def validate_schema_name(schema: str) -> str:
    """Schema names are interpolated into DDL, so only plain lower-case identifiers pass."""
    if not _SCHEMA_NAME.match(schema or ""):
        raise ConfigurationError(
            f"SYNC_SCHEMA={schema!r} is not a plain identifier: use lower-case letters, digits and _"
        )
    return schema


def safe_url(url: str) -> str:
    """The URL with its password masked, fit for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def create_mirror_engine(url: str) -> Engine:
    """An engine on psycopg 3, whatever driver the URL named (postgres:// and postgresql:// too)."""
    if not url:
        raise ConfigurationError("DATABASE_URL is not set: give a SQLAlchemy URL such as postgresql://user@host/db")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError("DATABASE_URL is not a valid database URL (e.g. postgresql://user@host:5432/db)") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigurationError(f"DATABASE_URL must point at PostgreSQL, not {parsed.get_backend_name()}")
    parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=2)


def check_connection(engine: Engine) -> None:
    """Fail early, in one line, when the database is unreachable or refuses us."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error).splitlines()[0]
        target = engine.url.render_as_string(hide_password=True)
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
