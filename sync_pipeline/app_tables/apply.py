"""Writing an application table's plan: set-based SQL inside the sync's apply transaction.

``mirror.apply.apply_plan`` calls :func:`clean_up` before it touches the mirror (the rows
a user's data points at still exist, so a hard delete never meets a dependant, and no
foreign key ``ON DELETE`` fires behind the audit trail) and :func:`provision` after its
upserts (a created row points at a user or membership the mirror now holds).

Each write is one statement over the planned rows (``unnest`` of the keys), and each
re-checks what the plan saw, because the application keeps writing while a sync runs:

- an orphan is deleted or anonymized only while it still points at the same gone ids;
- a duplicate is deleted only while the row kept in its place still exists;
- a row is created only when none exists for its user or membership by now
  (``NOT EXISTS``, and ``ON CONFLICT DO NOTHING`` for a concurrent insert).

Every row written gets a ``sync_changes`` row (entity = the table's ``schema.table``,
entity_id = its primary key's text) from the statement's own ``RETURNING``, so the audit
trail lists exactly the rows written. It never copies what anonymization removes; a
deleted duplicate's content is kept there, as it belonged to a live user.
"""

from __future__ import annotations

import json
import logging

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync_pipeline.app_tables.catalog import quote
from sync_pipeline.app_tables.config import MEMBERSHIP
from sync_pipeline.diff.plan import ANONYMIZE, DELETE, INSERT, AppTablePlan

logger = logging.getLogger(__name__)


def _texts(frame: pd.DataFrame, column: str) -> list[str | None]:
    """A text column as a list for a text[] parameter, nulls as None."""
    return [None if pd.isna(value) else str(value) for value in frame[column].tolist()]


def _changes_table(schema: str) -> str:
    return f'"{schema}".sync_changes'


def _delete_orphans(connection: Connection, schema: str, plan: AppTablePlan, sync_run_id: int) -> int:
    orphans = plan.orphans[plan.orphans["action"] == DELETE]
    if orphans.empty:
        return 0
    t = plan.table
    result = connection.execute(
        sa.text(
            f"""
            WITH doomed AS (
                SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:users AS text[]), CAST(:orgs AS text[]), CAST(:reasons AS text[]))
                    AS d(row_key, user_id, organization_id, reason)
            ), gone AS (
                DELETE FROM {t.qualified} AS t USING doomed AS d
                WHERE {t.row_key_matches('t', 'd.row_key')}
                  AND {t.id_text('t', 'user')} IS NOT DISTINCT FROM d.user_id
                  AND {t.id_text('t', 'organization')} IS NOT DISTINCT FROM d.organization_id
                RETURNING {t.row_key('t')} AS row_key
            )
            INSERT INTO {_changes_table(schema)} (sync_run_id, entity, entity_id, change_kind, reason)
            SELECT :run, :entity, gone.row_key, '{DELETE}', 'orphan: ' || doomed.reason
            FROM gone JOIN doomed USING (row_key)
            """
        ),
        {
            "keys": _texts(orphans, "row_key"),
            "users": _texts(orphans, "user_id"),
            "orgs": _texts(orphans, "organization_id"),
            "reasons": _texts(orphans, "reason"),
            "run": sync_run_id,
            "entity": plan.label,
        },
    )
    return result.rowcount


def _anonymize_orphans(connection: Connection, schema: str, plan: AppTablePlan, sync_run_id: int) -> int:
    orphans = plan.orphans[plan.orphans["action"] == ANONYMIZE]
    if orphans.empty:
        return 0
    t = plan.table
    values = t.spec.anonymize
    assignments = ", ".join(f"{quote(c)} = {t.col('v', c)}" for c in values)
    result = connection.execute(
        sa.text(
            f"""
            WITH target AS (
                SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:users AS text[]), CAST(:orgs AS text[]), CAST(:reasons AS text[]))
                    AS d(row_key, user_id, organization_id, reason)
            ), cleared AS (
                UPDATE {t.qualified} AS t SET {assignments}
                FROM target AS d, {t.typed_values(':values')} AS v
                WHERE {t.row_key_matches('t', 'd.row_key')}
                  AND {t.id_text('t', 'user')} IS NOT DISTINCT FROM d.user_id
                  AND {t.id_text('t', 'organization')} IS NOT DISTINCT FROM d.organization_id
                  AND NOT ({t.already_anonymized('t', 'v')})
                RETURNING {t.row_key('t')} AS row_key
            )
            INSERT INTO {_changes_table(schema)} (sync_run_id, entity, entity_id, change_kind, changes, reason)
            SELECT :run, :entity, cleared.row_key, '{ANONYMIZE}', CAST(:changes AS jsonb), 'orphan: ' || target.reason
            FROM cleared JOIN target USING (row_key)
            """
        ),
        {
            "keys": _texts(orphans, "row_key"),
            "users": _texts(orphans, "user_id"),
            "orgs": _texts(orphans, "organization_id"),
            "reasons": _texts(orphans, "reason"),
            "values": json.dumps(values),
            # The columns are named, their old values are not: the audit trail must not keep what was erased.
            "changes": json.dumps({column: "anonymized" for column in values}),
            "run": sync_run_id,
            "entity": plan.label,
        },
    )
    return result.rowcount


def _delete_duplicates(connection: Connection, schema: str, plan: AppTablePlan, sync_run_id: int) -> int:
    duplicates = plan.duplicates
    if duplicates.empty:
        return 0
    t = plan.table
    result = connection.execute(
        sa.text(
            f"""
            WITH doomed AS (
                SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:kept AS text[]), CAST(:unique_keys AS text[]))
                    AS d(row_key, kept_row_key, unique_key)
            ), gone AS (
                DELETE FROM {t.qualified} AS t USING doomed AS d
                WHERE {t.row_key_matches('t', 'd.row_key')}
                  AND EXISTS (SELECT 1 FROM {t.qualified} AS k WHERE {t.row_key_matches('k', 'd.kept_row_key')})
                RETURNING {t.row_key('t')} AS row_key, to_jsonb(t) AS content
            )
            INSERT INTO {_changes_table(schema)} (sync_run_id, entity, entity_id, change_kind, changes, reason)
            SELECT :run, :entity, gone.row_key, '{DELETE}', jsonb_build_object('row', gone.content),
                   'duplicate of ' || doomed.kept_row_key || ' (key ' || doomed.unique_key || ')'
            FROM gone JOIN doomed USING (row_key)
            """
        ),
        {
            "keys": _texts(duplicates, "row_key"),
            "kept": _texts(duplicates, "kept_row_key"),
            "unique_keys": _texts(duplicates, "key"),
            "run": sync_run_id,
            "entity": plan.label,
        },
    )
    return result.rowcount


def clean_up(connection: Connection, schema: str, plan: AppTablePlan, sync_run_id: int) -> dict[str, int]:
    """Delete or anonymize the orphans, delete the duplicates; rows written per kind."""
    return {
        DELETE: _delete_orphans(connection, schema, plan, sync_run_id) + _delete_duplicates(connection, schema, plan, sync_run_id),
        ANONYMIZE: _anonymize_orphans(connection, schema, plan, sync_run_id),
    }


def provision(connection: Connection, schema: str, plan: AppTablePlan, sync_run_id: int) -> int:
    """Create the missing rows with the policy's defaults (the database fills every other column).

    In a savepoint of the sync's transaction: a default the table refuses (a CHECK, NOT
    NULL, foreign key or type the declaration got wrong) rolls back this table's
    provisioning only. The mirror of Clerk, which owes nothing to the declaration, still
    commits; the refusal is logged, written to the run's ``sync_runs.message``, and the
    rows stay missing, so the ``app_tables_follow_their_policies`` check fails and names
    them. Checking the defaults against the table's constraints ahead would mean
    re-implementing Postgres's CHECK expressions, triggers and casts; asking Postgres
    itself, in a savepoint, is exact.
    """
    try:
        with connection.begin_nested():
            return _provision(connection, schema, plan, sync_run_id)
    except (sa.exc.IntegrityError, sa.exc.DataError) as error:
        problem = f"{plan.label}: provisioning refused by the table, nothing provisioned: {_primary_message(error)}"
        logger.warning("%s (fix the defaults in the declaration; the mirror was synced)", problem)
        connection.execute(
            sa.text(
                f'UPDATE "{schema}".sync_runs SET message = left(coalesce(message || \'; \', \'\') || :problem, 2000) '
                "WHERE id = :id"
            ),
            {"problem": problem, "id": sync_run_id},
        )
        return 0


def _primary_message(error: sa.exc.DBAPIError) -> str:
    """The database's one-line message (it names the constraint); never its DETAIL, which quotes row values."""
    diag = getattr(error.orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return primary or (str(error.orig).strip().splitlines() or [type(error.orig).__name__])[0]


def _provision(connection: Connection, schema: str, plan: AppTablePlan, sync_run_id: int) -> int:
    missing = plan.missing
    if missing.empty:
        return 0
    t = plan.table
    spec = t.spec
    per_membership = spec.provision.per == MEMBERSHIP
    defaults = list(spec.provision.defaults)
    targets = [spec.user_id_column, *([spec.organization_id_column] if per_membership else []), *defaults]
    sources = ["d.user_id", *(["d.organization_id"] if per_membership else []), *(t.col("v", c) for c in defaults)]
    exists = f"{t.col('e', spec.user_id_column)} = d.user_id"
    same_row = "wanted.user_id = made.user_id"
    if per_membership:
        exists += f" AND {t.col('e', spec.organization_id_column)} = d.organization_id"
        same_row += " AND wanted.organization_id = made.organization_id"
    result = connection.execute(
        sa.text(
            f"""
            WITH wanted AS (
                SELECT * FROM unnest(CAST(:users AS text[]), CAST(:orgs AS text[]), CAST(:reasons AS text[]))
                    AS d(user_id, organization_id, reason)
            ), made AS (
                INSERT INTO {t.qualified} AS t ({', '.join(quote(c) for c in targets)})
                SELECT {', '.join(sources)} FROM wanted AS d CROSS JOIN {t.typed_values(':defaults')} AS v
                WHERE NOT EXISTS (SELECT 1 FROM {t.qualified} AS e WHERE {exists})
                ON CONFLICT DO NOTHING
                RETURNING {t.row_key('t')} AS row_key, {t.id_text('t', 'user')} AS user_id,
                          {t.id_text('t', 'organization')} AS organization_id
            )
            INSERT INTO {_changes_table(schema)} (sync_run_id, entity, entity_id, change_kind, reason)
            SELECT :run, :entity, made.row_key, '{INSERT}', 'provision: ' || wanted.reason
            FROM made JOIN wanted ON {same_row}
            """
        ),
        {
            "users": _texts(missing, "user_id"),
            "orgs": _texts(missing, "organization_id"),
            "reasons": _texts(missing, "reason"),
            "defaults": json.dumps(spec.provision.defaults),
            "run": sync_run_id,
            "entity": plan.label,
        },
    )
    return result.rowcount
