"""The mirror of Clerk (users, organizations, memberships) and the sync audit trail.

Revision ID: 0001_mirror_tables
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_mirror_tables"
down_revision = None
branch_labels = None
depends_on = None


def _mirror_bookkeeping() -> list[sa.Column]:
    """Columns every mirror table ends with: the whole Clerk object and sync bookkeeping."""
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
        "users",
        sa.Column("id", sa.Text, primary_key=True, comment="Clerk user id (user_...)."),
        sa.Column("primary_email", sa.Text),
        sa.Column("first_name", sa.Text),
        sa.Column("last_name", sa.Text),
        sa.Column("username", sa.Text),
        sa.Column("image_url", sa.Text),
        sa.Column("external_id", sa.Text),
        sa.Column("banned", sa.Boolean),
        sa.Column("public_metadata", JSONB),
        sa.Column("private_metadata", JSONB),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True)),
        *_mirror_bookkeeping(),
        schema=schema,
    )
    # Not unique on purpose: Clerk can hold one address on two users, and the mirror
    # never refuses what Clerk holds; the diff reports such addresses instead.
    op.create_index(
        "users_primary_email_live_idx",
        "users",
        [sa.text("lower(primary_email)")],
        schema=schema,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index("users_external_id_idx", "users", ["external_id"], schema=schema)

    op.create_table(
        "organizations",
        sa.Column("id", sa.Text, primary_key=True, comment="Clerk organization id (org_...)."),
        sa.Column("name", sa.Text),
        sa.Column("slug", sa.Text),
        sa.Column("image_url", sa.Text),
        sa.Column("members_count", sa.Integer),
        sa.Column("created_by", sa.Text),
        sa.Column("public_metadata", JSONB),
        sa.Column("private_metadata", JSONB),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True)),
        *_mirror_bookkeeping(),
        schema=schema,
    )
    op.create_index("organizations_slug_idx", "organizations", ["slug"], schema=schema)

    op.create_table(
        "organization_memberships",
        sa.Column("id", sa.Text, primary_key=True, comment="Clerk membership id (orgmem_...)."),
        # No foreign keys to users/organizations: Clerk can list a membership whose user
        # the mirror does not hold yet, and the mirror never refuses what Clerk holds.
        sa.Column("organization_id", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("role", sa.Text),
        sa.Column("permissions", JSONB),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True)),
        *_mirror_bookkeeping(),
        schema=schema,
    )
    op.create_index(
        "organization_memberships_live_pair_key",
        "organization_memberships",
        ["organization_id", "user_id"],
        unique=True,
        schema=schema,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index("organization_memberships_user_idx", "organization_memberships", ["user_id"], schema=schema)

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("run_id", sa.Text, comment="Dagster run id."),
        sa.Column("mode", sa.Text, nullable=False, comment="full | scoped | partial"),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("scope", JSONB, nullable=False),
        sa.Column("started_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("finished_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("outcome", sa.Text, nullable=False, comment="succeeded | dry_run | refused | failed"),
        sa.Column("counts", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("message", sa.Text),
        schema=schema,
    )
    op.create_index("sync_runs_started_at_idx", "sync_runs", ["started_at"], schema=schema)

    op.create_table(
        "sync_changes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "sync_run_id",
            sa.BigInteger,
            sa.ForeignKey(f"{schema}.sync_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("entity", sa.Text, nullable=False),
        sa.Column("entity_id", sa.Text, nullable=False),
        sa.Column("change_kind", sa.Text, nullable=False, comment="insert | update | restore | delete"),
        sa.Column("changes", JSONB, comment="Changed column -> [from, to]; raw is named, not copied."),
        sa.Column("reason", sa.Text),
        schema=schema,
    )
    op.create_index("sync_changes_entity_idx", "sync_changes", ["entity", "entity_id"], schema=schema)
    op.create_index("sync_changes_run_idx", "sync_changes", ["sync_run_id"], schema=schema)


def downgrade(schema: str) -> None:
    for table in ("sync_changes", "sync_runs", "organization_memberships", "organizations", "users"):
        op.drop_table(table, schema=schema)
