"""Application tables kept consistent by the real sync job: the emulator over HTTP, real tables in Postgres."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sync_pipeline.app_tables import integrity
from sync_pipeline.app_tables.config import parse_config
from sync_pipeline.defs.metadata import table_counts
from sync_pipeline.mirror.apply import ApplySettings
from sync_pipeline.mirror.database import upgrade_schema
from sync_pipeline.model import USERS
from sync_pipeline_tests.app_tables.conftest import AppTablesHarness
from sync_pipeline_tests.harness import as_json, check_result, clerk_ids

SETTINGS_AND_PROFILES = """
CREATE TABLE {app}.user_settings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_user_id text NOT NULL,
    theme text NOT NULL,
    weekly_digest boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {app}.user_profile (
    user_id varchar(64) NOT NULL,
    organization_id text NOT NULL,
    display_title text,
    PRIMARY KEY (user_id, organization_id)
);
"""
SETTINGS_AND_PROFILES_YAML = """
tables:
  - table: {app}.user_settings
    user_id_column: clerk_user_id
    orphans: delete
    provision: {per: user, defaults: {theme: system, weekly_digest: false}}
    unique_per: [clerk_user_id]
  - table: {app}.user_profile
    user_id_column: user_id
    organization_id_column: organization_id
    orphans: delete
    provision: {per: membership, defaults: {display_title: Member}}
"""

# A task per user is deleted with its owner, a comment anonymized, a note kept.
DEPENDANTS = """
CREATE TABLE {app}.tasks (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, owner_id varchar(64) NOT NULL, title text NOT NULL);
CREATE TABLE {app}.comments (id text PRIMARY KEY, author_id text, author_name text, body text NOT NULL);
CREATE TABLE {app}.notes (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text, body text);
"""
DEPENDANTS_YAML = """
tables:
  - table: {app}.tasks
    user_id_column: owner_id
    orphans: delete
  - table: {app}.comments
    user_id_column: author_id
    orphans: anonymize
    anonymize: {author_id: null, author_name: deleted user}
  - table: {app}.notes
    user_id_column: user_id
    orphans: keep
"""


def user_ids(app: AppTablesHarness) -> list[str]:
    return sorted(clerk_ids(app.sync.emulator)[USERS])


def seed_dependants(app: AppTablesHarness, owners: list[str]) -> None:
    """Three tasks, a comment and a note per owner."""
    app.execute(DEPENDANTS)
    for owner in owners:
        app.execute(
            "INSERT INTO {app}.tasks (owner_id, title) SELECT :owner, 'task ' || n FROM generate_series(1, 3) AS n", owner=owner
        )
        app.execute(
            "INSERT INTO {app}.comments VALUES ('c-' || :owner, :owner, 'Name of ' || :owner, 'hello')", owner=owner
        )
        app.execute("INSERT INTO {app}.notes (user_id, body) VALUES (:owner, 'note')", owner=owner)


def seed_provisioned(app: AppTablesHarness) -> None:
    """The settings and profile rows an earlier sync would have created: no baseline run needed."""
    store = app.sync.emulator.store
    app.execute(
        "INSERT INTO {app}.user_settings (clerk_user_id, theme) SELECT unnest(CAST(:users AS text[])), 'system'",
        users=user_ids(app),
    )
    memberships = list(store.iter_memberships())
    app.execute(
        "INSERT INTO {app}.user_profile (user_id, organization_id) "
        "SELECT * FROM unnest(CAST(:users AS text[]), CAST(:orgs AS text[]))",
        users=[m["public_user_data"]["user_id"] for m in memberships],
        orgs=[m["organization"]["id"] for m in memberships],
    )


def a_user_with_memberships(app: AppTablesHarness) -> str:
    counts: dict[str, int] = {}
    for membership in app.sync.emulator.store.iter_memberships():
        user_id = membership["public_user_data"]["user_id"]
        counts[user_id] = counts.get(user_id, 0) + 1
    return max(counts, key=counts.get)


def test_provisioning_creates_a_row_per_live_user_and_membership_then_writes_nothing(app: AppTablesHarness) -> None:
    app.execute(SETTINGS_AND_PROFILES)
    app.declare(SETTINGS_AND_PROFILES_YAML)

    result = app.run()

    assert result.success
    assert check_result(result, "app_tables_follow_their_policies")
    settings = app.query("SELECT clerk_user_id, theme, weekly_digest FROM {app}.user_settings")
    assert sorted(settings["clerk_user_id"]) == user_ids(app)
    assert set(settings["theme"]) == {"system"} and set(settings["weekly_digest"]) == {False}
    profiles = app.query("SELECT organization_id || '/' || user_id AS pair, display_title FROM {app}.user_profile")
    store = app.sync.emulator.store
    pairs = {f"{m['organization']['id']}/{m['public_user_data']['user_id']}" for m in store.iter_memberships()}
    assert set(profiles["pair"]) == pairs and set(profiles["display_title"]) == {"Member"}
    changes = app.changes()
    assert set(changes["change_kind"]) == {"insert"}
    assert len(changes) == len(settings) + len(profiles)
    assert changes["reason"].str.startswith("provision: ").all()
    profile_change = changes[changes["entity"] == f"{app.schema}.user_profile"].iloc[0]
    assert as_json(profile_change["entity_id"])[0].startswith("user_")  # a composite key, as a JSON array
    written = result.asset_materializations_for_node("mirror_tables")
    app_metadata = next(m.metadata for m in written if m.asset_key.path == ["app_tables"])
    assert table_counts(app_metadata["written"], row_label="table")[f"{app.schema}.user_settings"]["insert"] == len(settings)

    versions = app.query("SELECT id::text, xmin::text FROM {app}.user_settings")
    again = app.run()

    assert again.success
    assert len(app.changes()) == len(changes)
    assert app.query("SELECT id::text, xmin::text FROM {app}.user_settings").equals(versions)


def test_a_deleted_user_has_its_rows_deleted_anonymized_or_kept_as_each_table_says(app: AppTablesHarness) -> None:
    owners = user_ids(app)[:40]
    gone = owners[0]
    seed_dependants(app, owners)
    app.declare(DEPENDANTS_YAML)
    app.sync.emulator.store.delete_user(gone)  # rows are judged against Clerk: no earlier sync needed

    result = app.run()

    assert result.success
    assert app.query("SELECT count(*) AS n FROM {app}.tasks WHERE owner_id = :u", u=gone)["n"][0] == 0
    assert app.query("SELECT count(*) AS n FROM {app}.tasks")["n"][0] == 3 * (len(owners) - 1)
    comment = app.query("SELECT * FROM {app}.comments WHERE id = :id", id=f"c-{gone}").iloc[0]
    assert comment["author_id"] is None and comment["author_name"] == "deleted user" and comment["body"] == "hello"
    assert app.query("SELECT count(*) AS n FROM {app}.comments WHERE author_name LIKE 'Name of %'")["n"][0] == len(owners) - 1
    assert app.query("SELECT count(*) AS n FROM {app}.notes WHERE user_id = :u", u=gone)["n"][0] == 1
    plan = result.output_for_node("sync_plan")
    kept = plan.app_tables[f"{app.schema}.notes"].orphans
    assert list(kept["action"]) == ["keep"] and list(kept["user_id"]) == [gone]

    changes = app.changes().set_index("entity")
    tasks = changes.loc[[f"{app.schema}.tasks"]]
    assert set(tasks["change_kind"]) == {"delete"} and len(tasks) == 3
    assert set(tasks["reason"]) == {f"orphan: user {gone} is gone"}
    anonymized = changes.loc[f"{app.schema}.comments"]
    assert anonymized["change_kind"] == "anonymize" and anonymized["entity_id"] == f"c-{gone}"
    # The audit trail names the cleared columns and never keeps what they held.
    assert as_json(anonymized["changes"]) == {"author_id": "anonymized", "author_name": "anonymized"}
    assert f"{app.schema}.notes" not in changes.index

    again = app.run()  # the anonymized comment and the kept note are not written again
    assert again.success
    assert len(app.changes()) == len(changes)


def test_with_hard_deletes_and_foreign_keys_dependants_are_cleaned_before_the_mirror_deletes(app: AppTablesHarness) -> None:
    owners = user_ids(app)[:40]
    gone = owners[0]
    seed_dependants(app, owners)
    upgrade_schema(app.sync.engine, app.sync.schema)
    # The mirror as an earlier sync left it: the owners exist, so the keys can be created.
    app.execute(
        "INSERT INTO {mirror}.users (id, raw, raw_digest) SELECT unnest(CAST(:ids AS text[])), '{}', ''", ids=owners
    )
    config = parse_config(DEPENDANTS_YAML.replace("{app}", app.schema).replace("orphans: keep", "orphans: delete"), "t.yaml")
    created = integrity.create_ready(
        app.sync.engine, config, app.sync.schema, hard_delete=True, settings=ApplySettings()
    )
    assert [c.status for c in created] == [integrity.CREATED] * 3  # CASCADE, SET NULL, CASCADE
    app.declare(DEPENDANTS_YAML.replace("orphans: keep", "orphans: delete"))
    app.sync.emulator.store.delete_user(gone)

    result = app.run(hard_delete=True)

    assert result.success
    assert app.sync.query("SELECT count(*) AS n FROM {schema}.users WHERE id = :u", u=gone)["n"][0] == 0
    comment = app.query("SELECT author_id, author_name FROM {app}.comments WHERE id = :id", id=f"c-{gone}").iloc[0]
    # Anonymized by the sync, not merely nulled by ON DELETE SET NULL: the cleanup ran first.
    assert comment["author_id"] is None and comment["author_name"] == "deleted user"
    deleted = app.changes().query("change_kind == 'delete'")
    assert len(deleted) == 3 + 1  # the tasks and the note, each in the audit trail rather than cascaded silently


def test_duplicates_keep_the_oldest_by_default_and_the_newest_when_asked(app: AppTablesHarness) -> None:
    app.execute(
        SETTINGS_AND_PROFILES
        + """
        CREATE TABLE {app}.checkins (id bigint PRIMARY KEY, user_id text NOT NULL, day date NOT NULL, recorded_at timestamptz);
        """
    )
    app.declare(
        SETTINGS_AND_PROFILES_YAML
        + """
  - table: {app}.checkins
    user_id_column: user_id
    orphans: delete
    unique_per: {columns: [user_id, day], keep: newest, by: recorded_at}
"""
    )
    seed_provisioned(app)
    users = user_ids(app)
    first, second = users[:2]
    now = datetime.now(timezone.utc)
    app.execute(
        "INSERT INTO {app}.user_settings (clerk_user_id, theme, created_at) VALUES (:u, 'old', :t0), (:u, 'newer', :t1)",
        u=first, t0=now - timedelta(days=3), t1=now + timedelta(days=1),
    )
    app.execute(
        "INSERT INTO {app}.checkins SELECT n, :u, date '2026-10-01' + n, :t0 FROM generate_series(1, 20) AS n",
        u=second, t0=now,
    )
    app.execute(
        "INSERT INTO {app}.checkins VALUES (101, :u, '2026-11-01', :t0), (102, :u, '2026-11-01', :t1), "
        "(103, :u, '2026-11-02', :t0), (104, :v, '2026-11-01', :t0)",
        u=first, v=second, t0=now - timedelta(hours=2), t1=now,
    )

    result = app.run()

    assert result.success
    assert list(app.query("SELECT theme FROM {app}.user_settings WHERE clerk_user_id = :u", u=first)["theme"]) == ["old"]
    assert app.query("SELECT count(*) AS n FROM {app}.user_settings")["n"][0] == len(users)
    assert sorted(app.query("SELECT id FROM {app}.checkins WHERE id > 100")["id"]) == [102, 103, 104]
    plan = result.output_for_node("sync_plan").app_tables[f"{app.schema}.user_settings"]
    assert len(plan.duplicates) == 2 and set(plan.duplicates["key"]) == {f'["{first}"]'}
    deleted = app.changes().query("change_kind == 'delete'")
    assert len(deleted) == 3
    themes = {as_json(c)["row"].get("theme") for c in deleted["changes"]}
    assert themes == {"system", "newer", None}  # each deleted duplicate's content is kept in the audit trail
    assert deleted["reason"].str.startswith("duplicate of ").all()


def test_a_profile_goes_with_its_membership_and_a_new_membership_gets_one(app: AppTablesHarness) -> None:
    app.execute(SETTINGS_AND_PROFILES)
    app.declare(SETTINGS_AND_PROFILES_YAML)
    seed_provisioned(app)
    store = app.sync.emulator.store
    user_id = a_user_with_memberships(app)
    leaving = next(m for m in store.iter_memberships() if m["public_user_data"]["user_id"] == user_id)
    left_org = leaving["organization"]["id"]
    store.delete_membership(leaving["id"])
    joined_org = next(o["id"] for o in store.iter_organizations() if not store.membership_of(o["id"], user_id) and o["id"] != left_org)
    store.create_membership(joined_org, user_id)

    result = app.run()

    assert result.success
    profiles = set(app.query("SELECT organization_id FROM {app}.user_profile WHERE user_id = :u", u=user_id)["organization_id"])
    assert left_org not in profiles and joined_org in profiles
    changes = app.changes().set_index("change_kind")
    assert len(changes) == 2
    assert changes.loc["delete", "reason"] == f"orphan: membership {left_org}/{user_id} is gone"
    assert changes.loc["insert", "reason"] == f"provision: membership {joined_org}/{user_id}"


def test_a_dry_run_plans_the_tables_and_writes_nothing(app: AppTablesHarness) -> None:
    app.execute(SETTINGS_AND_PROFILES)
    seed_dependants(app, ["user_long_gone"])
    app.declare(SETTINGS_AND_PROFILES_YAML + DEPENDANTS_YAML.replace("tables:\n", ""))

    result = app.run(dry_run=True, allow_mass_delete=True)

    assert result.success
    counts = result.output_for_node("sync_plan").app_table_counts()
    assert counts[f"{app.schema}.user_settings"]["missing"] == len(user_ids(app))
    assert counts[f"{app.schema}.tasks"]["delete"] == 3
    assert counts[f"{app.schema}.comments"]["anonymize"] == 1
    metadata = result.asset_materializations_for_node("sync_plan")[0].metadata
    assert table_counts(metadata["app_tables"], row_label="table")[f"{app.schema}.tasks"]["orphaned"] == 3
    assert "user_long_gone" in str([r.data for r in metadata[f"sample: {app.schema}.tasks orphaned"].value.records])
    assert app.query("SELECT count(*) AS n FROM {app}.user_settings")["n"][0] == 0
    assert app.query("SELECT count(*) AS n FROM {app}.tasks")["n"][0] == 3
    assert app.query("SELECT author_id FROM {app}.comments")["author_id"][0] == "user_long_gone"
    assert app.changes().empty
    assert list(app.sync.sync_runs()["outcome"]) == ["dry_run"]


def test_the_guard_refuses_a_cleanup_that_would_remove_most_of_a_table(app: AppTablesHarness) -> None:
    live = user_ids(app)[:2]
    seed_dependants(app, [*live, *(f"user_gone_{i}" for i in range(6))])
    app.declare(DEPENDANTS_YAML)

    refused = app.run()

    assert not refused.success
    assert not check_result(refused, "delete_guard")
    assert app.query("SELECT count(*) AS n FROM {app}.tasks")["n"][0] == 24
    assert app.sync.query("SELECT count(*) AS n FROM {schema}.users")["n"][0] == 0  # the mirror waits too
    run = app.sync.sync_runs().iloc[-1]
    assert run["outcome"] == "refused"
    assert f"app table {app.schema}.tasks: 18 of 24 rows (75.0%) would be deleted or anonymized" in run["message"]

    allowed = app.run(allow_mass_delete=True)

    assert allowed.success
    assert sorted(set(app.query("SELECT owner_id FROM {app}.tasks")["owner_id"])) == live


def test_a_tables_own_max_cleanup_share_replaces_the_runs(app: AppTablesHarness) -> None:
    seed_dependants(app, [user_ids(app)[0], "user_gone"])
    app.declare(DEPENDANTS_YAML.replace("orphans: delete", "orphans: delete\n    max_cleanup_share: 0.5"))

    result = app.run()

    assert not result.success  # comments: 1 of 2 anonymized is 50%, above the run's 10%
    assert "comments" in app.sync.sync_runs().iloc[-1]["message"]
    assert "tasks" not in app.sync.sync_runs().iloc[-1]["message"]  # 3 of 6 is within its 50%


def test_a_scoped_run_touches_only_the_rows_of_its_scope(app: AppTablesHarness) -> None:
    app.execute(SETTINGS_AND_PROFILES)
    owners = user_ids(app)[:40]
    seed_dependants(app, owners)
    app.declare(SETTINGS_AND_PROFILES_YAML + DEPENDANTS_YAML.replace("tables:\n", ""))
    seed_provisioned(app)
    store = app.sync.emulator.store
    in_scope, out_of_scope = owners[0], owners[1]
    store.delete_user(in_scope)
    store.delete_user(out_of_scope)
    drifted = owners[2]  # its settings row vanishes: out of scope, so it stays missing
    app.execute("DELETE FROM {app}.user_settings WHERE clerk_user_id = :u", u=drifted)
    newcomer = store.create_user(email_addresses=["newcomer@example.com"])["id"]

    result = app.run(user_ids=[in_scope, newcomer])

    assert result.success
    changes = app.changes()
    touched_users = set(changes["reason"].str.extract(r"(user_\w+)")[0])
    assert touched_users == {in_scope, newcomer}
    assert app.query("SELECT count(*) AS n FROM {app}.tasks WHERE owner_id = :u", u=out_of_scope)["n"][0] == 3
    assert app.query("SELECT count(*) AS n FROM {app}.user_settings WHERE clerk_user_id = :u", u=drifted)["n"][0] == 0
    assert app.query("SELECT count(*) AS n FROM {app}.user_settings WHERE clerk_user_id = :u", u=newcomer)["n"][0] == 1
    assert app.query("SELECT count(*) AS n FROM {app}.user_profile WHERE user_id = :u", u=in_scope)["n"][0] == 0


def test_a_partial_sync_answering_webhooks_provisions_and_cleans_its_users(app: AppTablesHarness) -> None:
    from sync_pipeline.defs.sensors import partial_sync_request
    from sync_pipeline.webhooks import inbox

    app.execute(SETTINGS_AND_PROFILES)
    owners = user_ids(app)[:40]
    seed_dependants(app, owners)
    app.declare(SETTINGS_AND_PROFILES_YAML + DEPENDANTS_YAML.replace("tables:\n", ""))
    seed_provisioned(app)
    upgrade_schema(app.sync.engine, app.sync.schema)  # the inbox table
    store = app.sync.emulator.store
    first_event = len(store.events)
    newcomer = store.create_user(email_addresses=["webhook.newcomer@example.com"])["id"]
    store.delete_user(owners[0])
    for i, event in enumerate(store.events[first_event:]):
        inbox.store_delivery(app.sync.engine, app.sync.schema, svix_id=f"msg_{i}", svix_timestamp=None, payload=event)
    store.delete_user(owners[1])  # no webhook delivered: the daily sync will catch it
    request = partial_sync_request(inbox.pending_events(app.sync.engine, app.sync.schema, limit=100), run_key="t")

    result = app.run(job="partial_sync_job", run_config=request.run_config)

    assert result.success, result.get_step_failure_events()
    assert app.query("SELECT count(*) AS n FROM {app}.user_settings WHERE clerk_user_id = :u", u=newcomer)["n"][0] == 1
    assert app.query("SELECT count(*) AS n FROM {app}.tasks WHERE owner_id = :u", u=owners[0])["n"][0] == 0
    assert app.query("SELECT count(*) AS n FROM {app}.tasks WHERE owner_id = :u", u=owners[1])["n"][0] == 3


def test_a_bad_declaration_fails_the_run_before_any_write(app: AppTablesHarness) -> None:
    app.execute(SETTINGS_AND_PROFILES)
    app.execute("INSERT INTO {app}.user_settings (clerk_user_id, theme) VALUES ('user_long_gone', 'dark')")
    app.declare(SETTINGS_AND_PROFILES_YAML.replace("clerk_user_id", "clerk_userid"))

    result = app.run()

    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert failure.step_key == "mirror_snapshot"
    error = failure.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    message = error.message
    assert "user_id_column" in message and "'clerk_userid' does not exist" in message and "clerk_user_id" in message
    assert app.sync.query("SELECT count(*) AS n FROM {schema}.users")["n"][0] == 0
    assert app.sync.sync_runs().empty
    assert list(app.query("SELECT clerk_user_id FROM {app}.user_settings")["clerk_user_id"]) == ["user_long_gone"]


def test_a_default_the_table_refuses_fails_that_provisioning_alone_and_the_mirror_is_synced(app: AppTablesHarness) -> None:
    app.execute(SETTINGS_AND_PROFILES)
    # The catalog cannot know a CHECK will refuse the default: the insert fails inside the transaction.
    app.execute("ALTER TABLE {app}.user_settings ADD CONSTRAINT no_system_theme CHECK (theme <> 'system')")
    app.declare(SETTINGS_AND_PROFILES_YAML)

    result = app.run()

    assert result.success
    assert app.sync.live_ids(USERS) == clerk_ids(app.sync.emulator)["users"]  # the mirror follows Clerk
    assert app.query("SELECT count(*) AS n FROM {app}.user_settings")["n"][0] == 0  # refused: nothing provisioned
    assert app.query("SELECT count(*) AS n FROM {app}.user_profile")["n"][0] > 0  # the other table's defaults were fine
    run = app.sync.sync_runs().iloc[-1]
    assert run["outcome"] == "succeeded"
    assert "user_settings: provisioning refused" in run["message"] and "no_system_theme" in run["message"]
    assert not check_result(result, "app_tables_follow_their_policies")  # the rows still missing are reported
    assert set(app.changes()["entity"]) == {f"{app.schema}.user_profile"}  # the audit trail lists only what was written
