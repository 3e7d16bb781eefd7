"""Alerts already delivered, by fingerprint: a persisting problem is announced once.

Revision ID: 0003_alerts_sent
Revises: 0002_webhook_events
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_alerts_sent"
down_revision = "0002_webhook_events"
branch_labels = None
depends_on = None


def upgrade(schema: str) -> None:
    op.create_table(
        "alerts_sent",
        sa.Column("fingerprint", sa.Text, primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("first_sent_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_seen_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("times_seen", sa.Integer, nullable=False, server_default="1"),
        schema=schema,
    )


def downgrade(schema: str) -> None:
    op.drop_table("alerts_sent", schema=schema)
