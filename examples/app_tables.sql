-- The demo application's own tables: what a product keeps per Clerk user and membership.
-- `sync-pipeline app-tables demo` creates them; on your own database:
--     psql "$DATABASE_URL" -f examples/app_tables.sql
-- examples/app_tables.yaml declares how the sync keeps each one consistent with Clerk.

CREATE SCHEMA IF NOT EXISTS app;

-- Exactly one settings row per user. Its own key is a uuid; the Clerk id is plain text.
CREATE TABLE IF NOT EXISTS app.user_settings (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_user_id text NOT NULL,
    theme         text NOT NULL,
    weekly_digest boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A profile per (user, organization) membership, keyed by the pair itself.
CREATE TABLE IF NOT EXISTS app.user_profile (
    user_id         text NOT NULL,
    organization_id text NOT NULL,
    display_title   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, organization_id)
);

-- Tasks a user owns: they go when the user goes.
CREATE TABLE IF NOT EXISTS app.tasks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id   varchar(64) NOT NULL,
    title      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Comments outlive their author, anonymized.
CREATE TABLE IF NOT EXISTS app.comments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author_id   text,
    author_name text,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
