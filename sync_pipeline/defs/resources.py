"""Resources: the mirror database. What a run does is its config (``sync_pipeline.defs.run_config``), not a resource."""

from __future__ import annotations

from functools import cached_property

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import Engine

from sync_pipeline import settings
from sync_pipeline.app_tables.config import AppTablesConfig, load_config
from sync_pipeline.mirror.apply import ApplySettings
from sync_pipeline.mirror.database import (
    check_connection,
    create_mirror_engine,
    upgrade_schema,
    validate_schema_name,
)


class MirrorDatabase(ConfigurableResource):
    """The Postgres database that holds the mirror (and the audit trail) in ``db_schema``.

    The application's tables the sync keeps consistent live in the same database (they
    are written in the mirror's transaction); ``app_tables_config`` declares them.
    """

    database_url: str = Field(description="SQLAlchemy URL of the mirror database (DATABASE_URL).")
    db_schema: str = Field(default="clerk", description="Schema of the mirror tables (SYNC_SCHEMA).")
    hard_delete: bool = Field(
        default=False, description="Delete rows gone from Clerk instead of setting deleted_at."
    )
    include_private_metadata: bool = Field(
        default=True, description="Mirror Clerk's private_metadata; false keeps it out of every column and raw."
    )
    lock_timeout_seconds: float = Field(
        default=300.0, description="How long an apply waits for another sync's write lock."
    )
    statement_timeout_seconds: float | None = Field(
        default=None, description="Abort any single apply statement running longer than this."
    )
    app_tables_config: str = Field(
        default="",
        description="YAML file declaring the application's tables the sync keeps consistent; "
        "empty: $SYNC_APP_TABLES when a run starts (unset: none).",
    )

    _engine: Engine | None = PrivateAttr(default=None)
    # Set once ensure_ready has succeeded: every step of a run (and every check) asks for it,
    # and a no-op Alembic upgrade is a connection, an advisory lock and a script-directory scan.
    _ready: bool = PrivateAttr(default=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            validate_schema_name(self.db_schema)
            self._engine = create_mirror_engine(self.database_url)
        return self._engine

    def app_tables(self) -> AppTablesConfig | None:
        """The declared application tables, checked for shape (the catalog checks come at read time).

        Read when a run starts, like the secrets, so loading the code location never fails on the file.
        """
        path = self.app_tables_config or settings.app_tables_path()
        return load_config(path) if path else None

    def ensure_ready(self) -> None:
        """Reachable, and the schema migrated to the newest revision: done once per resource instance.

        With the in-process executor one instance serves every step of a run; with the multiprocess
        executor each step process builds its own, so each still checks once. A failure leaves the
        flag unset, so the next call tries again and raises the same clear error.
        """
        if self._ready:
            return
        check_connection(self.engine)
        upgrade_schema(self.engine, self.db_schema)
        self._ready = True

    @cached_property
    def apply_settings(self) -> ApplySettings:
        return ApplySettings(
            hard_delete=self.hard_delete,
            lock_timeout_seconds=self.lock_timeout_seconds,
            statement_timeout_seconds=self.statement_timeout_seconds,
        )

    def teardown_after_execution(self, context) -> None:  # noqa: ANN001 - dagster's signature
        if self._engine is not None:
            self._engine.dispose()
