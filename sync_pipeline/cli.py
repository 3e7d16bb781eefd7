"""``sync-pipeline``: run the sync, see the drift, try it all on embedded defaults.

Every failure a user can fix ends in one line on stderr and a non-zero exit code:
1 the run failed, 2 the delete guard refused, 3 the configuration or input is wrong
(a Clerk key Clerk rejects included).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from sync_pipeline.errors import ConfigurationError, DatabaseUnavailableError, SyncPipelineError

EXIT_RUN_FAILED = 1
EXIT_GUARD_REFUSED = 2
EXIT_BAD_CONFIGURATION = 3

DEFAULT_DEMO_USERS = 5000
DEFAULT_DEMO_ORGS = 500
DEMO_SECRET_KEY = "sk_test_emulator"
# sync_pipeline.emulator.server.DEFAULT_PORT, repeated here: importing the emulator for it cost
# every command 0.6-0.8 s (Starlette, uvicorn, svix) before it started (test_cli checks they agree).
EMULATOR_DEFAULT_PORT = 8765


def _scope_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user-id", dest="user_ids", action="append", default=[], metavar="ID", help="only this Clerk user (repeatable)")
    parser.add_argument("--org-id", dest="organization_ids", action="append", default=[], metavar="ID", help="only this Clerk organization (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sync-pipeline", description="Keep a Postgres mirror of Clerk exactly in step.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Dagster's step logs")
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser("sync", help="run the sync job in process and print what it changed")
    sync.add_argument("--dry-run", action="store_true", help="compute and show everything, write no mirror row")
    sync.add_argument("--allow-mass-delete", action="store_true", help="let this run pass the delete guard")
    sync.add_argument("--max-delete-share", type=float, default=None, metavar="F", help="guard threshold (default 0.10)")
    _scope_arguments(sync)

    analyze = commands.add_parser("analyze", help="print the drift between Clerk and the mirror; change nothing")
    _scope_arguments(analyze)

    status = commands.add_parser("status", help="is the mirror right? last syncs, outcomes, pending webhooks, lag")
    status.add_argument("--check", action="store_true", help="exit 1 unless the verdict is ok (for monitoring)")

    demo = commands.add_parser("demo", help="sync the emulator's generated data into the embedded (or DATABASE_URL) Postgres")
    demo.add_argument("--users", type=int, default=DEFAULT_DEMO_USERS)
    demo.add_argument("--orgs", type=int, default=DEFAULT_DEMO_ORGS)

    commands.add_parser("stop", help="stop the embedded PostgreSQL if one was left running (e.g. by a `ui` killed hard)")
    clean = commands.add_parser("clean", help="stop the embedded PostgreSQL and delete the local state directory")
    clean.add_argument("--yes", action="store_true", help="really delete it (without: say what would go)")

    ui = commands.add_parser("ui", help="open the Dagster UI over the demo's data (emulator + embedded Postgres)")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--users", type=int, default=DEFAULT_DEMO_USERS)
    ui.add_argument("--orgs", type=int, default=DEFAULT_DEMO_ORGS)

    webhooks = commands.add_parser("webhooks", help="the webhook inbox: receive, process, replay")
    webhook_commands = webhooks.add_subparsers(dest="webhook_command", required=True)
    serve = webhook_commands.add_parser("serve", help="receive Clerk's signed webhooks into the inbox table")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    webhook_commands.add_parser("process", help="run what the sensor would launch for every pending event, in process")
    replay = webhook_commands.add_parser("replay", help="re-process the events of a time window or of given ids")
    replay.add_argument("--since", default="", help="received at or after (ISO 8601, e.g. 2026-11-21T08:00:00Z)")
    replay.add_argument("--until", default="", help="received before (ISO 8601; default now)")
    replay.add_argument("--event-id", dest="event_ids", action="append", default=[], metavar="SVIX_ID", help="repeatable")
    replay.add_argument("--dry-run", action="store_true")

    _app_tables_parser(commands)

    emulator = commands.add_parser(
        "emulator",
        help="serve a Clerk Backend API emulator over generated data",
        description="Serve a Clerk Backend API emulator over generated data, as Clerk's reference describes it "
        "(deep offsets time out, the rate limit is shared with a simulated application). Point the CLI at it "
        "with CLERK_API_URL=http://HOST:PORT/v1 and CLERK_SECRET_KEY=<--secret-key>.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulator.add_argument("--port", type=int, default=EMULATOR_DEFAULT_PORT, help="port to listen on")
    emulator.add_argument("--users", type=int, default=DEFAULT_DEMO_USERS, help="generated users")
    emulator.add_argument("--orgs", type=int, default=DEFAULT_DEMO_ORGS, help="generated organizations")
    emulator.add_argument("--seed", type=int, default=42, help="the same seed serves the same data")
    emulator.add_argument("--secret-key", default=DEMO_SECRET_KEY, help="the key it answers (sk_test_: 100 per 10 s, sk_live_: 1000)")
    emulator.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    emulator.add_argument("--requests-per-10s", type=int, default=None, help="rate limit per 10 s; 0 for none; unset: Clerk's for the key's kind")
    emulator.add_argument("--users-in-one-millisecond", type=int, default=0, help="generated users sharing one created_at, as a bulk import makes")
    emulator.add_argument("--users-offset-timeout", type=int, default=10_000, help="GET /users answers 504 past this offset; 0 for never")
    emulator.add_argument("--application-share", type=float, default=0.2, help="share of the rate limit a simulated application uses")
    emulator.add_argument(
        "--gone-parent-answer", choices=["404", "403", "422", "empty"], default="404",
        help="what a deleted user's or organization's membership list answers (Clerk does not document it)",
    )
    emulator.add_argument("--webhook-url", default=None, help="deliver the emulator's changes as signed webhooks here")
    emulator.add_argument("--webhook-secret", default=None, help="the whsec_ secret to sign them with")
    return parser


# The seed-era scripts, as runs of the sync: which drift in the application's tables each fixes.
APP_TABLE_RUNS = {
    "provision": ("create the rows every live user or membership must have", ["missing"]),
    "cleanup": ("delete or anonymize rows whose user, organization or membership Clerk no longer has", ["orphaned"]),
    "dedupe": ("remove duplicate rows, keeping the one the table's unique_per rule names", ["duplicate"]),
    "sync": ("all of the above, with the mirror: the daily sync", []),
}


def _app_tables_parser(commands) -> None:  # noqa: ANN001 - argparse's private subparsers type
    app = commands.add_parser(
        "app-tables",
        help="your application's tables (SYNC_APP_TABLES): analyze, provision, cleanup, dedupe, sync, integrity",
        description="Each command but analyze is a dry run unless --apply is given. provision, cleanup, dedupe and "
        "sync run the sync job: the mirror is brought in step with Clerk too, since the tables are judged against it.",
    )
    app_commands = app.add_subparsers(dest="app_command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        parser = app_commands.add_parser(name, help=help)
        parser.add_argument("--config", default=None, metavar="YAML", help="the tables' declarations (default: $SYNC_APP_TABLES)")
        return parser

    _scope_arguments(command("analyze", "print each table's missing, orphaned and duplicate rows; change nothing"))
    for name, (help, _kinds) in APP_TABLE_RUNS.items():
        run = command(name, help + " (dry run unless --apply)")
        run.add_argument("--apply", action="store_true", help="write; without it, only show the plan")
        run.add_argument("--allow-mass-delete", action="store_true", help="let this run pass the delete guard")
        run.add_argument("--max-delete-share", type=float, default=None, metavar="F", help="guard threshold (default 0.10)")
        _scope_arguments(run)
    integrity = command(
        "integrity", "foreign keys to the mirror and the unique indexes the policies imply (dry run unless --apply)"
    )
    integrity.add_argument("--apply", action="store_true", help="create the constraints the data allows")
    demo = app_commands.add_parser(
        "demo", help="the README's worked example: demo tables (examples/) kept consistent with the emulator's data"
    )
    demo.add_argument("--users", type=int, default=DEFAULT_DEMO_USERS)
    demo.add_argument("--orgs", type=int, default=DEFAULT_DEMO_ORGS)


def _command_app_tables(args: argparse.Namespace) -> int:
    from sync_pipeline import runner

    if args.app_command == "demo":
        from sync_pipeline.app_tables.demo import run_app_tables_demo

        return run_app_tables_demo(users=args.users, orgs=args.orgs, verbose=args.verbose)
    _check_scope(args)
    if args.app_command == "analyze":
        with _showing_progress():
            outcome = runner.analyze_app_tables(
                user_ids=args.user_ids, organization_ids=args.organization_ids, app_tables_config=args.config, verbose=args.verbose
            )
        return _report(outcome)
    if args.app_command == "integrity":
        print(runner.app_tables_integrity(apply=args.apply, app_tables_config=args.config))
        return 0
    _help, kinds = APP_TABLE_RUNS[args.app_command]
    options = _run_options(
        dry_run=not args.apply,
        user_ids=args.user_ids,
        organization_ids=args.organization_ids,
        allow_mass_delete=args.allow_mass_delete,
        max_delete_share=args.max_delete_share,
        app_table_kinds=kinds or None,  # none named: every kind
        mode=f"app-tables {args.app_command}",
    )
    with _showing_progress():
        outcome = runner.run_app_tables_sync(options, app_tables_config=args.config, verbose=args.verbose)
    return _report(outcome)


def _run_options(**options):  # noqa: ANN202 - a SyncRunConfig, imported late (dagster)
    """The run's config from the command's flags; a flag left unset (None) leaves the option at its default."""
    from sync_pipeline.defs.run_config import checked_options

    return checked_options({name: value for name, value in options.items() if value is not None})


def _check_scope(args: argparse.Namespace) -> None:
    from sync_pipeline.scope_check import check_scope_ids

    check_scope_ids(getattr(args, "user_ids", []), getattr(args, "organization_ids", []))


def _showing_progress():  # noqa: ANN202 - a context manager, imported late (rich)
    from sync_pipeline.terminal_progress import showing_progress

    return showing_progress()


def _command_sync(args: argparse.Namespace) -> int:
    from sync_pipeline.runner import run_sync

    _check_scope(args)
    options = _run_options(
        dry_run=args.dry_run,
        user_ids=args.user_ids,
        organization_ids=args.organization_ids,
        allow_mass_delete=args.allow_mass_delete,
        max_delete_share=args.max_delete_share,
    )
    with _showing_progress():
        outcome = run_sync(options, verbose=args.verbose)
    return _report(outcome)


def _report(outcome) -> int:  # noqa: ANN001 - runner.SyncOutcome, imported lazily
    """A summary on stdout when the run succeeded, one line on stderr when it did not."""
    if outcome.exit_code == 0:
        print(outcome.summary())
    else:
        print(f"sync-pipeline: {outcome.summary()}", file=sys.stderr)
    return outcome.exit_code


def _command_analyze(args: argparse.Namespace) -> int:
    from sync_pipeline.runner import analyze

    _check_scope(args)
    with _showing_progress():
        outcome = analyze(user_ids=args.user_ids, organization_ids=args.organization_ids, verbose=args.verbose)
    return _report(outcome)


def _command_status(args: argparse.Namespace) -> int:
    from sync_pipeline import settings
    from sync_pipeline.embedded import database_url_or_embedded
    from sync_pipeline.mirror.database import check_connection, create_mirror_engine
    from sync_pipeline.status import mirror_status

    engine = create_mirror_engine(database_url_or_embedded())
    try:
        check_connection(engine)
        report = mirror_status(engine, settings.sync_schema(), max_wait_seconds=settings.webhook_max_wait_seconds())
    finally:
        engine.dispose()
    print(report.render())
    return 1 if args.check and not report.healthy else 0


def _command_demo(args: argparse.Namespace) -> int:
    from sync_pipeline.demo import run_demo

    return run_demo(users=args.users, orgs=args.orgs, verbose=args.verbose)


def _command_stop(_args: argparse.Namespace) -> int:
    from sync_pipeline.embedded import stop_embedded_postgres

    stopped = stop_embedded_postgres()
    if stopped.was_running:
        print(f"Stopped the embedded PostgreSQL in {stopped.data_dir} (pid {stopped.pid}).")
    else:
        print(f"No embedded PostgreSQL running in {stopped.data_dir}.")
    return 0


def _command_clean(args: argparse.Namespace) -> int:
    from sync_pipeline.embedded import remove_state_dir, state_dir

    directory = state_dir()
    if not directory.exists():
        print(f"Nothing to remove: {directory} does not exist.")
        return 0
    if not args.yes:
        print(
            f"sync-pipeline clean would stop the embedded PostgreSQL and delete {directory} (its database, the "
            "local Dagster run history): run `sync-pipeline clean --yes` to do it.",
            file=sys.stderr,
        )
        return EXIT_BAD_CONFIGURATION
    removed, stopped = remove_state_dir()
    stopped_text = f"stopped the embedded PostgreSQL (pid {stopped.pid}), " if stopped and stopped.was_running else ""
    print(f"Removed {removed} ({stopped_text}its database and run history gone).")
    return 0


def _command_ui(args: argparse.Namespace) -> int:
    from sync_pipeline.demo import run_ui

    return run_ui(port=args.port, users=args.users, orgs=args.orgs)


def _command_webhooks(args: argparse.Namespace) -> int:
    if args.webhook_command == "serve":
        from sync_pipeline.webhooks.receiver import serve

        serve(host=args.host, port=args.port)
        return 0
    if args.webhook_command == "process":
        from sync_pipeline.runner import process_pending_webhooks

        with _showing_progress():
            outcomes = process_pending_webhooks(verbose=args.verbose)
        if not outcomes:
            print("No pending webhook events.")
            return 0
        failed = [outcome for outcome in outcomes if outcome.exit_code]
        for outcome in outcomes:
            if outcome.exit_code == 0:
                print(outcome.summary())
        return _report(failed[-1]) if failed else 0
    from sync_pipeline.runner import run_sync

    if not (args.since or args.until or args.event_ids):
        raise ConfigurationError("replay needs --since/--until or --event-id: which events should be re-processed?")
    options = _run_options(
        replay_since=args.since, replay_until=args.until, webhook_event_ids=args.event_ids, dry_run=args.dry_run, mode="replay"
    )
    with _showing_progress():
        outcome = run_sync(options, verbose=args.verbose)
    return _report(outcome)


def _command_emulator(args: argparse.Namespace) -> int:
    from sync_pipeline.emulator import EmulatorSettings, run_emulator

    try:
        settings = EmulatorSettings(
            secret_key=args.secret_key,
            latency_ms=args.latency_ms,
            requests_per_10s=args.requests_per_10s,
            users_offset_timeout=args.users_offset_timeout or None,
            application_share=args.application_share,
            gone_parent_answer=args.gone_parent_answer,
        )
    except ValueError as error:
        raise ConfigurationError(f"emulator: {error}") from None
    run_emulator(
        host=args.host,
        port=args.port,
        users=args.users,
        orgs=args.orgs,
        seed=args.seed,
        users_in_one_millisecond=args.users_in_one_millisecond,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        settings=settings,
    )
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sync": _command_sync,
    "analyze": _command_analyze,
    "status": _command_status,
    "demo": _command_demo,
    "ui": _command_ui,
    "stop": _command_stop,
    "clean": _command_clean,
    "webhooks": _command_webhooks,
    "app-tables": _command_app_tables,
    "emulator": _command_emulator,
}


def _runs_a_job(args: argparse.Namespace) -> bool:
    """Whether the command runs a Dagster job in this process (and so imports all of it)."""
    if args.command == "webhooks":
        return args.webhook_command != "serve"
    return args.command in ("sync", "analyze", "demo", "app-tables")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Quiet by default: the command prints its own summary, or one line on failure.
    # force=True rebinds the handler to the current stderr on every call.
    level = logging.INFO if args.verbose else logging.ERROR
    logging.basicConfig(level=level, format="%(message)s", force=True)
    # Records from Dagster's loggers (DEBUG-level loggers) propagate past the root
    # logger's level, so the threshold has to sit on the handler itself.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    try:
        if _runs_a_job(args):
            from sync_pipeline.collector import no_collections_while_importing

            with no_collections_while_importing():  # about 0.4 s of the start, see collector.py
                import sync_pipeline.definitions  # noqa: F401
                import sync_pipeline.runner  # noqa: F401
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except SyncPipelineError as error:
        print(f"sync-pipeline: {error}", file=sys.stderr)
        bad_configuration = isinstance(error, (ConfigurationError, DatabaseUnavailableError))
        return EXIT_BAD_CONFIGURATION if bad_configuration else EXIT_RUN_FAILED
    except Exception as error:  # the Clerk client's errors and anything unforeseen: one line, never a traceback
        from sync_pipeline.clerk.errors import ClerkAuthError, ClerkConfigError, ClerkError

        if isinstance(error, ClerkError):
            print(f"sync-pipeline: {error}", file=sys.stderr)
            # A key Clerk rejects, or a client set up wrong, is bad configuration like any other.
            return EXIT_BAD_CONFIGURATION if isinstance(error, (ClerkAuthError, ClerkConfigError)) else EXIT_RUN_FAILED
        if os.environ.get("SYNC_PIPELINE_DEBUG"):
            raise
        first_line = (str(error).strip().splitlines() or [""])[0]
        print(f"sync-pipeline: unexpected {type(error).__name__}: {first_line} (set SYNC_PIPELINE_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
