"""Why an inbox event is 'invalid', and the pending events whose ids cannot be Clerk ids set aside.

Before this revision the receiver stored any id a signed body carried; an id such as
``..`` or one of 10,000 characters then failed (or widened) every partial sync its
batch joined. Such pending events become 'invalid' here, with the same words
``inbox.classify`` now gives: the ids are checked against the shape of
``sync_pipeline.clerk.ids`` (letters, digits, '_' and '-', at most 128 characters).

Revision ID: 0004_webhook_event_problems
Revises: 0003_alerts_sent
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_webhook_event_problems"
down_revision = "0003_alerts_sent"
branch_labels = None
depends_on = None

_CLERK_ID = "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"


def upgrade(schema: str) -> None:
    op.add_column(
        "webhook_events",
        sa.Column("problem", sa.Text, comment="Why the event is 'invalid': which id, and what is wrong with it."),
        schema=schema,
    )
    for column, name in (("user_id", "user id"), ("organization_id", "organization id")):
        op.execute(
            sa.text(
                f"""
                UPDATE "{schema}".webhook_events
                SET status = 'invalid', user_id = NULL, organization_id = NULL, object_id = NULL,
                    problem = CASE WHEN length({column}) > 128
                                   THEN '{name} ' || length({column}) || ' characters long (at most 128)'
                                   ELSE '{name} has characters a Clerk id never has (only letters, digits, ''_'' and ''-'')' END
                WHERE status = 'pending' AND {column} IS NOT NULL AND {column} !~ '{_CLERK_ID}'
                """
            )
        )


def downgrade(schema: str) -> None:
    op.drop_column("webhook_events", "problem", schema=schema)
