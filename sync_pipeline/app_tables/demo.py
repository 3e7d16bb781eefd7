"""``sync-pipeline app-tables demo``: the worked example of the README, on the emulator's data.

It creates the demo application's tables (``examples/app_tables.sql``) beside the mirror,
seeds the drift a real application accumulates (a few users' tasks and comments, settings
rows for some users only, one of them twice, rows of a user deleted before the mirror
existed), hands each run ``examples/app_tables.yaml`` as ``--config`` would, then:

1. analyzes the tables; 2. syncs (settings and profiles provisioned, the strays cleaned,
the duplicate removed); 3. deletes a user in the emulator and syncs again (its tasks
deleted, its comments anonymized, its settings and profiles gone); 4. surveys and creates
the foreign keys and unique indexes.

Tables are created only if absent and seeded only while empty, so it can be re-run.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import sqlalchemy as sa

from sync_pipeline.errors import ConfigurationError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO_SQL = EXAMPLES / "app_tables.sql"
DEMO_DECLARATIONS = EXAMPLES / "app_tables.yaml"
SEEDED_USERS = 30
GONE_BEFORE_THE_MIRROR = "user_deleted_before_the_mirror_existed"


def _seed(connection: sa.Connection, user_ids: list[str]) -> None:
    """Some rows the application created, some it got wrong; only into empty tables."""
    if connection.execute(sa.text("SELECT count(*) FROM app.tasks")).scalar_one():
        return
    owners = [*user_ids, GONE_BEFORE_THE_MIRROR]
    connection.execute(
        sa.text(
            "INSERT INTO app.tasks (owner_id, title) "
            "SELECT owner, 'Task ' || n FROM unnest(CAST(:owners AS text[])) AS owner, generate_series(1, 3) AS n"
        ),
        {"owners": owners},
    )
    connection.execute(
        sa.text(
            "INSERT INTO app.comments (author_id, author_name, body) "
            "SELECT owner, 'Author of ' || owner, 'A comment' FROM unnest(CAST(:owners AS text[])) AS owner"
        ),
        {"owners": owners},
    )
    # Settings exist for the first users only; a retried signup handler made a second one for the first.
    connection.execute(
        sa.text(
            "INSERT INTO app.user_settings (clerk_user_id, theme, created_at) "
            "SELECT owner, 'dark', now() - interval '30 days' FROM unnest(CAST(:owners AS text[])) AS owner"
        ),
        {"owners": user_ids},
    )
    connection.execute(
        sa.text("INSERT INTO app.user_settings (clerk_user_id, theme) VALUES (:user, 'light')"), {"user": user_ids[0]}
    )


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {os.environ['CLERK_SECRET_KEY']}"}


def _first_clerk_users(count: int) -> list[str]:
    response = httpx.get(f"{os.environ['CLERK_API_URL']}/users", params={"limit": count}, headers=_auth())
    response.raise_for_status()
    return sorted(user["id"] for user in response.json())


def _delete_in_clerk(user_id: str) -> None:
    """Through the emulator's admin API, as someone deleting the user in Clerk's dashboard."""
    root = os.environ["CLERK_API_URL"].removesuffix("/v1")
    httpx.delete(f"{root}/_emulator/users/{user_id}", headers=_auth()).raise_for_status()


def run_app_tables_demo(*, users: int, orgs: int, verbose: bool = False) -> int:
    from sync_pipeline import runner
    from sync_pipeline.defs.run_config import SyncRunConfig
    from sync_pipeline.demo import demo_environment
    from sync_pipeline.mirror.database import create_mirror_engine

    if not DEMO_SQL.is_file():
        raise ConfigurationError(f"the demo needs {DEMO_SQL} (run it from a checkout of the repository)")
    with demo_environment(users, orgs) as url:
        declarations = str(DEMO_DECLARATIONS)  # handed to each run, as `app-tables --config` does
        engine = create_mirror_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(sa.text(DEMO_SQL.read_text(encoding="utf-8")))
            user_ids = _first_clerk_users(SEEDED_USERS)
            with engine.begin() as connection:
                _seed(connection, user_ids)
                doomed = connection.execute(
                    sa.text("SELECT owner_id FROM app.tasks WHERE owner_id = ANY(:ids) ORDER BY owner_id LIMIT 1"),
                    {"ids": user_ids},
                ).scalar()
        finally:
            engine.dispose()

        print(f"\nThe demo's tables are in schema 'app', declared in {DEMO_DECLARATIONS}\n")
        report = runner.analyze_app_tables(user_ids=[], organization_ids=[], app_tables_config=declarations, samples=2)
        print(report.summary())
        if report.exit_code != runner.EXIT_OK:
            return report.exit_code
        synced = runner.run_sync(SyncRunConfig(), app_tables_config=declarations, verbose=verbose)
        print("\n" + synced.summary())
        if synced.exit_code != runner.EXIT_OK:
            return synced.exit_code

        if doomed:
            _delete_in_clerk(doomed)
            print(f"\nDeleted {doomed} in Clerk (the emulator). Syncing again:")
            again = runner.run_sync(SyncRunConfig(), app_tables_config=declarations, verbose=verbose)
            print(again.summary())
            if again.exit_code != runner.EXIT_OK:
                return again.exit_code

        print("\nIntegrity: foreign keys to the mirror and unique indexes")
        print(runner.app_tables_integrity(apply=True, app_tables_config=declarations))
    return runner.EXIT_OK
