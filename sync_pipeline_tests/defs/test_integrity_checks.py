"""The mirror's integrity checks find what they claim to, with the right totals and samples."""

from __future__ import annotations

import sqlalchemy as sa
from dagster import AssetChecksDefinition

from sync_pipeline.defs.checks import MIRROR_TABLE_CHECKS, SAMPLE_LIMIT, live_primary_emails_distinct
from sync_pipeline.defs.resources import MirrorDatabase


def _check(name: str) -> AssetChecksDefinition:
    return next(c for c in MIRROR_TABLE_CHECKS if any(k.name == name for k in c.check_keys))


def _insert(engine: sa.Engine, schema: str, table: str, rows: list[dict]) -> None:
    columns = list(rows[0])
    names = ", ".join([*columns, "raw", "raw_digest", "deleted_at"])
    values = ", ".join([*(f":{c}" for c in columns), "'{}'::jsonb", "'digest'", "CASE WHEN :gone THEN now() END"])
    with engine.begin() as connection:
        connection.execute(
            sa.text(f'INSERT INTO "{schema}".{table} ({names}) VALUES ({values})'),
            [{"gone": False, **row} for row in rows],
        )


def _ready_mirror(database_url: str, schema: str) -> MirrorDatabase:
    mirror_db = MirrorDatabase(database_url=database_url, db_schema=schema)
    mirror_db.ensure_ready()
    return mirror_db


def test_a_membership_of_a_soft_deleted_organization_or_user_dangles(database_url: str, engine: sa.Engine, schema: str) -> None:
    mirror_db = _ready_mirror(database_url, schema)
    _insert(engine, schema, "users", [{"id": "user_live"}, {"id": "user_gone", "gone": True}])
    _insert(engine, schema, "organizations", [{"id": "org_live"}, {"id": "org_gone", "gone": True}])
    _insert(engine, schema, "organization_memberships", [
        {"id": "orgmem_1", "user_id": "user_live", "organization_id": "org_live"},
        {"id": "orgmem_2", "user_id": "user_live", "organization_id": "org_gone"},  # organization soft-deleted
        {"id": "orgmem_3", "user_id": "user_gone", "organization_id": "org_live"},  # user soft-deleted
        {"id": "orgmem_4", "user_id": "user_never", "organization_id": "org_never"},  # neither in the mirror
        {"id": "orgmem_5", "user_id": "user_gone", "organization_id": "org_gone", "gone": True},  # not live itself
    ])

    result = _check("memberships_point_at_live_rows")(mirror_db=mirror_db)

    assert not result.passed
    assert result.metadata["dangling_memberships"].value == 3
    assert [(r["id"], r["user_missing"], r["organization_missing"]) for r in result.metadata["sample"].value] == [
        ("orgmem_2", False, True),
        ("orgmem_3", True, False),
        ("orgmem_4", True, True),
    ]


def test_the_total_counts_every_dangling_row_while_the_sample_stops_at_its_limit(
    database_url: str, engine: sa.Engine, schema: str
) -> None:
    mirror_db = _ready_mirror(database_url, schema)
    dangling = SAMPLE_LIMIT + 5
    _insert(engine, schema, "organizations", [{"id": "org_live"}])
    _insert(engine, schema, "organization_domains", [
        *({"id": f"orgdmn_{n:03}", "organization_id": "org_gone"} for n in range(dangling)),
        {"id": "orgdmn_ok", "organization_id": "org_live"},
    ])

    result = _check("domains_point_at_live_rows")(mirror_db=mirror_db)

    assert result.metadata["dangling_domains"].value == dangling
    assert [r["id"] for r in result.metadata["sample"].value] == [f"orgdmn_{n:03}" for n in range(SAMPLE_LIMIT)]


def test_a_mirror_with_every_parent_live_passes(database_url: str, engine: sa.Engine, schema: str) -> None:
    mirror_db = _ready_mirror(database_url, schema)
    _insert(engine, schema, "users", [{"id": "user_live"}])
    _insert(engine, schema, "organizations", [{"id": "org_live"}])
    _insert(engine, schema, "organization_memberships", [{"id": "orgmem_1", "user_id": "user_live", "organization_id": "org_live"}])

    result = _check("memberships_point_at_live_rows")(mirror_db=mirror_db)

    assert result.passed
    assert result.metadata["dangling_memberships"].value == 0


def test_a_primary_address_shared_by_two_live_users_is_found_whatever_its_case(
    database_url: str, engine: sa.Engine, schema: str
) -> None:
    mirror_db = _ready_mirror(database_url, schema)
    _insert(engine, schema, "users", [
        {"id": "user_b", "primary_email": "Ann@Example.com"},
        {"id": "user_a", "primary_email": "ann@example.com"},
        {"id": "user_gone", "primary_email": "ANN@example.com", "gone": True},  # not live: not counted
        {"id": "user_c", "primary_email": "bob@example.com"},
        {"id": "user_d", "primary_email": "bob@example.com", "gone": True},
        {"id": "user_e", "primary_email": None},
        {"id": "user_f", "primary_email": None},
    ])

    result = live_primary_emails_distinct(mirror_db=mirror_db)

    assert not result.passed
    assert result.metadata["shared_addresses"].value == 1
    assert result.metadata["sample"].value == [{"email": "ann@example.com", "user_ids": ["user_a", "user_b"]}]
