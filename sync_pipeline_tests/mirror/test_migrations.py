"""The mirror schema is created by Alembic, idempotently, in the schema SYNC_SCHEMA names."""

import pytest
import sqlalchemy as sa

from sync_pipeline.entities import catalog

from sync_pipeline.errors import ConfigurationError
from sync_pipeline.mirror.database import create_mirror_engine, upgrade_schema, validate_schema_name


def _columns(engine: sa.Engine, schema: str, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table, schema=schema)}


def test_upgrade_creates_the_contract_tables_and_is_idempotent(engine: sa.Engine, schema: str) -> None:
    upgrade_schema(engine, schema)
    upgrade_schema(engine, schema)  # a second run finds nothing to do

    tables = set(sa.inspect(engine).get_table_names(schema=schema))
    assert {
        "users", "organizations", "organization_memberships", "sync_runs", "sync_changes", "webhook_events", "alembic_version"
    } <= tables
    assert {
        "id", "primary_email", "first_name", "last_name", "username", "image_url", "external_id", "banned",
        "public_metadata", "private_metadata", "created_at", "updated_at", "raw", "synced_at", "deleted_at",
    } <= _columns(engine, schema, "users")
    assert {"id", "name", "slug", "image_url", "members_count", "created_by", "raw", "deleted_at"} <= _columns(
        engine, schema, "organizations"
    )
    assert {"id", "organization_id", "user_id", "role", "permissions", "raw", "deleted_at"} <= _columns(
        engine, schema, "organization_memberships"
    )
    with engine.connect() as connection:
        version = connection.execute(sa.text(f'SELECT version_num FROM "{schema}".alembic_version')).scalar_one()
    assert version == "0005_more_mirrored_lists"
    # Every described entity has its table, with exactly the description's columns and the bookkeeping.
    for entity in catalog.ENTITIES:
        assert _columns(engine, schema, entity.name) == {*entity.column_names, "synced_at", "deleted_at"}, entity.name


def test_one_live_membership_per_pair_is_enforced(engine: sa.Engine, schema: str) -> None:
    upgrade_schema(engine, schema)
    insert = sa.text(
        f'INSERT INTO "{schema}".organization_memberships (id, organization_id, user_id, raw, raw_digest, deleted_at) '
        "VALUES (:id, 'org_1', 'user_1', '{}', 'x', :deleted_at)"
    )
    with engine.begin() as connection:
        connection.execute(insert, {"id": "orgmem_old", "deleted_at": "2026-01-01T00:00:00Z"})
        connection.execute(insert, {"id": "orgmem_live", "deleted_at": None})
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(insert, {"id": "orgmem_second_live", "deleted_at": None})


@pytest.mark.parametrize("name", ["Clerk", "a-b", "x; drop table users", "", "1abc"])
def test_schema_names_that_are_not_plain_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="SYNC_SCHEMA"):
        validate_schema_name(name)


@pytest.mark.parametrize(
    ("url", "message"),
    [("", "DATABASE_URL is not set"), ("not a url", "not a valid database URL"), ("mysql://x@y/z", "PostgreSQL")],
)
def test_bad_database_urls_get_one_line_naming_the_variable(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_mirror_engine(url)


def test_the_inbox_accepts_every_entity_the_descriptions_name(engine: sa.Engine, schema: str) -> None:
    from sync_pipeline.webhooks import inbox

    upgrade_schema(engine, schema)
    for n, entity in enumerate(catalog.ENTITIES):
        payload = {"type": entity.event_types[0], "data": {"id": f"{entity.id_prefix}{n}"}}
        stored = inbox.store_delivery(engine, schema, svix_id=f"msg_{n}", svix_timestamp=None, payload=payload)
        assert stored.first_delivery, entity.name
