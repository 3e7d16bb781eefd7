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
    MILLIS,
    TEXT,
    ByParent,
    Endpoints,
    Entity,
    Parent,
    clerk_object,
    col,
)
from sync_pipeline.entities.readers import permission_keys, primary_email, verification_status

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

PERMISSIONS = clerk_object(
    "organization_permissions",
    singular="permission",
    id_prefix="perm_",
    columns=(
        col("key", TEXT),
        col("name", TEXT),
        col("description", TEXT),
        col("type", TEXT),
    ),
    # GET /organization_permissions: limit/offset, no documented default order.
    endpoints=Endpoints(list_path="/organization_permissions", by_id_path="/organization_permissions/{id}"),
    event_prefix="permission",
    scope_ids="permission_ids",
)

ROLES = clerk_object(
    "organization_roles",
    singular="role",
    id_prefix="role_",
    columns=(
        col("key", TEXT),
        col("name", TEXT),
        col("description", TEXT),
        col("is_creator_eligible", BOOL),
        # The keys of the permissions it grants (Clerk embeds whole Permission objects).
        col("permissions", JSON, read=permission_keys),
    ),
    # GET /organization_roles: limit/offset, newest first unless order_by says otherwise.
    endpoints=Endpoints(list_path="/organization_roles", by_id_path="/organization_roles/{id}"),
    event_prefix="role",
    scope_ids="role_ids",
)

INVITATIONS = clerk_object(
    "organization_invitations",
    singular="invitation",
    id_prefix="orginv_",
    columns=(
        col("organization_id", TEXT),
        col("email_address", TEXT),
        col("role", TEXT),
        col("status", TEXT),
        col("inviter_id", TEXT),
        col("expires_at", MILLIS),
        col("public_metadata", JSON),
        col("private_metadata", JSON),
    ),
    endpoints=Endpoints(
        # GET /organization_invitations: every status unless filtered, newest first by default.
        list_path="/organization_invitations",
        by_parent=(
            # "Any invitations created as a result of an Organization Domain are not
            # included in the results" (the spec): not every invitation of the organization.
            ByParent(
                "organization_id",
                "/organizations/{id}/invitations",
                "/organizations/{id}",
                {"order_by": "+created_at"},
                complete=False,
            ),
        ),
    ),
    event_prefix="organizationInvitation",
    event_actions=("created", "accepted", "revoked"),
    parents=(Parent("organization_id", "organizations"),),
    # Copies of other rows, which change without an invitation event and which a sync of
    # that row does not re-read here: the organization's public data (which the instance-
    # wide list embeds and the organization's own list does not), the inviter's (the user
    # row), the role's name (the role row). inviter_id and role join to them.
    raw_leaves_out=("public_organization_data", "public_inviter_data", "role_name"),
)

DOMAINS = clerk_object(
    "organization_domains",
    singular="domain",
    id_prefix="orgdmn_",
    columns=(
        col("organization_id", TEXT),
        col("name", TEXT),
        col("enrollment_mode", TEXT),
        col("verification_status", TEXT, read=verification_status),
    ),
    endpoints=Endpoints(
        # GET /organization_domains: limit/offset, newest first by default.
        list_path="/organization_domains",
        # The organization's own list takes no order_by.
        by_parent=(ByParent("organization_id", "/organizations/{id}/domains", "/organizations/{id}"),),
    ),
    event_prefix="organizationDomain",
    parents=(Parent("organization_id", "organizations"),),
    # Repeats the organization row (its name, slug, image): a renamed organization would
    # otherwise rewrite every domain's raw.
    raw_leaves_out=("public_organization_data",),
)

# Parents before children: the order upserts take, and deletes the reverse.
ENTITIES: tuple[Entity, ...] = (USERS, ORGANIZATIONS, MEMBERSHIPS, PERMISSIONS, ROLES, INVITATIONS, DOMAINS)
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


def scoping_parents(entity: Entity) -> tuple[Parent, ...]:
    """The parents through which a scoped sync reaches ``entity``: those a scope names by id
    whose list of its children is complete."""
    complete = {b.parent_column for b in entity.endpoints.by_parent if b.complete}
    return tuple(p for p in entity.parents if p.column in complete and describe(p.entity).scope_ids)


def in_scoped_syncs(entity: Entity) -> bool:
    """Whether a scoped sync can cover rows of ``entity``: a scope names them by id, or names
    a parent whose complete list holds them. Else only a full sync follows it."""
    return entity.scope_ids is not None or bool(scoping_parents(entity))


def _check_order() -> None:
    seen: set[str] = set()
    for entity in ENTITIES:
        for parent in entity.parents:
            if parent.entity not in seen:
                raise RuntimeError(f"{entity.name}: parent {parent.entity} must be described before it")
        seen.add(entity.name)


_check_order()
