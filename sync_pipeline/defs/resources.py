"""Resources: the mirror database, and the options an engineer sets per run in the Launchpad."""

from __future__ import annotations

from functools import cached_property

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import Engine

from sync_pipeline import settings
from sync_pipeline.app_tables.config import AppTablesConfig, load_config
from sync_pipeline.diff.guard import DEFAULT_MAX_DELETE_SHARE
from sync_pipeline.diff.plan import APP_TABLE_KINDS
from sync_pipeline.errors import ConfigurationError
from sync_pipeline.mirror.apply import ApplySettings
from sync_pipeline.mirror.database import (
    check_connection,
    create_mirror_engine,
    upgrade_schema,
    validate_schema_name,
)
from sync_pipeline.model import SyncScope


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
        """Reachable, and the schema migrated to the newest revision (idempotent, cheap)."""
        check_connection(self.engine)
        upgrade_schema(self.engine, self.db_schema)

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


class SyncOptions(ConfigurableResource):
    """What this run does. Set in the Launchpad under ``resources.sync_options.config``.

    Empty id lists mean the whole instance (the daily full sync); ids make a scoped
    backfill that reads, compares and writes only those users, organizations and their
    memberships.
    """

    dry_run: bool = Field(default=False, description="Compute and show everything; write no mirror row.")
    user_ids: list[str] = Field(default_factory=list, description="Limit the sync to these Clerk user ids.")
    organization_ids: list[str] = Field(
        default_factory=list, description="Limit the sync to these Clerk organization ids."
    )
    allow_mass_delete: bool = Field(
        default=False, description="Let this run delete more than max_delete_share of a table."
    )
    max_delete_share: float = Field(
        default=DEFAULT_MAX_DELETE_SHARE,
        ge=0.0,
        le=1.0,
        description="Refuse a sync deleting more than this share of any table's live rows.",
    )
    webhook_event_ids: list[str] = Field(
        default_factory=list,
        description="Webhook events (svix ids) to answer: their users and organizations join the scope, "
        "and they are marked processed when the apply commits.",
    )
    replay_since: str = Field(
        default="", description="Replay: re-process webhook events received at or after this ISO time."
    )
    replay_until: str = Field(default="", description="Replay: ... and before this ISO time.")
    mode: str = Field(default="", description="Label in the audit trail; derived from the scope when empty.")
    app_table_kinds: list[str] = Field(
        default_factory=lambda: list(APP_TABLE_KINDS),
        description="Which drift in the application's tables this run fixes: missing (provision), orphaned "
        "(clean up), duplicate (dedupe). The mirror is synced whatever this says.",
    )

    def checked_app_table_kinds(self) -> tuple[str, ...]:
        unknown = [kind for kind in self.app_table_kinds if kind not in APP_TABLE_KINDS]
        if unknown:
            raise ConfigurationError(
                f"sync_options.app_table_kinds: {unknown[0]!r} is not one of {', '.join(APP_TABLE_KINDS)}"
            )
        return tuple(self.app_table_kinds)

    @property
    def explicit_scope(self) -> SyncScope:
        """The ids named in run config, before webhook events add theirs."""
        return SyncScope(
            user_ids=tuple(dict.fromkeys(self.user_ids)),
            organization_ids=tuple(dict.fromkeys(self.organization_ids)),
        )

    @property
    def answers_webhooks(self) -> bool:
        return bool(self.webhook_event_ids or self.replay_since or self.replay_until)

    @property
    def audit_mode(self) -> str:
        if self.mode:
            return self.mode
        if self.replay_since or self.replay_until:
            return "replay"
        if self.webhook_event_ids:
            return "partial"
        return "full" if self.explicit_scope.is_full else "scoped"
