"""The declarations file: its shape checked, every mistake one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync_pipeline.app_tables.config import (
    ANONYMIZE,
    MEMBERSHIP,
    NEWEST,
    OLDEST,
    ORGANIZATION,
    USER,
    load_config,
    parse_config,
)
from sync_pipeline.errors import ConfigurationError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "app_tables.yaml"


def error_of(text: str) -> str:
    with pytest.raises(ConfigurationError) as raised:
        parse_config(text, "tables.yaml")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("app tables tables.yaml: ")
    return message


def test_the_example_declares_the_demo_tables() -> None:
    config = load_config(EXAMPLE)

    settings, profile, tasks, comments = config.tables
    assert settings.label == "app.user_settings" and settings.owner == USER
    assert settings.provision.per == USER and settings.provision.defaults == {"theme": "system"}
    assert settings.unique.columns == ("clerk_user_id",) and settings.unique.keep == OLDEST
    assert profile.owner == MEMBERSHIP and profile.provision.per == MEMBERSHIP
    assert tasks.orphans == "delete" and tasks.provision is None and tasks.unique is None
    assert comments.orphans == ANONYMIZE and comments.anonymize == {"author_id": None, "author_name": "deleted user"}


def test_shorthands_and_defaults() -> None:
    config = parse_config(
        """
tables:
  - table: settings
    user_id_column: user_id
    orphans: keep
    provision: user
    unique_per: [user_id]
  - table: billing.org_plans
    organization_id_column: org_id
    orphans: delete
    unique_per: {columns: org_id, keep: newest, by: changed_at}
    max_cleanup_share: 0.5
""",
        "t.yaml",
    )

    settings, plans = config.tables
    assert settings.label == "public.settings"  # unqualified: public
    assert settings.provision.per == USER and settings.provision.defaults == {}
    assert settings.unique.age_column == "created_at" and not settings.unique.age_column_given
    assert plans.owner == ORGANIZATION and plans.unique.columns == ("org_id",)
    assert plans.unique.keep == NEWEST and plans.unique.age_column == "changed_at"
    assert plans.max_cleanup_share == 0.5


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{table: t, user_column: u, orphans: delete}", "tables[0] (public.t).user_column: unknown key (did you mean 'user_id_column'?)"),
        ("{table: t, user_id_column: u, orphans: remove}", "tables[0] (public.t).orphans: 'remove' is not one of delete, anonymize, keep"),
        ("{table: t, user_id_column: u}", "tables[0] (public.t).orphans: is required"),
        ("{table: t, orphans: delete}", "tables[0] (public.t): needs user_id_column, organization_id_column or both"),
        ("{user_id_column: u, orphans: delete}", "tables[0].table: is required"),
        ("{table: t, user_id_column: u, orphans: anonymize}", "tables[0] (public.t).anonymize: is required with orphans: anonymize"),
        ("{table: t, user_id_column: u, orphans: delete, anonymize: {n: null}}", "tables[0] (public.t).anonymize: only applies with orphans: anonymize"),
        ("{table: t, user_id_column: u, orphans: delete, provision: {per: membership}}", "tables[0] (public.t).provision.per: a row per membership needs organization_id_column"),
        ("{table: t, user_id_column: u, orphans: delete, provision: {per: team}}", "tables[0] (public.t).provision.per: 'team' is not one of user, membership"),
        ("{table: t, user_id_column: u, orphans: delete, provision: {defaults: {}}}", "tables[0] (public.t).provision.per: is required"),
        ("{table: t, user_id_column: u, orphans: delete, provision: {per: user, defaults: {u: x}}}", "tables[0] (public.t).provision.defaults.u: is an id column"),
        ("{table: t, user_id_column: u, orphans: delete, unique_per: [email]}", "tables[0] (public.t).unique_per.columns: must include the user or organization id column (u)"),
        ("{table: t, user_id_column: u, orphans: delete, unique_per: {columns: [u], keep: first}}", "tables[0] (public.t).unique_per.keep: 'first' is not one of oldest, newest"),
        ("{table: t, user_id_column: u, orphans: delete, owner: organization}", "tables[0] (public.t).owner: a row owned by an organization needs organization_id_column"),
        ("{table: t, user_id_column: u, orphans: delete, max_cleanup_share: 2}", "tables[0] (public.t).max_cleanup_share: 2 must be a number between 0 and 1"),
        ("{table: t, user_id_column: u, organization_id_column: u, orphans: delete}", "tables[0] (public.t).organization_id_column: is the same column as user_id_column"),
        ("{table: a.b.c, user_id_column: u, orphans: delete}", "tables[0].table: 'a.b.c': give schema.table at most"),
    ],
)
def test_each_mistake_names_its_key(entry: str, expected: str) -> None:
    assert expected in error_of(f"tables:\n  - {entry}\n")


@pytest.mark.parametrize(
    "entry",
    [
        """{table: 'users"; DROP TABLE clerk.users; --', user_id_column: u, orphans: delete}""",
        """{table: t, user_id_column: 'u" = u OR true --', orphans: delete}""",
        """{table: t, user_id_column: 'u%s', orphans: delete}""",
        """{table: t, user_id_column: ':u', orphans: delete}""",
        """{table: t, user_id_column: u, orphans: delete, provision: {per: user, defaults: {"a); DELETE FROM t; --": 1}}}""",
        """{table: t, user_id_column: u, orphans: anonymize, anonymize: {"x\\u0000": null}}""",
    ],
)
def test_names_that_could_carry_sql_are_refused(entry: str) -> None:
    assert "is not a supported name" in error_of(f"tables:\n  - {entry}\n")


def test_values_are_not_names_and_may_hold_anything() -> None:
    config = parse_config(
        """tables:\n  - {table: t, user_id_column: u, orphans: anonymize, anonymize: {note: "'; DROP TABLE t; --"}}\n""",
        "t.yaml",
    )
    assert config.tables[0].anonymize == {"note": "'; DROP TABLE t; --"}  # bound as JSON, never spliced into SQL


def test_the_files_own_mistakes() -> None:
    assert "line 3: not valid YAML" in error_of("tables:\n  - table: t\n   orphans: delete: x\n")
    assert "(top): must be a mapping" in error_of("- a\n- b\n")
    assert "tables: must list at least one table" in error_of("tables: []\n")
    assert "tablez: unknown key (did you mean 'tables'?)" in error_of("tablez: []\n")
    twice = "tables:\n  - {table: app.t, user_id_column: u, orphans: keep}\n  - {table: app.t, user_id_column: u, orphans: delete}\n"
    assert "tables[1].table: app.t is already listed at tables[0]" in error_of(twice)


def test_a_missing_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"SYNC_APP_TABLES='.*nowhere.yaml': no such file"):
        load_config(tmp_path / "nowhere.yaml")
