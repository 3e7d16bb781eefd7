"""Every Clerk list the mirror holds, described once, in dependency order (parents first).

To mirror another list: describe it here (columns and where Clerk's object holds them,
parents, endpoints, webhook prefix, id prefix), add its table in a migration, and give
the emulator its data. ``docs/adding-an-entity.md`` walks through one.
"""

from __future__ import annotations

from sync_pipeline.entities.description import (
    BOOL,
    CURSOR_WINDOWS,
    INT,
    JSON,
    TEXT,
    ByParent,
    Endpoints,
    Entity,
    Parent,
    clerk_object,
    col,
)
from sync_pipeline.entities.readers import primary_email

USERS = clerk_object(
    "users",
    singular="user",
    id_prefix="user_",
    columns=(
        col("primary_email", TEXT, read=primary_email),
        col("first_name", TEXT),
        col("last_name", TEXT),
        col("username", TEXT),
        col("image_url", TEXT),
        col("external_id", TEXT),
        col("banned", BOOL),
        col("public_metadata", JSON),
        col("private_metadata", JSON),
    ),
    endpoints=Endpoints(
        list_path="/users",
        paging=CURSOR_WINDOWS,
        by_id_path="/users/{id}",
        ids_filter="user_id",
    ),
    event_prefix="user",
    scope_ids="user_ids",
)

ORGANIZATIONS = clerk_object(
    "organizations",
    singular="organization",
    id_prefix="org_",
    columns=(
        col("name", TEXT),
        col("slug", TEXT),
        col("image_url", TEXT),
        col("members_count", INT),
        col("created_by", TEXT),
        col("public_metadata", JSON),
        col("private_metadata", JSON),
    ),
    endpoints=Endpoints(
        list_path="/organizations",
        list_params={"order_by": "+created_at", "include_members_count": "true"},
        by_id_path="/organizations/{id}",
        by_id_params={"include_members_count": "true"},
    ),
    event_prefix="organization",
    scope_ids="organization_ids",
)

MEMBERSHIPS = clerk_object(
    "organization_memberships",
    singular="membership",
    id_prefix="orgmem_",
    columns=(
        col("organization_id", TEXT, "organization.id"),
        col("user_id", TEXT, "public_user_data.user_id"),
        col("role", TEXT),
        col("permissions", JSON),
    ),
    endpoints=Endpoints(
        list_path="/organization_memberships",
        by_parent=(
            # The user-side list takes no order_by.
            ByParent("user_id", "/users/{id}/organization_memberships", "/users/{id}"),
            ByParent(
                "organization_id", "/organizations/{id}/memberships", "/organizations/{id}", {"order_by": "+created_at"}
            ),
        ),
    ),
    event_prefix="organizationMembership",
    parents=(Parent("user_id", "users"), Parent("organization_id", "organizations", counts_children=True)),
    embedded_private=("organization",),
    unique_together=("organization_id", "user_id"),
)

# Parents before children: the order upserts take, and deletes the reverse.
ENTITIES: tuple[Entity, ...] = (USERS, ORGANIZATIONS, MEMBERSHIPS)
BY_NAME: dict[str, Entity] = {entity.name: entity for entity in ENTITIES}
BY_SINGULAR: dict[str, Entity] = {entity.singular: entity for entity in ENTITIES}
BY_EVENT_PREFIX: dict[str, Entity] = {entity.event_prefix: entity for entity in ENTITIES}


def describe(name: str) -> Entity:
    """The description of the entity named ``name`` (its table name)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown entity {name!r}; expected one of {tuple(BY_NAME)}") from None


def children_of(name: str) -> tuple[tuple[Entity, Parent], ...]:
    """The entities with a parent column naming ``name``, each with that column."""
    return tuple((child, parent) for child in ENTITIES for parent in child.parents if parent.entity == name)


def _check_order() -> None:
    seen: set[str] = set()
    for entity in ENTITIES:
        for parent in entity.parents:
            if parent.entity not in seen:
                raise RuntimeError(f"{entity.name}: parent {parent.entity} must be described before it")
        seen.add(entity.name)


_check_order()
