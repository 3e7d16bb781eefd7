"""Four more mirrored lists: organization roles, permissions, invitations and domains;
and the inbox's entity check widened to their webhook events.

Each table holds the columns its description in ``sync_pipeline.entities.catalog`` names,
then the bookkeeping every mirror table ends with (raw, raw_digest, synced_at,
deleted_at). Written out here rather than read from the descriptions: a migration is what
the schema was at this revision, whatever the descriptions say later.

Revision ID: 0005_more_mirrored_lists
Revises: 0004_webhook_event_problems
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_more_mirrored_lists"
down_revision = "0004_webhook_event_problems"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", sa.TIMESTAMP(timezone=True)), sa.Column("updated_at", sa.TIMESTAMP(timezone=True))]


def _mirror_bookkeeping() -> list[sa.Column]:
    """As in 0001: the whole Clerk object and sync bookkeeping."""
    return [
        sa.Column("raw", JSONB, nullable=False, comment="The whole Clerk object, as Clerk sent it."),
        sa.Column(
            "raw_digest",
            sa.Text,
            nullable=False,
            comment="md5 of the canonical raw object: lets a sync see a change without reading raw back.",
        ),
        sa.Column("synced_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column(
            "deleted_at",
            sa.TIMESTAMP(timezone=True),
            nullable=True,
            comment="Null while the object exists in Clerk; set when a sync finds it gone.",
        ),
    ]


def upgrade(schema: str) -> None:
    op.create_table(
        "organization_permissions",
        sa.Column("id", sa.Text, primary_key=True, comment="Clerk permission id (perm_...)."),
        sa.Column("key", sa.Text, comment="org:sys_memberships:read, org:invoices:read, ..."),
        sa.Column("name", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("type", sa.Text, comment="system | user"),
        *_timestamps(),
        *_mirror_bookkeeping(),
        schema=schema,
    )
    # Not unique: the mirror never refuses what Clerk holds.
    op.create_index("organization_permissions_key_idx", "organization_permissions", ["key"], schema=schema)

    op.create_table(
        "organization_roles",
        sa.Column("id", sa.Text, primary_key=True, comment="Clerk role id (role_...)."),
        sa.Column("key", sa.Text, comment="org:admin, org:member, org:...: what a membership's role holds."),
        sa.Column("name", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("is_creator_eligible", sa.Boolean),
        sa.Column("permissions", JSONB, comment="The keys of the permissions the role grants."),
        *_timestamps(),
        *_mirror_bookkeeping(),
        schema=schema,
    )
    op.create_index("organization_roles_key_idx", "organization_roles", ["key"], schema=schema)

    op.create_table(
        "organization_invitations",
        sa.Column("id", sa.Text, primary_key=True, comment="Clerk invitation id (orginv_...)."),
        # No foreign key, as for memberships: the mirror never refuses what Clerk holds.
        sa.Column("organization_id", sa.Text),
        sa.Column("email_address", sa.Text),
        sa.Column("role", sa.Text, comment="The key of the role the invitee gets."),
        sa.Column("status", sa.Text, comment="pending | accepted | revoked | expired (others may appear)"),
        sa.Column("inviter_id", sa.Text, comment="The user who sent it; null when sent from the dashboard."),
        sa.Column("expires_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("public_metadata", JSONB),
        sa.Column("private_metadata", JSONB),
        *_timestamps(),
        *_mirror_bookkeeping(),
        schema=schema,
    )
    op.create_index(
        "organization_invitations_organization_idx", "organization_invitations", ["organization_id"], schema=schema
    )
    op.create_index(
        "organization_invitations_email_live_idx",
        "organization_invitations",
        [sa.text("lower(email_address)")],
        schema=schema,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )

    op.create_table(
        "organization_domains",
        sa.Column("id", sa.Text, primary_key=True, comment="Clerk domain id (orgdmn_...)."),
        sa.Column("organization_id", sa.Text),
        sa.Column("name", sa.Text, comment="The domain name: example.com."),
        sa.Column("enrollment_mode", sa.Text),
        sa.Column("verification_status", sa.Text, comment="The affiliation verification's status; null if none."),
        *_timestamps(),
        *_mirror_bookkeeping(),
        schema=schema,
    )
    op.create_index("organization_domains_organization_idx", "organization_domains", ["organization_id"], schema=schema)
    op.create_index("organization_domains_name_idx", "organization_domains", ["name"], schema=schema)

    # The inbox stores the events of the new lists under their singular names.
    op.drop_constraint("webhook_events_entity_check", "webhook_events", schema=schema, type_="check")
    op.create_check_constraint(
        "webhook_events_entity_check",
        "webhook_events",
        "entity IS NULL OR entity IN ('user', 'organization', 'membership', 'permission', 'role', 'invitation', 'domain')",
        schema=schema,
    )


def downgrade(schema: str) -> None:
    op.drop_constraint("webhook_events_entity_check", "webhook_events", schema=schema, type_="check")
    op.execute(
        f'UPDATE "{schema}".webhook_events SET entity = NULL, status = \'ignored\' '
        "WHERE entity NOT IN ('user', 'organization', 'membership')"
    )
    op.create_check_constraint(
        "webhook_events_entity_check",
        "webhook_events",
        "entity IS NULL OR entity IN ('user', 'organization', 'membership')",
        schema=schema,
    )
    for table in ("organization_domains", "organization_invitations", "organization_roles", "organization_permissions"):
        op.drop_table(table, schema=schema)
