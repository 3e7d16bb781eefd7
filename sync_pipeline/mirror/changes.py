"""Telling applications what changed: a NOTIFY per applied sync, and ``sync_changes`` as the outbox.

Caches, search indexes and live UIs subscribe instead of polling:

    LISTEN clerk_mirror_changes;                       -- wake-ups, one per applied sync
    SELECT * FROM clerk.sync_changes WHERE id > $last  -- the reliable part: resume from here
    ORDER BY id;

The notification is only a wake-up (Postgres drops it when nobody listens, and caps its
payload at 8000 bytes); ``sync_changes`` is the outbox a consumer reads reliably. Its ids
are committed in increasing order because applies are serialised by the write lock, so a
consumer that remembers the last id it handled never skips a change, even after downtime.
Both are written in the apply's transaction: they exist exactly when the changes do.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

CHANNEL = "clerk_mirror_changes"


def announce_changes(connection: Connection, schema: str, sync_run_id: int, rows_written: dict[str, dict[str, int]]) -> None:
    """NOTIFY listeners of this sync's changes; delivered by Postgres when the transaction commits."""
    bounds = connection.execute(
        sa.text(f'SELECT min(id), max(id), count(*) FROM "{schema}".sync_changes WHERE sync_run_id = :run'),
        {"run": sync_run_id},
    ).one()
    if not bounds[2]:
        return  # nothing changed, nothing to announce
    payload = {
        "schema": schema,
        "sync_run_id": sync_run_id,
        "first_change_id": bounds[0],
        "last_change_id": bounds[1],
        "changes": {entity: {k: v for k, v in kinds.items() if v} for entity, kinds in rows_written.items() if any(kinds.values())},
    }
    connection.execute(sa.text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": json.dumps(payload)})
