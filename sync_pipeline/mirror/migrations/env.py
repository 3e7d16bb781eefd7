"""Alembic environment: runs the mirror's migrations on the connection the pipeline hands in.

The schema is chosen at run time (SYNC_SCHEMA), so it travels in ``config.attributes``
and the version table lives inside that schema: two mirrors in one database never share
a migration history.
"""

from alembic import context
from sqlalchemy import text

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]

# PostgreSQL checks CREATE on the database before IF NOT EXISTS looks, so a role that owns
# its schema but may not create others (deploy/grants.sql) must not ask once it exists.
# upgrade_schema holds an advisory lock around this: no other upgrade creates it meanwhile.
if connection.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}).first() is None:
    connection.execute(text(f'CREATE SCHEMA "{schema}"'))
context.configure(
    connection=connection,
    version_table_schema=schema,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations(schema=schema)
