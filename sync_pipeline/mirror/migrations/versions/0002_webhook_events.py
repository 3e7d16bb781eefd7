"""The webhook inbox: every verified Clerk delivery, once per Svix message id.

Revision ID: 0002_webhook_events
Revises: 0001_mirror_tables
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_webhook_events"
down_revision = "0001_mirror_tables"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "webhook_events",
        sa.Column(
            "svix_id",
            sa.Text,
            primary_key=True,
            comment="The svix-id header: the same on every retry and replay, so a redelivery is one row.",
        ),
        sa.Column("event_type", sa.Text, nullable=False, comment="The body's type, e.g. user.updated."),
        sa.Column(
            "clerk_timestamp",
            sa.TIMESTAMP(timezone=True),
            comment="The body's timestamp (milliseconds, or seconds when below 10^11).",
        ),
        sa.Column("svix_timestamp", sa.TIMESTAMP(timezone=True), comment="The svix-timestamp header of the first delivery."),
        sa.Column("received_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_received_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("delivery_count", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("payload", JSONB, nullable=False, comment="The parsed body, as first delivered."),
        sa.Column("entity", sa.Text, comment="user | organization | membership; null for types the mirror ignores."),
        sa.Column("object_id", sa.Text, comment="data.id"),
        sa.Column("user_id", sa.Text, comment="user.*: data.id; memberships: data.public_user_data.user_id."),
        sa.Column("organization_id", sa.Text, comment="organization.*: data.id; memberships: data.organization.id."),
        sa.Column("status", sa.Text, nullable=False, comment="pending | ignored | invalid | processed"),
        sa.Column("processed_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("processed_run_id", sa.Text, comment="Dagster run id of the sync that processed the event."),
        sa.CheckConstraint(
            "status IN ('pending', 'ignored', 'invalid', 'processed')", name="webhook_events_status_check"
        ),
        sa.CheckConstraint(
            "entity IS NULL OR entity IN ('user', 'organization', 'membership')", name="webhook_events_entity_check"
        ),
        schema=schema,
    )
    op.create_index("webhook_events_status_received_idx", "webhook_events", ["status", "received_at"], schema=schema)
    op.create_index("webhook_events_received_idx", "webhook_events", ["received_at"], schema=schema)
    # inbox_health reads the events processed in the last hour; without this it would
    # scan every processed event ever received.
    op.create_index("webhook_events_processed_idx", "webhook_events", ["processed_at"], schema=schema)


def downgrade(schema: str) -> None:
    op.drop_table("webhook_events", schema=schema)
