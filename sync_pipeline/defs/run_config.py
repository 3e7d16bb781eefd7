"""What one sync run does: its options, entered once as the run's Dagster config.

The options are the config of the job's first step, ``sync_scope`` (in the Launchpad under
``ops.sync_scope.config``); that step hands them on with the scope it computes
(:class:`RunScope`), so every later step reads the options the run was launched with, and
a run cannot be half a dry run. The CLI, the schedule and the sensor build the same run
config with :func:`sync_run_config`: one schema wherever a run starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagster import Config
from pydantic import Field, ValidationError

from sync_pipeline.diff.guard import DEFAULT_MAX_DELETE_SHARE
from sync_pipeline.diff.plan import APP_TABLE_KINDS
from sync_pipeline.errors import ConfigurationError
from sync_pipeline.model import SyncScope

# The step whose config the options are: the root of the sync's graph.
OPTIONS_STEP = "sync_scope"

# What every step of a run tags its materializations with, so that each reads as that run's work:
# a full read of the instance, or a partial one (ids named by hand, or webhook events answered).
SCOPE_TAG = "sync_pipeline/scope"
DRY_RUN_TAG = "sync_pipeline/dry_run"


class SyncRunConfig(Config):
    """What this run does. Empty id lists mean the whole instance (the daily full sync); ids make a
    scoped backfill that reads, compares and writes only those users, organizations and their
    memberships."""

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
                f"{OPTIONS_STEP}.app_table_kinds: {unknown[0]!r} is not one of {', '.join(APP_TABLE_KINDS)}"
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
    def job_name(self) -> str:
        """The job these options are for: the partial sync answers named or replayed events, the full sync the rest."""
        return "partial_sync_job" if self.answers_webhooks else "full_sync_job"

    @property
    def audit_mode(self) -> str:
        if self.mode:
            return self.mode
        if self.replay_since or self.replay_until:
            return "replay"
        if self.webhook_event_ids:
            return "partial"
        return "full" if self.explicit_scope.is_full else "scoped"


@dataclass(frozen=True)
class RunScope:
    """``sync_scope``'s value: what the run covers, and the options it was launched with."""

    scope: SyncScope
    options: SyncRunConfig

    @property
    def work_tags(self) -> dict[str, str]:
        """The tags of every materialization this run's steps produce."""
        return {SCOPE_TAG: "full" if self.scope.is_full else "partial", DRY_RUN_TAG: str(self.options.dry_run).lower()}


def checked_options(values: Mapping[str, Any]) -> SyncRunConfig:
    """Options given outside the Launchpad (the CLI's flags), or one line naming the one to fix."""
    try:
        return SyncRunConfig(**values)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        raise ConfigurationError(f"{name}={first.get('input')!r}: {first['msg']}") from None


def sync_run_config(options: SyncRunConfig | Mapping[str, Any]) -> dict:
    """The run config that launches a sync with ``options``, as the Launchpad shows it (only the options set).

    A mapping is taken as the Launchpad's YAML would be: Dagster checks it against the schema when the run starts.
    """
    values = options.model_dump(exclude_unset=True) if isinstance(options, SyncRunConfig) else dict(options)
    return {"ops": {OPTIONS_STEP: {"config": values}}}
