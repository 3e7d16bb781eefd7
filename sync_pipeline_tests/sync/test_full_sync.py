"""The full sync end to end: the real job, the emulator over HTTP, a real Postgres."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sync_pipeline.definitions import build_definitions
from sync_pipeline.mirror import snapshot as mirror_snapshot
from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.emulator import EmulatorServer, FaultKind
from sync_pipeline.model import MEMBERSHIPS, ORGANIZATIONS, USERS
from sync_pipeline.entities import catalog
from sync_pipeline_tests.harness import SyncHarness, as_json, check_result, clerk_ids, clerk_objects, written_rows


def memberships_of_user(emulator: EmulatorServer, user_id: str) -> list[dict]:
    return [m for m in emulator.store.iter_memberships() if m["public_user_data"]["user_id"] == user_id]


def a_user_with_memberships(emulator: EmulatorServer) -> str:
    counts: dict[str, int] = {}
    for membership in emulator.store.iter_memberships():
        user_id = membership["public_user_data"]["user_id"]
        counts[user_id] = counts.get(user_id, 0) + 1
    return max(counts, key=counts.get)


def assert_mirror_equals_clerk(harness: SyncHarness) -> None:
    """Live ids match Clerk's, and every live row's raw is exactly the object Clerk serves."""
    expected = clerk_ids(harness.emulator)
    for entity, ids in expected.items():
        assert harness.live_ids(entity) == ids, entity
    raws = harness.query("SELECT id, raw FROM {schema}.users WHERE deleted_at IS NULL")
    for user_id, raw in raws.itertuples(index=False):
        assert as_json(raw) == harness.emulator.store.get_user(user_id)
    # The lists mirrored through their descriptions alone: raw is Clerk's object, but what
    # the description leaves out of it.
    for entity, objects in clerk_objects(harness.emulator).items():
        left_out = catalog.describe(entity).raw_leaves_out
        if entity in ("users", "organizations", "organization_memberships"):
            continue
        raws = dict(harness.query(f"SELECT id, raw FROM {{schema}}.{entity} WHERE deleted_at IS NULL").itertuples(index=False))
        for obj in objects:
            assert as_json(raws[obj["id"]]) == {k: v for k, v in obj.items() if k not in left_out}, (entity, obj["id"])


def test_first_sync_mirrors_every_user_organization_and_membership(harness: SyncHarness) -> None:
    result = harness.run()

    assert result.success
    assert_mirror_equals_clerk(harness)
    assert check_result(result, "matches_clerk")
    assert check_result(result, "delete_guard")
    runs = harness.sync_runs()
    assert list(runs["outcome"]) == ["succeeded"]
    assert runs.iloc[0]["run_id"] == result.run_id
    total = sum(len(ids) for ids in clerk_ids(harness.emulator).values())
    assert written_rows(result) == total
    assert len(harness.changes_of_last_run()) == total


def test_unicode_and_the_primary_email_rule_survive_the_round_trip(harness: SyncHarness) -> None:
    user = harness.emulator.store.create_user(
        email_addresses=["zoë.łukasz@例え.jp", "second@example.org"],
        primary_email_address="second@example.org",
        first_name="Zoë 山田",
        last_name="O'Brien-Łukasz 🚀",
        public_metadata={"note": "naïve café ✓", "nested": {"emoji": "🙂"}},
    )
    assert harness.run().success

    row = harness.row(USERS, user["id"])
    assert row["first_name"] == "Zoë 山田"
    assert row["last_name"] == "O'Brien-Łukasz 🚀"
    assert row["primary_email"] == "second@example.org"
    assert as_json(row["public_metadata"]) == {"note": "naïve café ✓", "nested": {"emoji": "🙂"}}
    assert as_json(row["raw"]) == harness.emulator.store.get_user(user["id"])


def test_a_sync_of_an_unchanged_clerk_writes_no_row(harness: SyncHarness) -> None:
    assert harness.run().success
    versions = harness.row_versions()

    second = harness.run()

    assert second.success
    assert written_rows(second) == 0
    assert harness.row_versions() == versions
    assert harness.changes_of_last_run().empty
    assert check_result(second, "matches_clerk")


def test_updates_write_only_the_changed_rows_and_audit_each_column(harness: SyncHarness) -> None:
    store = harness.emulator.store
    assert harness.run().success
    versions = harness.row_versions()
    user_id = next(iter(store.iter_users()))["id"]
    old_name = harness.row(USERS, user_id)["first_name"]
    org_id = next(iter(store.iter_organizations()))["id"]
    membership_id = next(iter(store.iter_memberships()))["id"]
    store.update_user(user_id, first_name="Łukasz")
    store.update_organization(org_id, name="Renamed Ørg")
    store.update_membership(membership_id, role="org:billing_manager")

    # Memberships embed their whole organization and their user's public data, so the
    # rename and the new first name change those memberships' raw too.
    embedding = {
        m["id"]
        for m in store.iter_memberships()
        if m["organization"]["id"] == org_id or m["public_user_data"]["user_id"] == user_id
    }

    result = harness.run()

    assert result.success
    expected = {user_id, org_id, membership_id, *embedding}
    assert written_rows(result) == len(expected)
    changes = harness.changes_of_last_run().set_index("entity_id")
    assert set(changes.index) == expected
    assert set(changes["change_kind"]) == {"update"}
    for other_membership in embedding - {membership_id}:
        assert as_json(changes.loc[other_membership, "changes"]) == {"raw": "changed"}
    user_changes = as_json(changes.loc[user_id, "changes"])
    assert user_changes["first_name"] == [old_name, "Łukasz"]
    assert user_changes["raw"] == "changed"
    assert "last_name" not in user_changes
    assert as_json(changes.loc[membership_id, "changes"])["role"][1] == "org:billing_manager"
    after = harness.row_versions()
    untouched = {e: {i: v for i, v in rows.items() if i not in changes.index} for e, rows in after.items()}
    assert untouched == {e: {i: v for i, v in rows.items() if i not in changes.index} for e, rows in versions.items()}
    assert harness.row(ORGANIZATIONS, org_id)["name"] == "Renamed Ørg"


def test_a_deleted_user_is_soft_deleted_with_its_memberships(harness: SyncHarness) -> None:
    store = harness.emulator.store
    assert harness.run().success
    user_id = a_user_with_memberships(harness.emulator)
    membership_ids = {m["id"] for m in memberships_of_user(harness.emulator, user_id)}
    store.delete_user(user_id)

    result = harness.run()

    assert result.success
    row = harness.row(USERS, user_id)
    assert row["deleted_at"] is not None and row["raw"] is not None  # kept, marked gone
    for membership_id in membership_ids:
        assert harness.row(MEMBERSHIPS, membership_id)["deleted_at"] is not None
    assert_mirror_equals_clerk(harness)
    deletes = harness.changes_of_last_run().query("change_kind == 'delete'")
    assert set(deletes["entity_id"]) == {user_id, *membership_ids}


def test_a_deleted_organization_takes_its_memberships_along(harness: SyncHarness) -> None:
    store = harness.emulator.store
    assert harness.run().success
    org = max(store.iter_organizations(), key=lambda o: o["members_count"])
    members = {m["id"] for m in store.iter_memberships() if m["organization"]["id"] == org["id"]}
    assert members
    store.delete_organization(org["id"])

    # One organization of 20 is 5%, but its memberships may be more than 10% of the table.
    result = harness.run(allow_mass_delete=True)

    assert result.success
    assert harness.row(ORGANIZATIONS, org["id"])["deleted_at"] is not None
    assert not members & harness.live_ids(MEMBERSHIPS)
    assert_mirror_equals_clerk(harness)


def test_email_swap_and_reuse_of_a_deleted_users_address(harness: SyncHarness) -> None:
    store = harness.emulator.store
    with_email = [u for u in store.iter_users() if u["primary_email_address_id"] and u["email_addresses"]]
    first, second, leaving = with_email[0]["id"], with_email[1]["id"], with_email[2]["id"]
    assert harness.run().success
    first_email = harness.row(USERS, first)["primary_email"]
    second_email = harness.row(USERS, second)["primary_email"]
    leaving_email = harness.row(USERS, leaving)["primary_email"]

    store.swap_primary_emails(first, second)
    store.delete_user(leaving)
    newcomer = store.create_user_reusing_email(leaving, first_name="New")["id"]
    result = harness.run()

    assert result.success
    assert harness.row(USERS, first)["primary_email"] == second_email
    assert harness.row(USERS, second)["primary_email"] == first_email
    assert harness.row(USERS, newcomer)["primary_email"] == leaving_email
    assert harness.row(USERS, leaving)["deleted_at"] is not None
    plan = result.output_for_node("sync_plan")
    moved = plan.email_conflicts.query("kind == 'moved'")
    assert {first_email.lower(), second_email.lower(), leaving_email.lower()} <= set(moved["email"])
    assert_mirror_equals_clerk(harness)


def test_throttling_and_transient_failures_are_survived(harness: SyncHarness) -> None:
    faults = harness.emulator.faults
    faults.add(FaultKind.RATE_LIMITED, path_prefix="/v1/users", times=2, retry_after_s=1)
    faults.add(FaultKind.SERVER_ERROR, path_prefix="/v1/organization_memberships", times=3, status=503)
    faults.add(FaultKind.DROPPED_CONNECTION, path_prefix="/v1/organizations", times=1)

    result = harness.run()

    assert result.success
    assert_mirror_equals_clerk(harness)
    metadata = result.asset_materializations_for_node("clerk_snapshot")[0].metadata
    assert metadata["responses_429"].value == 2
    assert metadata["retries"].value >= 6


def test_a_page_that_keeps_failing_fails_the_run_and_deletes_nothing(harness: SyncHarness) -> None:
    store = harness.emulator.store
    assert harness.run().success
    versions = harness.row_versions()
    store.delete_user(next(iter(store.iter_users()))["id"])
    harness.emulator.faults.add(FaultKind.SERVER_ERROR, path_prefix="/v1/organization_memberships", times=None)

    result = harness.run()

    assert not result.success
    assert harness.row_versions() == versions
    assert list(harness.sync_runs()["outcome"]) == ["succeeded"]  # the failed run never reached apply


def test_the_guard_refuses_a_sync_that_would_empty_the_mirror(harness: SyncHarness) -> None:
    assert harness.run().success
    versions = harness.row_versions()

    with EmulatorServer(users=0, orgs=0, secret_key="sk_live_empty", requests_per_10s=0) as empty_clerk:
        refused = harness.run(emulator=empty_clerk)
        assert not refused.success
        assert not check_result(refused, "delete_guard")
        assert harness.row_versions() == versions
        assert list(harness.sync_runs()["outcome"]) == ["succeeded", "refused"]
        assert "users" in harness.sync_runs().iloc[-1]["message"]

        allowed = harness.run(emulator=empty_clerk, allow_mass_delete=True)
        assert allowed.success
        assert harness.live_ids(USERS) == set()


def test_a_dry_run_computes_everything_and_writes_no_mirror_row(harness: SyncHarness) -> None:
    result = harness.run(dry_run=True)

    assert result.success
    plan = result.output_for_node("sync_plan")
    assert plan.entity(USERS).count("insert") == len(clerk_ids(harness.emulator)[USERS])
    for entity in (USERS, ORGANIZATIONS, MEMBERSHIPS):
        assert harness.query(f"SELECT count(*) AS n FROM {{schema}}.{entity}")["n"][0] == 0
    assert list(harness.sync_runs()["outcome"]) == ["dry_run"]
    assert harness.changes_of_last_run().empty


def test_a_scoped_run_touches_only_its_scope(harness: SyncHarness) -> None:
    store = harness.emulator.store
    assert harness.run().success
    users = [u["id"] for u in store.iter_users()][:2]
    in_scope, out_of_scope = users
    store.update_user(in_scope, first_name="Scoped")
    store.update_user(out_of_scope, first_name="Not yet")
    org = max(store.iter_organizations(), key=lambda o: o["members_count"])
    store.delete_organization(org["id"])
    versions = harness.row_versions()

    result = harness.run(user_ids=[in_scope], organization_ids=[org["id"]], allow_mass_delete=True)

    assert result.success
    assert harness.row(USERS, in_scope)["first_name"] == "Scoped"
    assert harness.row(USERS, out_of_scope)["first_name"] != "Not yet"
    assert harness.row(ORGANIZATIONS, org["id"])["deleted_at"] is not None
    touched = set(harness.changes_of_last_run()["entity_id"])
    org_memberships = set(versions[MEMBERSHIPS]) - harness.live_ids(MEMBERSHIPS)
    # The user's memberships embed its first name, so they changed in Clerk too.
    user_memberships = {m["id"] for m in memberships_of_user(harness.emulator, in_scope)}
    assert touched == {in_scope, org["id"], *org_memberships, *user_memberships}
    after = harness.row_versions()
    for entity in after:
        for object_id, version in versions[entity].items():
            if object_id not in touched:
                assert after[entity][object_id] == version, (entity, object_id)


def test_private_metadata_can_be_kept_out_of_the_mirror(harness: SyncHarness) -> None:
    resources = harness.resources()
    resources["mirror_db"] = MirrorDatabase(
        database_url=harness.database_url, db_schema=harness.schema, include_private_metadata=False
    )
    result = build_definitions(resources).resolve_job_def("full_sync_job").execute_in_process(instance=harness.instance)

    assert result.success
    for entity in (USERS, ORGANIZATIONS):
        leaked = harness.query(
            f"SELECT count(*) AS n FROM {{schema}}.{entity} WHERE private_metadata IS NOT NULL OR raw ? 'private_metadata'"
        )["n"][0]
        assert leaked == 0, entity
    embedded = harness.query(
        "SELECT count(*) AS n FROM {schema}.organization_memberships "
        "WHERE raw ? 'private_metadata' OR raw -> 'organization' ? 'private_metadata'"
    )["n"][0]
    assert embedded == 0
    assert harness.query("SELECT count(*) AS n FROM {schema}.users")["n"][0] == len(clerk_ids(harness.emulator)[USERS])


def _add_trigger(harness: SyncHarness, name: str, when: str, table: str, body: str) -> None:
    """A row trigger ``name`` (``when``: BEFORE INSERT, BEFORE UPDATE) on the mirror's ``table``,
    running the PL/pgSQL ``body``: how a test makes the database store a row other than the one sent."""
    schema = harness.schema
    with harness.engine.begin() as connection:
        connection.execute(sa.text(
            f'CREATE FUNCTION "{schema}".{name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} END $$'
        ))
        connection.execute(sa.text(
            f'CREATE TRIGGER {name} {when} ON "{schema}".{table} FOR EACH ROW EXECUTE FUNCTION "{schema}".{name}()'
        ))


@pytest.mark.parametrize("lookup_limit", [20_000, 0], ids=["by-id", "whole-scope"])
def test_the_read_back_check_fails_when_a_written_row_is_not_what_clerk_holds(
    harness: SyncHarness, monkeypatch: pytest.MonkeyPatch, lookup_limit: int
) -> None:
    """matches_clerk reads back what the apply wrote: a row the database altered on its way in is caught,
    whether the written rows are looked up by id or picked out of the whole scope."""
    monkeypatch.setattr(mirror_snapshot, "_IDS_BY_LOOKUP", lookup_limit)
    assert harness.run().success
    users = [u["id"] for u in harness.emulator.store.iter_users()]
    harness.emulator.store.update_user(users[3], first_name="Written")
    _add_trigger(harness, "tamper", "BEFORE UPDATE", USERS, "NEW.first_name := 'Tampered'; RETURN NEW;")

    result = harness.run()

    assert result.success  # the check reports; it does not undo the sync
    assert not check_result(result, "matches_clerk", USERS)
    assert check_result(result, "matches_clerk", ORGANIZATIONS)
    assert harness.row(USERS, users[3])["first_name"] == "Tampered"


@pytest.mark.parametrize("lookup_limit", [20_000, 0], ids=["by-id", "whole-scope"])
def test_the_read_back_check_fails_when_a_first_sync_loads_a_row_not_as_clerk_holds_it(
    harness: SyncHarness, monkeypatch: pytest.MonkeyPatch, lookup_limit: int
) -> None:
    """A first sync COPYs straight into the empty tables: a row altered on its way in
    (here a BEFORE INSERT trigger, which COPY fires) is caught by matches_clerk too, and
    the live row counts the read-back reports are still the table's."""
    monkeypatch.setattr(mirror_snapshot, "_IDS_BY_LOOKUP", lookup_limit)
    MirrorDatabase(database_url=harness.database_url, db_schema=harness.schema).ensure_ready()
    victim = sorted(u["id"] for u in harness.emulator.store.iter_users())[3]
    _add_trigger(harness, "tamper", "BEFORE INSERT", USERS, f"IF NEW.id = '{victim}' THEN NEW.last_name := 'Tampered'; END IF; RETURN NEW;")

    result = harness.run()

    assert result.success  # the check reports; it does not undo the sync
    assert not check_result(result, "matches_clerk", USERS)
    assert check_result(result, "matches_clerk", ORGANIZATIONS)
    assert check_result(result, "matches_clerk", MEMBERSHIPS)
    assert harness.row(USERS, victim)["last_name"] == "Tampered"
    differing = result.get_asset_check_evaluations()
    users_check = next(e for e in differing if e.check_name == "matches_clerk" and e.asset_key.path[-1] == USERS)
    assert users_check.metadata["rows_still_differing"].value == 1
    live = {
        m.asset_key.path[-1]: m.metadata["live_rows"].value
        for m in result.asset_materializations_for_node("mirror_tables")
    }
    for entity, ids in clerk_ids(harness.emulator).items():
        if entity in live:
            assert live[entity] == len(ids), entity


def test_the_read_back_check_fails_when_a_first_sync_loads_a_row_that_then_is_missing(harness: SyncHarness) -> None:
    """A row the direct load never stored (a trigger dropping it) is a row still to insert."""
    MirrorDatabase(database_url=harness.database_url, db_schema=harness.schema).ensure_ready()
    victim = sorted(clerk_ids(harness.emulator)[ORGANIZATIONS])[0]
    _add_trigger(harness, "drop_one", "BEFORE INSERT", ORGANIZATIONS, f"IF NEW.id = '{victim}' THEN RETURN NULL; END IF; RETURN NEW;")

    result = harness.run()

    assert result.success
    assert not check_result(result, "matches_clerk", ORGANIZATIONS)
    assert check_result(result, "matches_clerk", USERS)
    assert victim not in harness.live_ids(ORGANIZATIONS)


def test_a_deleted_organization_takes_its_invitations_and_domains_along(harness: SyncHarness) -> None:
    store = harness.emulator.store
    assert harness.run().success
    owners = {i["organization_id"] for i in store.iter_invitations()} & {d["organization_id"] for d in store.iter_domains()}
    assert owners, "the emulator's data should give some organization both invitations and domains"
    org_id = sorted(owners)[0]
    invitations = {i["id"] for i in store.iter_invitations() if i["organization_id"] == org_id}
    domains = {d["id"] for d in store.iter_domains() if d["organization_id"] == org_id}
    store.delete_organization(org_id)

    result = harness.run(allow_mass_delete=True)

    assert result.success
    assert not invitations & harness.live_ids("organization_invitations")
    assert not domains & harness.live_ids("organization_domains")
    deletes = harness.changes_of_last_run().query("change_kind == 'delete'")
    reasons = dict(zip(deletes["entity_id"], deletes["reason"]))
    assert {reasons[i] for i in invitations | domains} == {f"cascade:organization {org_id}"}
    assert_mirror_equals_clerk(harness)


def test_invitations_accepted_or_revoked_and_domains_removed_are_followed_by_the_next_sync(harness: SyncHarness) -> None:
    store = harness.emulator.store
    organization_id = next(iter(store.iter_organizations()))["id"]
    for n in range(2):
        store.create_invitation(organization_id, f"invitee-{n}@example.com")
    assert harness.run().success
    pending = [i for i in store.iter_invitations() if i["status"] == "pending"]
    assert len(pending) >= 2
    store.accept_invitation(pending[0]["id"])
    store.revoke_invitation(pending[1]["id"])
    domain = next(iter(store.iter_domains()))
    store.delete_domain(domain["id"])

    # The emulator's instance holds a handful of domains: one is over the guard's share.
    result = harness.run(allow_mass_delete=True)

    assert result.success
    assert harness.row("organization_invitations", pending[0]["id"])["status"] == "accepted"
    assert harness.row("organization_invitations", pending[1]["id"])["status"] == "revoked"
    assert harness.row("organization_domains", domain["id"])["deleted_at"] is not None
    changes = harness.changes_of_last_run()
    assert ("organization_domains", domain["id"], "delete") in set(
        changes[["entity", "entity_id", "change_kind"]].itertuples(index=False, name=None)
    )
    assert_mirror_equals_clerk(harness)
