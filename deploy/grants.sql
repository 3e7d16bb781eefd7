-- deploy/grants.sql: a role that writes the Clerk mirror, and can do nothing else.
--
-- Run once, as the database's owner or a superuser, in the database that holds the mirror:
--
--     psql "$ADMIN_DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/grants.sql
--
-- then give the sync (and the webhook receiver) DATABASE_URL=postgresql://clerk_sync:…@host/db.
-- Names: the role "clerk_sync" and the schema "clerk" (SYNC_SCHEMA). To use others, replace
-- every "clerk_sync" and "clerk" below (the quotes included), and the password.
--
-- What the role gets, and why:
--   * LOGIN, and nothing else on the cluster: no superuser, no CREATEDB, no CREATEROLE,
--     no replication, no BYPASSRLS, and a connection limit;
--   * CONNECT on this database (the sync connects) and TEMPORARY (each apply COPYs its rows
--     into temporary staging tables that die with its transaction);
--   * ownership of its own schema, and only of it: every run applies the Alembic migrations
--     first (they create and alter the mirror's tables, the webhook inbox and the audit trail),
--     and then reads and writes those tables. Advisory locks (the apply's, the migrations')
--     need no grant.
-- What it does not get: any privilege on any other schema or table (public included: from
-- PostgreSQL 15 on, nobody but its owner may create in public; on older servers, run
-- REVOKE CREATE ON SCHEMA public FROM PUBLIC), nor CREATE on the database, so it cannot
-- make other schemas.

CREATE ROLE "clerk_sync" LOGIN PASSWORD 'change-me'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 20;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO "clerk_sync"', current_database());
END
$$;

CREATE SCHEMA IF NOT EXISTS "clerk" AUTHORIZATION "clerk_sync";
ALTER SCHEMA "clerk" OWNER TO "clerk_sync";

-- A mirror created earlier by another role: hand its tables (and their identity sequences) over.
DO $$
DECLARE
    name text;
BEGIN
    FOR name IN SELECT relname FROM pg_class WHERE relnamespace = '"clerk"'::regnamespace AND relkind IN ('r', 'p') LOOP
        EXECUTE format('ALTER TABLE "clerk".%I OWNER TO "clerk_sync"', name);
    END LOOP;
END
$$;
