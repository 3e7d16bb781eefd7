"""``sync-pipeline``: run the sync, see the drift, try it all on embedded defaults.

Every failure a user can fix ends in one line on stderr and a non-zero exit code:
1 the run failed, 2 the delete guard refused, 3 the configuration is wrong.
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

    demo = commands.add_parser("demo", help="sync the emulator's generated data into the embedded (or DATABASE_URL) Postgres")
    demo.add_argument("--users", type=int, default=DEFAULT_DEMO_USERS)
    demo.add_argument("--orgs", type=int, default=DEFAULT_DEMO_ORGS)

    ui = commands.add_parser("ui", help="open the Dagster UI over the demo's data (emulator + embedded Postgres)")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--users", type=int, default=DEFAULT_DEMO_USERS)
    ui.add_argument("--orgs", type=int, default=DEFAULT_DEMO_ORGS)

    emulator = commands.add_parser("emulator", help="serve a Clerk Backend API emulator over generated data")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8787)
    emulator.add_argument("--users", type=int, default=DEFAULT_DEMO_USERS)
    emulator.add_argument("--orgs", type=int, default=DEFAULT_DEMO_ORGS)
    emulator.add_argument("--seed", type=int, default=42)
    emulator.add_argument("--secret-key", default=DEMO_SECRET_KEY)
    emulator.add_argument("--latency-ms", type=float, default=0.0)
    emulator.add_argument("--requests-per-10s", type=int, default=None, help="rate limit (default: Clerk's for the key kind)")
    return parser


def _command_sync(args: argparse.Namespace) -> int:
    from sync_pipeline.runner import SyncRequest, run_sync

    outcome = run_sync(
        SyncRequest(
            dry_run=args.dry_run,
            user_ids=args.user_ids,
            organization_ids=args.organization_ids,
            allow_mass_delete=args.allow_mass_delete,
            max_delete_share=args.max_delete_share,
        ),
        verbose=args.verbose,
    )
    if outcome.exit_code == 0:
        print(outcome.summary())
    else:
        print(f"sync-pipeline: {outcome.summary()}", file=sys.stderr)
    return outcome.exit_code


def _command_analyze(args: argparse.Namespace) -> int:
    from sync_pipeline.runner import analyze

    print(analyze(user_ids=args.user_ids, organization_ids=args.organization_ids))
    return 0


def _command_demo(args: argparse.Namespace) -> int:
    from sync_pipeline.demo import run_demo

    return run_demo(users=args.users, orgs=args.orgs, verbose=args.verbose)


def _command_ui(args: argparse.Namespace) -> int:
    from sync_pipeline.demo import run_ui

    return run_ui(port=args.port, users=args.users, orgs=args.orgs)


def _command_emulator(args: argparse.Namespace) -> int:
    from sync_pipeline.emulator import run_emulator

    run_emulator(
        host=args.host,
        port=args.port,
        users=args.users,
        orgs=args.orgs,
        seed=args.seed,
        secret_key=args.secret_key,
        latency_ms=args.latency_ms,
        requests_per_10s=args.requests_per_10s,
    )
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sync": _command_sync,
    "analyze": _command_analyze,
    "demo": _command_demo,
    "ui": _command_ui,
    "emulator": _command_emulator,
}


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
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except SyncPipelineError as error:
        print(f"sync-pipeline: {error}", file=sys.stderr)
        bad_configuration = isinstance(error, (ConfigurationError, DatabaseUnavailableError))
        return EXIT_BAD_CONFIGURATION if bad_configuration else EXIT_RUN_FAILED
    except Exception as error:  # the Clerk client's errors and anything unforeseen: one line, never a traceback
        from sync_pipeline.clerk.errors import ClerkError

        if isinstance(error, ClerkError):
            print(f"sync-pipeline: {error}", file=sys.stderr)
            return EXIT_RUN_FAILED
        if os.environ.get("SYNC_PIPELINE_DEBUG"):
            raise
        first_line = (str(error).strip().splitlines() or [""])[0]
        print(f"sync-pipeline: unexpected {type(error).__name__}: {first_line} (set SYNC_PIPELINE_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
