"""Mirror tables leave a tenth of each page free, so a sync's updates can stay on their page.

A changed Clerk object rewrites its row (raw, synced_at); when the new version fits on the
same page and no indexed column changed, Postgres updates it in place (a HOT update): no
index entry to add, and after a checkpoint one page to log instead of one per index.
Tables filled by COPY pack pages full, which rules that out. Applies to pages written from
now on (a first sync's, every update's); VACUUM FULL would repack existing ones.

Revision ID: 0004_mirror_fillfactor
Revises: 0003_alerts_sent
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004_mirror_fillfactor"
down_revision = "0003_alerts_sent"
branch_labels = None
depends_on = None

TABLES = ("users", "organizations", "organization_memberships")


def upgrade(schema: str) -> None:
    for table in TABLES:
        op.execute(f'ALTER TABLE "{schema}".{table} SET (fillfactor = 90)')


def downgrade(schema: str) -> None:
    for table in TABLES:
        op.execute(f'ALTER TABLE "{schema}".{table} RESET (fillfactor)')
