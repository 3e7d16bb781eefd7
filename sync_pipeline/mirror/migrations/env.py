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

connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
context.configure(
    connection=connection,
    version_table_schema=schema,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations(schema=schema)
