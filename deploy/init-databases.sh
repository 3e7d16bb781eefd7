#!/bin/sh
# Run once by the postgres image, at its first start (docker-entrypoint-initdb.d), as the
# superuser: one server, two databases. `dagster` holds Dagster's own storage and belongs to
# the role `dagster`; `app` holds the mirror, written by the least-privilege role
# `clerk_sync` that deploy/grants.sql creates there (grants.sql is mounted outside
# docker-entrypoint-initdb.d, because the image would run it in the wrong database, postgres).
# Both roles get POSTGRES_PASSWORD: the database URLs in docker-compose.yml use it.
set -eu

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
    -v password="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE dagster LOGIN PASSWORD :'password';
CREATE DATABASE dagster OWNER dagster;
CREATE DATABASE app;
SQL

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname app \
    -f "${SYNC_GRANTS_SQL:-/opt/sync_pipeline/grants.sql}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname app \
    -v password="$POSTGRES_PASSWORD" <<'SQL'
ALTER ROLE "clerk_sync" PASSWORD :'password';
SQL
