"""Running the sync from the command line: the Dagster job in process, and what it found.

Every command that syncs or reports drift runs the same job the schedule and the sensor
launch (``full_sync_job``, or ``partial_sync_job`` for webhook events), with its options as
the run's config (:class:`~sync_pipeline.defs.run_config.SyncRunConfig`, the schema the
Launchpad shows): ``analyze`` is that job's dry run. Runs are recorded in the Dagster
instance when ``DAGSTER_HOME`` is set (so the UI shows them) and in an ephemeral one
otherwise. Dagster's own step logs stay quiet unless asked for: the user gets a summary,
or one line saying what went wrong. The text is :mod:`sync_pipeline.plan_text`'s.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

from dagster import DagsterInstance, ExecuteInProcessResult
from sqlalchemy.engine import Engine

from sync_pipeline import settings
from sync_pipeline.app_tables.catalog import resolve_tables
from sync_pipeline.app_tables.config import AppTablesConfig, load_config
from sync_pipeline.defs.metadata import table_counts
from sync_pipeline.defs.run_config import SyncRunConfig, sync_run_config
from sync_pipeline.diff.plan import APP_WRITE_KINDS, SyncPlan
from sync_pipeline.embedded import database_url_or_embedded
from sync_pipeline.errors import ConfigurationError
from sync_pipeline.mirror.database import check_connection, create_mirror_engine, upgrade_schema
from sync_pipeline.plan_text import (
    format_app_tables_report,
    format_drift_report,
    format_failure,
    format_integrity,
    format_refusal,
    format_sync_summary,
)
from sync_pipeline.webhooks.orphaned_runs import process_tags

EXIT_OK, EXIT_RUN_FAILED, EXIT_GUARD_REFUSED, EXIT_BAD_CONFIGURATION = 0, 1, 2, 3

# A run that failed on one of these failed on its settings or input, not on the way
# (the CLI's exit code 3): a wrong or revoked Clerk key (Clerk's 401/403) among them.
BAD_CONFIGURATION_ERRORS = frozenset(
    {"ClerkAuthError", "ClerkConfigError", "ConfigurationError", "DatabaseUnavailableError"}
)


@dataclass
class SyncOutcome:
    """How one run of the job went, and what the command prints for it."""

    run_id: str
    exit_code: int
    dry_run: bool
    plan: SyncPlan | None = None
    rows_written: dict[str, dict[str, int]] = field(default_factory=dict)
    app_tables_written: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    problem: str = ""
    not_in_clerk: dict[str, list[str]] = field(default_factory=dict)
    # What the command prints when the run succeeded: a sync's summary, or analyze's drift report.
    report: str = ""

    def summary(self) -> str:
        if self.exit_code == EXIT_GUARD_REFUSED:
            return format_refusal(self.run_id, self.problem)
        if self.exit_code != EXIT_OK:
            return format_failure(self.run_id, self.problem)
        return self.report


@dataclass(frozen=True)
class Location:
    """Where a command's runs read and write: settled once, before any run, and handed to the job's resources
    (never through the environment)."""

    database_url: str
    app_tables_config: str = ""  # a YAML path (``--config``); empty: $SYNC_APP_TABLES, read by the resource
    # DATABASE_URL may hold a password: the job's resource then reads it through EnvVar, so that Dagster
    # records the variable's name, never its value. The embedded server's URL holds none: it is handed over.
    from_environment: bool = True

    @property
    def resource_database_url(self) -> str | None:
        """What the job's ``mirror_db`` is given: None for DATABASE_URL (its EnvVar), else the URL itself."""
        return None if self.from_environment else self.database_url


def _declared_app_tables(app_tables_config: str | None) -> AppTablesConfig | None:
    """The tables ``--config`` (else $SYNC_APP_TABLES) declares; None when neither names a file."""
    path = app_tables_config or settings.app_tables_path()
    return load_config(path) if path else None


def _prepare(app_tables_config: str | None = None) -> Location:
    """Check the settings a sync needs and migrate the mirror.

    A declared application table that does not exist, or a misspelled column, ends here
    in one line, before the job starts.
    """
    settings.clerk_secret_key()
    from_environment = bool(os.environ.get("DATABASE_URL"))
    location = Location(database_url_or_embedded(), app_tables_config or "", from_environment=from_environment)
    engine = create_mirror_engine(location.database_url)
    try:
        check_connection(engine)
        upgrade_schema(engine, settings.sync_schema())
        _check_app_tables(engine, _declared_app_tables(app_tables_config))
    finally:
        engine.dispose()
    return location


def _check_app_tables(engine: Engine, config: AppTablesConfig | None) -> None:
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


def run_sync(options: SyncRunConfig, *, app_tables_config: str | None = None, verbose: bool = False) -> SyncOutcome:
    """Run the job these options are for, in process, and say how it went."""
    return _execute(options, _prepare(app_tables_config), verbose=verbose)


def _execute(options: SyncRunConfig, location: Location, *, verbose: bool) -> SyncOutcome:
    from sync_pipeline.definitions import build_definitions, build_resources

    resources = build_resources(database_url=location.resource_database_url, app_tables_config=location.app_tables_config)
    job = build_definitions(resources).resolve_job_def(options.job_name)
    run_config = {
        **sync_run_config(options),
        "loggers": {"console": {"config": {"log_level": "INFO" if verbose else "CRITICAL"}}},
    }
    dry_run = options.dry_run
    with _instance() as instance:
        result = job.execute_in_process(
            run_config=run_config,
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
        report = format_sync_summary(
            plan,
            dry_run=dry_run,
            run_id=result.run_id,
            seconds=seconds,
            rows_written=written,
            app_tables_written=app_written,
            not_in_clerk=not_in_clerk,
        )
        return SyncOutcome(
            result.run_id,
            EXIT_OK,
            dry_run,
            plan=plan,
            rows_written=written,
            app_tables_written=app_written,
            seconds=seconds,
            not_in_clerk=not_in_clerk,
            report=report,
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
    from sync_pipeline.defs.sensors import partial_sync_options
    from sync_pipeline.webhooks import inbox
    from sync_pipeline.webhooks.batches import BatchState, next_batch
    from sync_pipeline.webhooks.orphaned_runs import fail_orphaned_runs

    location = _prepare()
    schema = settings.sync_schema()
    engine = create_mirror_engine(location.database_url)
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
            # The options the sensor would launch the batch with, run here in process.
            outcomes.append(_execute(partial_sync_options(decision.events), location, verbose=verbose))
    finally:
        engine.dispose()


def analyze(
    *, user_ids: list[str], organization_ids: list[str], app_tables_config: str | None = None, verbose: bool = False
) -> SyncOutcome:
    """The drift between Clerk and the mirror (and the declared application tables): the job's dry run, which
    writes no mirror or application-table row; its report is the outcome's summary."""
    options = SyncRunConfig(dry_run=True, user_ids=user_ids, organization_ids=organization_ids, mode="analyze")
    outcome = run_sync(options, app_tables_config=app_tables_config, verbose=verbose)
    if outcome.exit_code == EXIT_OK:
        outcome.report = format_drift_report(outcome.plan, outcome.not_in_clerk)
    return outcome


def analyze_app_tables(
    *, user_ids: list[str], organization_ids: list[str], app_tables_config: str | None = None, samples: int = 5,
    verbose: bool = False,
) -> SyncOutcome:
    """The application tables' drift, per table with examples: the job's dry run, like :func:`analyze`."""
    if not (app_tables_config or settings.app_tables_path()):
        raise _no_app_tables()
    options = SyncRunConfig(dry_run=True, user_ids=user_ids, organization_ids=organization_ids, mode="app-tables analyze")
    outcome = run_sync(options, app_tables_config=app_tables_config, verbose=verbose)
    if outcome.exit_code == EXIT_OK:
        outcome.report = format_app_tables_report(outcome.plan, samples=samples)
    return outcome


def _no_app_tables() -> ConfigurationError:
    return ConfigurationError(
        "SYNC_APP_TABLES is not set: point it (or --config) at the YAML file declaring your tables, "
        "e.g. examples/app_tables.yaml"
    )


def run_app_tables_sync(
    options: SyncRunConfig, *, app_tables_config: str | None = None, verbose: bool = False
) -> SyncOutcome:
    """A sync whose application-table part is restricted to ``options.app_table_kinds`` (the mirror is always synced)."""
    if not (app_tables_config or settings.app_tables_path()):
        raise _no_app_tables()
    return run_sync(options, app_tables_config=app_tables_config, verbose=verbose)


def app_tables_integrity(*, apply: bool, app_tables_config: str | None = None) -> str:
    """The foreign keys and unique indexes the declarations imply: which are present, ready or blocked; with
    ``apply``, the ready ones created."""
    from sync_pipeline.app_tables import integrity
    from sync_pipeline.mirror.apply import ApplySettings

    config = _declared_app_tables(app_tables_config)
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
    return format_integrity(constraints, applied=apply)
