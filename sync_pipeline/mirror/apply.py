"""Writing a plan to the mirror: one transaction, set-based, behind a lock, with an audit trail.

The order inside the transaction is what keeps constraints quiet when Clerk moves
things around: deletes first (memberships, then organizations, then users), then the
upserts. A membership re-created under a new id, or an address handed from a deleted
user to a new one, therefore never meets its old self.

The application's own tables (``sync_pipeline.app_tables``) are written in the same
transaction: their orphans and duplicates are cleaned up before the mirror's deletes
(their users still exist, so a hard delete never meets a dependant), their missing rows
provisioned after the mirror's upserts (the users they point at exist by then).

Rows reach Postgres through ``COPY`` into a temporary staging table; every write is a
single ``INSERT … SELECT … ON CONFLICT … WHERE`` or ``UPDATE … FROM`` statement that
only touches rows where something differs, so a sync with nothing changed writes
nothing at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from psycopg import errors as pg_errors
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from sync_pipeline import model
from sync_pipeline.app_tables import apply as app_tables_apply
from sync_pipeline.diff.plan import CHANGE_KINDS, DELETE, INSERT, SyncPlan
from sync_pipeline.errors import SyncLockTimeout
from sync_pipeline.mirror.changes import announce_changes
from sync_pipeline.mirror.staging import copy_into_stage, copy_into_table, direct_load_table
from sync_pipeline.model import ENTITIES, key_columns

# Upserts walk from parents to dependants (the descriptions' order, parents first), deletes back.
UPSERT_ORDER = ENTITIES
DELETE_ORDER = tuple(reversed(ENTITIES))



@dataclass
class ApplySettings:
    hard_delete: bool = False
    lock_timeout_seconds: float = 300.0
    statement_timeout_seconds: float | None = None


@dataclass
class SyncRunRecord:
    """What the audit trail says about one sync (a row of ``sync_runs``)."""

    run_id: str | None
    mode: str
    dry_run: bool
    scope: dict
    started_at: datetime
    counts: dict = field(default_factory=dict)


@dataclass
class ApplyResult:
    sync_run_id: int
    rows_written: dict[str, dict[str, int]]
    seconds: float
    # Per application table (schema.table): rows inserted, deleted, anonymized.
    app_tables_written: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total_rows_written(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.rows_written.values())


def _lock_key(schema: str) -> str:
    return f"sync_pipeline:apply:{schema}"


def _as_timestamp(expression: str) -> str:
    """Epoch milliseconds to timestamptz, exactly (no float rounding)."""
    return f"(timestamptz 'epoch' + {expression} * interval '1 millisecond')"


def _stage_value(column: str, kind: str, alias: str) -> str:
    value = f"{alias}.{column}"
    return _as_timestamp(value) if kind == model.MILLIS else value


def _audit_upserts(connection: Connection, schema: str, entity: str, sync_run_id: int) -> dict[str, int]:
    """One sync_changes row per row about to be written, with each changed column's from/to."""
    kinds = model.COLUMNS[entity]
    pairs = []
    for column, kind in kinds.items():
        if column in ("id", "raw", "raw_digest"):
            continue
        new = _stage_value(column, kind, "s")
        pairs.append(
            f"'{column}', CASE WHEN m.{column} IS DISTINCT FROM {new} "
            f"THEN jsonb_build_array(m.{column}, {new}) END"
        )
    pairs.append("'raw', CASE WHEN m.raw_digest IS DISTINCT FROM s.raw_digest THEN to_jsonb('changed'::text) END")
    pairs.append("'deleted_at', CASE WHEN m.deleted_at IS NOT NULL THEN jsonb_build_array(m.deleted_at, NULL) END")
    changes = f"jsonb_strip_nulls(jsonb_build_object({', '.join(pairs)}))"
    rows = connection.execute(
        sa.text(
            f"""
            INSERT INTO "{schema}".sync_changes (sync_run_id, entity, entity_id, change_kind, changes)
            SELECT :run, :entity, s.id, s.change_kind, CASE WHEN m.id IS NULL THEN NULL ELSE {changes} END
            FROM stage_{entity} s LEFT JOIN "{schema}".{entity} m ON m.id = s.id
            WHERE m.id IS NULL OR ({_write_condition(entity, 's')})
            RETURNING change_kind
            """
        ),
        {"run": sync_run_id, "entity": entity},
    ).scalars()
    counts = dict.fromkeys(CHANGE_KINDS, 0)
    for kind in rows:
        counts[kind] += 1
    return counts


def _new_values(entity: str, alias: str) -> dict[str, str]:
    """SQL for each compared column of the incoming row, in mirror types.

    ``alias`` is ``s`` (the staging table, timestamps still in ms) or ``EXCLUDED``
    (inside ON CONFLICT, already converted).
    """
    kinds = {c: k for c, k in model.COLUMNS[entity].items() if c not in ("id", "raw")}
    if alias == "EXCLUDED":
        return {c: f"EXCLUDED.{c}" for c in kinds}
    return {c: _stage_value(c, k, alias) for c, k in kinds.items()}


def _write_condition(entity: str, alias: str) -> str:
    """When an existing mirror row ``m`` takes the incoming row.

    Something must differ, and Clerk's ``updated_at`` must not go backwards: a snapshot
    read before a newer partial sync wrote never overwrites the newer state.
    """
    new = _new_values(entity, alias)
    mirrored = ", ".join(f"m.{c}" for c in new)
    return (
        f"(m.updated_at IS NULL OR {new['updated_at']} IS NULL OR m.updated_at <= {new['updated_at']}) "
        f"AND (m.deleted_at IS NOT NULL OR ({mirrored}) IS DISTINCT FROM ({', '.join(new.values())}))"
    )


def _load_into_empty_table(connection: Connection, schema: str, entity: str, upserts: pd.DataFrame) -> bool:
    """COPY the rows straight into the table when it holds none yet (a first sync): nothing
    to conflict with, compare or join. Checked under the write lock, so it stays empty."""
    if not (upserts["change_kind"] == INSERT).all():
        return False
    if connection.execute(sa.text(f'SELECT EXISTS (SELECT 1 FROM "{schema}".{entity})')).scalar_one():
        return False
    table = direct_load_table(entity, upserts)
    if table is None:
        return False
    copy_into_table(connection, schema, entity, table)
    # The planner still sees an empty table until autovacuum comes by; the next statements
    # (and the next sync's joins) should plan for what is there. The keys and deleted_at, which
    # every read of live rows filters on: without its statistics the planner takes
    # "deleted_at IS NULL" for 0.5% of the rows and answers the integrity checks with a
    # nested loop (1.1 s instead of 0.25 s at 100k memberships). Not raw: sampling its
    # documents would cost more than the whole rest of the statistics.
    columns = ", ".join((*key_columns(entity), "deleted_at"))
    connection.execute(sa.text(f'ANALYZE "{schema}".{entity} ({columns})'))
    return True


def _audit_direct_load(connection: Connection, schema: str, entity: str, sync_run_id: int) -> int:
    """One sync_changes row per row the direct load inserted: every row the table now holds."""
    return connection.execute(
        sa.text(
            f"""
            INSERT INTO "{schema}".sync_changes (sync_run_id, entity, entity_id, change_kind)
            SELECT :run, :entity, id, '{INSERT}' FROM "{schema}".{entity}
            """
        ),
        {"run": sync_run_id, "entity": entity},
    ).rowcount


def _upsert(connection: Connection, schema: str, entity: str) -> int:
    kinds = model.COLUMNS[entity]
    columns = list(kinds)
    select = ", ".join(_stage_value(c, k, "s") for c, k in kinds.items())
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "id")
    result = connection.execute(
        sa.text(
            f"""
            INSERT INTO "{schema}".{entity} AS m ({', '.join(columns)}, synced_at, deleted_at)
            SELECT {select}, now(), NULL FROM stage_{entity} s
            ON CONFLICT (id) DO UPDATE SET {assignments}, synced_at = EXCLUDED.synced_at, deleted_at = NULL
            WHERE {_write_condition(entity, "EXCLUDED")}
            """
        )
    )
    return result.rowcount


def _delete(connection: Connection, schema: str, entity: str, deletes: pd.DataFrame, sync_run_id: int, hard: bool) -> int:
    if deletes.empty:
        return 0
    ids = deletes["id"].astype(str).tolist()
    reasons = deletes["reason"].astype(str).tolist()
    if hard:
        gone = f'DELETE FROM "{schema}".{entity} m USING doomed d WHERE m.id = d.id RETURNING m.id'
    else:
        gone = (
            f'UPDATE "{schema}".{entity} m SET deleted_at = now(), synced_at = now() '
            "FROM doomed d WHERE m.id = d.id AND m.deleted_at IS NULL RETURNING m.id"
        )
    result = connection.execute(
        sa.text(
            f"""
            WITH doomed AS (SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:reasons AS text[])) AS d(id, reason)),
                 gone AS ({gone})
            INSERT INTO "{schema}".sync_changes (sync_run_id, entity, entity_id, change_kind, reason)
            SELECT :run, :entity, gone.id, '{DELETE}', doomed.reason FROM gone JOIN doomed ON doomed.id = gone.id
            """
        ),
        {"ids": ids, "reasons": reasons, "run": sync_run_id, "entity": entity},
    )
    return result.rowcount


def acquire_write_lock(connection: Connection, schema: str, settings: ApplySettings) -> None:
    """The lock every write to the mirror (and the application tables it keeps) takes, for this transaction."""
    connection.execute(sa.text(f"SET LOCAL lock_timeout = '{int(settings.lock_timeout_seconds * 1000)}ms'"))
    try:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _lock_key(schema)})
    except OperationalError as error:
        if isinstance(error.orig, pg_errors.LockNotAvailable):
            raise SyncLockTimeout(
                f"another sync held the write lock on schema {schema!r} for more than "
                f"{settings.lock_timeout_seconds:g}s; try again when it has finished"
            ) from None
        raise
    if settings.statement_timeout_seconds:
        connection.execute(sa.text(f"SET LOCAL statement_timeout = '{int(settings.statement_timeout_seconds * 1000)}ms'"))


def _insert_sync_run(connection: Connection, schema: str, record: SyncRunRecord, outcome: str, message: str | None = None) -> int:
    return connection.execute(
        sa.text(
            f"""
            INSERT INTO "{schema}".sync_runs (run_id, mode, dry_run, scope, started_at, finished_at, outcome, counts, message)
            VALUES (:run_id, :mode, :dry_run, CAST(:scope AS jsonb), :started_at, now(), :outcome, CAST(:counts AS jsonb), :message)
            RETURNING id
            """
        ),
        {
            "run_id": record.run_id,
            "mode": record.mode,
            "dry_run": record.dry_run,
            "scope": json.dumps(record.scope),
            "started_at": record.started_at,
            "outcome": outcome,
            "counts": json.dumps(record.counts),
            "message": message,
        },
    ).scalar_one()


def record_sync_run(engine: Engine, schema: str, record: SyncRunRecord, outcome: str, message: str | None = None) -> int:
    """Record a sync that wrote nothing to the mirror (a dry run, a refusal, a failure)."""
    with engine.begin() as connection:
        return _insert_sync_run(connection, schema, record, outcome, message)


def apply_plan(
    engine: Engine,
    schema: str,
    plan: SyncPlan,
    record: SyncRunRecord,
    settings: ApplySettings,
    *,
    before_commit: Callable[[Connection], None] | None = None,
) -> ApplyResult:
    """Write ``plan`` in one transaction and record it; all or nothing.

    ``before_commit`` runs last inside the transaction, for bookkeeping that must commit
    or roll back with the mirror (marking webhook events processed).
    """
    started = time.perf_counter()
    rows_written = {entity: dict.fromkeys(CHANGE_KINDS, 0) for entity in ENTITIES}
    with engine.begin() as connection:
        acquire_write_lock(connection, schema, settings)
        sync_run_id = _insert_sync_run(connection, schema, record, "running")
        app_written = {
            label: app_tables_apply.clean_up(connection, schema, app_plan, sync_run_id)
            for label, app_plan in plan.app_tables.items()
        }
        for entity in DELETE_ORDER:
            deletes = plan.entity(entity).deletes
            rows_written[entity][DELETE] = _delete(connection, schema, entity, deletes, sync_run_id, settings.hard_delete)
        for entity in UPSERT_ORDER:
            upserts = plan.entity(entity).upserts
            if upserts.empty:
                continue
            if _load_into_empty_table(connection, schema, entity, upserts):
                rows_written[entity][INSERT] = _audit_direct_load(connection, schema, entity, sync_run_id)
                continue
            copy_into_stage(connection, entity, upserts)
            audited = _audit_upserts(connection, schema, entity, sync_run_id)
            written = _upsert(connection, schema, entity)
            # The audit and the upsert use the same condition, so they must agree; if they
            # ever do not, roll everything back rather than leave an audit trail that lies.
            if written != sum(audited.values()):
                raise RuntimeError(f"{entity}: {written} rows written but {sum(audited.values())} audited; rolled back")
            for kind, count in audited.items():
                if kind != DELETE:
                    rows_written[entity][kind] = count
        for label, app_plan in plan.app_tables.items():
            app_written[label][INSERT] = app_tables_apply.provision(connection, schema, app_plan, sync_run_id)
        written = {"written": rows_written, **({"app_tables_written": app_written} if app_written else {})}
        connection.execute(
            sa.text(
                f'UPDATE "{schema}".sync_runs SET outcome = :outcome, finished_at = now(), '
                "counts = CAST(:counts AS jsonb) WHERE id = :id"
            ),
            {"outcome": "succeeded", "counts": json.dumps({**record.counts, **written}), "id": sync_run_id},
        )
        announce_changes(connection, schema, sync_run_id, {**rows_written, **app_written})
        if before_commit is not None:
            before_commit(connection)
    return ApplyResult(
        sync_run_id=sync_run_id,
        rows_written=rows_written,
        seconds=time.perf_counter() - started,
        app_tables_written=app_written,
    )
