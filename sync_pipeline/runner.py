"""Running the sync from the command line: the Dagster job in process, and the drift report.

``run_sync`` launches the same ``full_sync_job`` the schedule launches, recorded in the
Dagster instance when ``DAGSTER_HOME`` is set (so the UI shows it) and in an ephemeral
one otherwise. Dagster's own step logs stay quiet unless asked for: the user gets a
summary, or one line saying what went wrong.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from dagster import DagsterInstance, ExecuteInProcessResult
from sqlalchemy.engine import Engine

from sync_pipeline import settings
from sync_pipeline.app_tables.catalog import resolve_tables
from sync_pipeline.app_tables.config import AppTablesConfig, load_config
from sync_pipeline.diff.plan import APP_WRITE_KINDS, SyncPlan
from sync_pipeline.embedded import database_url_or_embedded
from sync_pipeline.errors import ConfigurationError
from sync_pipeline.mirror.database import check_connection, create_mirror_engine, upgrade_schema
from sync_pipeline.model import SyncScope
from sync_pipeline.defs.metadata import table_counts
from sync_pipeline.scope_check import ids_not_in_clerk
from sync_pipeline.plan_text import format_app_tables, format_app_tables_written, format_not_in_clerk, format_plan
from sync_pipeline.webhooks.orphaned_runs import process_tags

EXIT_OK, EXIT_RUN_FAILED, EXIT_GUARD_REFUSED, EXIT_BAD_CONFIGURATION = 0, 1, 2, 3

# A run that failed on one of these failed on its settings or input, not on the way
# (the CLI's exit code 3): a wrong or revoked Clerk key (Clerk's 401/403) among them.
BAD_CONFIGURATION_ERRORS = frozenset(
    {"ClerkAuthError", "ClerkConfigError", "ConfigurationError", "DatabaseUnavailableError"}
)


@dataclass
class SyncRequest:
    """One run's sync_options, as the Launchpad would take them."""

    dry_run: bool = False
    user_ids: list[str] = field(default_factory=list)
    organization_ids: list[str] = field(default_factory=list)
    allow_mass_delete: bool = False
    max_delete_share: float | None = None
    webhook_event_ids: list[str] = field(default_factory=list)
    replay_since: str = ""
    replay_until: str = ""
    mode: str = ""
    app_table_kinds: list[str] = field(default_factory=list)  # empty: every kind

    @property
    def job_name(self) -> str:
        answers_webhooks = self.webhook_event_ids or self.replay_since or self.replay_until
        return "partial_sync_job" if answers_webhooks else "full_sync_job"

    def sync_options(self) -> dict:
        # Unset fields are left to the resource's defaults (0.0 and False are real values).
        return {k: v for k, v in asdict(self).items() if v is not None and v != "" and v != []}


def _run_config(sync_options: dict, *, verbose: bool) -> dict:
    return {
        "resources": {"sync_options": {"config": sync_options}},
        "loggers": {"console": {"config": {"log_level": "INFO" if verbose else "CRITICAL"}}},
    }


@dataclass
class SyncOutcome:
    run_id: str
    exit_code: int
    dry_run: bool
    plan: SyncPlan | None = None
    rows_written: dict[str, dict[str, int]] = field(default_factory=dict)
    app_tables_written: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    problem: str = ""
    not_in_clerk: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        if self.exit_code == EXIT_GUARD_REFUSED:
            return f"Sync refused by the delete guard, nothing written (run {self.run_id}): {self.problem}"
        if self.exit_code != EXIT_OK:
            return f"Sync failed, nothing written (run {self.run_id}): {self.problem}"
        lines = [
            f"{'Dry run' if self.dry_run else 'Sync'} of {self.plan.scope.describe()} scope finished in "
            f"{self.seconds:.1f}s (Dagster run {self.run_id})."
        ]
        lines.append(format_plan(self.plan))
        missing = format_not_in_clerk(self.not_in_clerk)
        if missing:
            lines.append(missing)
        if self.dry_run:
            either = ", no application-table row either" if self.plan.app_tables else ""
            lines.append(f"Dry run: no mirror row written{either}.")
        else:
            total = sum(sum(kinds.values()) for kinds in self.rows_written.values())
            lines.append(f"Mirror rows written: {total}.")
            if self.plan.app_tables:
                lines.append(format_app_tables_written(self.app_tables_written))
        return "\n".join(lines)


def _prepare_environment() -> str:
    """Check the settings a sync needs and migrate the mirror; returns the database URL.

    A declared application table that does not exist, or a misspelled column, ends here
    in one line, before the job starts.
    """
    settings.clerk_secret_key()
    schema = settings.sync_schema()
    url = database_url_or_embedded()
    os.environ["DATABASE_URL"] = url  # the job's resources read it through EnvVar
    engine = create_mirror_engine(url)
    try:
        check_connection(engine)
        upgrade_schema(engine, schema)
        _check_app_tables(engine)
    finally:
        engine.dispose()
    return url


def _app_tables_config() -> AppTablesConfig | None:
    path = settings.app_tables_path()
    return load_config(path) if path else None


def _check_app_tables(engine: Engine) -> None:
    config = _app_tables_config()
    if config is not None:
        with engine.connect() as connection, connection.begin():
            resolve_tables(connection, config)


def _instance() -> DagsterInstance:
    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def _first_failure(result: ExecuteInProcessResult) -> tuple[str, str]:
    """The innermost cause of the first failed step: its class name, and its message as one line."""
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is None:
            continue
        message = error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name
        # format_exception_only gives "module.Class: text"; the text is what the user needs.
        prefix, _, text = message.partition(": ")
        return error.cls_name or "", text if text and prefix.endswith(error.cls_name or "") else message
    return "", "the run failed (run the same command with -v to see Dagster's logs)"


def run_sync(request: SyncRequest, *, verbose: bool = False) -> SyncOutcome:
    """Run the sync a request describes, in process, and say how it went."""
    _prepare_environment()
    return _execute(request.job_name, request.sync_options(), dry_run=request.dry_run, verbose=verbose)


def _execute(job_name: str, sync_options: dict, *, dry_run: bool, verbose: bool) -> SyncOutcome:
    from sync_pipeline.definitions import build_definitions, build_resources

    # Built here, not imported: the environment was only settled just now.
    job = build_definitions(build_resources()).resolve_job_def(job_name)
    with _instance() as instance:
        result = job.execute_in_process(
            run_config=_run_config(sync_options, verbose=verbose),
            instance=instance,
            raise_on_error=False,
            tags=process_tags(),  # so that a killed process's run is recognised and failed
        )
        stats = instance.get_run_stats(result.run_id)
        seconds = (stats.end_time or 0) - (stats.start_time or 0)
        refusals = [
            evaluation
            for evaluation in result.get_asset_check_evaluations()
            if evaluation.check_name == "delete_guard" and not evaluation.passed and not dry_run
        ]
        if refusals:
            return SyncOutcome(result.run_id, EXIT_GUARD_REFUSED, dry_run, problem=refusals[0].description or "")
        if not result.success:
            cause, problem = _first_failure(result)
            exit_code = EXIT_BAD_CONFIGURATION if cause in BAD_CONFIGURATION_ERRORS else EXIT_RUN_FAILED
            return SyncOutcome(result.run_id, exit_code, dry_run, problem=problem)
        plan = result.output_for_node("sync_plan")
        written: dict[str, dict[str, int]] = {}
        app_written: dict[str, dict[str, int]] = {}
        not_in_clerk: dict[str, list[str]] = {}
        for materialization in result.get_asset_materialization_events():
            key = materialization.asset_key.path
            metadata = materialization.materialization.metadata
            if key == ["clerk_snapshot"] and "not_in_clerk" in metadata:
                not_in_clerk = metadata["not_in_clerk"].value
            if key == ["app_tables"]:
                app_written = _app_tables_written(metadata, plan)
            if key[0] != "clerk_mirror":
                continue
            written[key[-1]] = table_counts(metadata["written"]).get(key[-1], {}) if "written" in metadata else {}
        return SyncOutcome(
            result.run_id,
            EXIT_OK,
            dry_run,
            plan=plan,
            rows_written=written,
            app_tables_written=app_written,
            seconds=seconds,
            not_in_clerk=not_in_clerk,
        )


def _app_tables_written(metadata: dict, plan: SyncPlan) -> dict[str, dict[str, int]]:
    """The app_tables materialization's ``written`` table (a row per declared table, a column per kind)."""
    written = table_counts(metadata["written"], row_label="table") if "written" in metadata else {}
    return {label: {kind: written.get(label, {}).get(kind, 0) for kind in APP_WRITE_KINDS} for label in plan.app_tables}


def process_pending_webhooks(*, verbose: bool = False) -> list[SyncOutcome]:
    """Run, once and in process, what the sensor would launch, until no event is pending.

    First fails the partial runs whose process is gone (a killed ``webhooks process``), as
    the sensor does. A failed run's batch is split, as the sensor splits it, until the
    events that fail alone are found: those stay pending (for the sensor's paced retries
    and the next full sync) and every other event is processed.
    """
    import math
    import time

    from sync_pipeline.defs.sensors import partial_sync_request
    from sync_pipeline.webhooks import inbox
    from sync_pipeline.webhooks.batches import BatchState, next_batch
    from sync_pipeline.webhooks.orphaned_runs import fail_orphaned_runs

    url = _prepare_environment()
    schema = settings.sync_schema()
    engine = create_mirror_engine(url)
    outcomes: list[SyncOutcome] = []
    state = BatchState()
    with _instance() as instance:
        fail_orphaned_runs(instance, "partial_sync_job")
    try:
        while True:
            events = inbox.pending_events(engine, schema, limit=settings.webhook_batch_size() + len(state.held))
            # An event that failed alone is not retried by this process (pause=inf): it ends when only those are left.
            # A person is waiting: a failed batch is split at once, not paced as the sensor paces it.
            decision = next_batch(
                events,
                state,
                batch_size=settings.webhook_batch_size(),
                now=time.time(),
                pause=lambda _: math.inf,
                split_pause=lambda _: 0.0,
            )
            if not decision.events:
                return outcomes
            state = decision.state
            request = partial_sync_request(decision.events, run_key="in-process")
            options = request.run_config["resources"]["sync_options"]["config"]
            outcomes.append(_execute("partial_sync_job", options, dry_run=False, verbose=verbose))
    finally:
        engine.dispose()


def _read_only_plan(*, user_ids: list[str], organization_ids: list[str]) -> tuple[SyncPlan, dict[str, list[str]]]:
    """The plan a sync of this scope would apply, application tables included, and the scope's ids Clerk does
    not have; writes nothing (not even the schema)."""
    from sync_pipeline.app_tables.rules import plan_app_tables
    from sync_pipeline.app_tables.snapshot import read_app_tables
    from sync_pipeline.clerk.client import ClerkClient
    from sync_pipeline.clerk.snapshot import read_clerk
    from sync_pipeline.diff.rules import plan_sync
    from sync_pipeline.mirror.snapshot import read_mirror_if_present
    from sync_pipeline.model import LiveKeys

    scope = SyncScope(user_ids=tuple(user_ids), organization_ids=tuple(organization_ids))
    client = ClerkClient(
        secret_key=settings.clerk_secret_key(),
        api_url=settings.clerk_api_url(),
        requests_per_10s=settings.clerk_requests_per_10s(),
        rate_share=settings.clerk_rate_share(),
        stall_timeout_seconds=settings.clerk_stall_timeout_seconds(),
    )
    url = database_url_or_embedded()
    engine = create_mirror_engine(url)
    try:
        check_connection(engine)
        mirror = read_mirror_if_present(engine, settings.sync_schema(), scope)
        app_tables = read_app_tables(engine, _app_tables_config(), scope)
    finally:
        engine.dispose()
    clerk, _report = read_clerk(
        client,
        scope,
        include_private_metadata=settings.include_private_metadata(),
        mirror_live_keys=lambda: LiveKeys.of(mirror.snapshot),
    )
    plan = plan_sync(clerk, mirror.snapshot, live_rows_before=mirror.live_rows)
    plan.app_tables = plan_app_tables(app_tables, clerk)
    return plan, ({} if scope.is_full else ids_not_in_clerk(scope, clerk))


def analyze(*, user_ids: list[str], organization_ids: list[str]) -> str:
    """The drift between Clerk and the mirror (and the declared application tables); writes nothing."""
    plan, not_in_clerk = _read_only_plan(user_ids=user_ids, organization_ids=organization_ids)
    matches = "the mirror matches Clerk" + (" and the application tables follow their policies" if plan.app_tables else "")
    drift = f"no drift: {matches}" if plan.is_noop else "drift found: `sync-pipeline sync` would apply it"
    missing = format_not_in_clerk(not_in_clerk)
    return f"Drift report ({plan.scope.describe()} scope): {drift}.\n{format_plan(plan)}" + (f"\n{missing}" if missing else "")


def analyze_app_tables(*, user_ids: list[str], organization_ids: list[str], samples: int = 5) -> str:
    """The application tables' drift, per table with examples; writes nothing."""
    if not settings.app_tables_path():
        raise _no_app_tables()
    plan, _not_in_clerk = _read_only_plan(user_ids=user_ids, organization_ids=organization_ids)
    state = "they follow their policies" if all(p.is_noop for p in plan.app_tables.values()) else (
        "drift found: `sync-pipeline app-tables sync --apply` would fix it"
    )
    return f"Application tables ({plan.scope.describe()} scope): {state}.\n{format_app_tables(plan, samples=samples)}"


def _no_app_tables() -> ConfigurationError:
    return ConfigurationError(
        "SYNC_APP_TABLES is not set: point it (or --config) at the YAML file declaring your tables, "
        "e.g. examples/app_tables.yaml"
    )


def run_app_tables_sync(request: SyncRequest, *, verbose: bool = False) -> SyncOutcome:
    """A sync whose application-table part is restricted to ``request.app_table_kinds`` (the mirror is always synced)."""
    if not settings.app_tables_path():
        raise _no_app_tables()
    return run_sync(request, verbose=verbose)


def app_tables_integrity(*, apply: bool) -> str:
    """The foreign keys and unique indexes the declarations imply: which are present, ready or blocked; with
    ``apply``, the ready ones created."""
    from sync_pipeline.app_tables import integrity
    from sync_pipeline.mirror.apply import ApplySettings

    config = _app_tables_config()
    if config is None:
        raise _no_app_tables()
    engine = create_mirror_engine(database_url_or_embedded())
    try:
        check_connection(engine)
        options = {"hard_delete": settings.hard_delete()}
        if apply:
            constraints = integrity.create_ready(engine, config, settings.sync_schema(), settings=ApplySettings(), **options)
        else:
            constraints = integrity.survey(engine, config, settings.sync_schema(), **options)
    finally:
        engine.dispose()
    lines = [constraint.describe() for constraint in constraints]
    ready = sum(c.status == integrity.READY for c in constraints)
    created = sum(c.status == integrity.CREATED for c in constraints)
    blocked = sum(c.status == integrity.BLOCKED for c in constraints)
    if apply:
        lines.append(f"Created {created} constraint(s).")
    else:
        lines.append(f"Dry run: nothing created; `--apply` would create the {ready} ready constraint(s).")
    if blocked:
        lines.append(f"{blocked} blocked: `sync-pipeline app-tables sync --apply` fixes the rows its policies cover.")
    return "\n".join(lines)
