"""``sync-pipeline status``: is the mirror right? One verdict, and the figures behind it.

Everything comes from the mirror database itself (the ``sync_runs`` audit trail and the
webhook inbox), so the answer is the same wherever it is asked from, Dagster or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync_pipeline.model import ENTITIES
from sync_pipeline.webhooks import inbox

# A daily schedule plus slack: past this, the last full sync is too old to vouch for the mirror.
FULL_SYNC_MAX_AGE = timedelta(hours=26)

OK, STALE, FAILING, LAGGING, NEVER_SYNCED = "ok", "stale", "failing", "lagging", "never synced"


@dataclass(frozen=True)
class SyncRunSummary:
    mode: str
    outcome: str
    started_at: datetime
    finished_at: datetime | None
    run_id: str | None
    written: int
    planned: int
    message: str | None

    def describe(self, now: datetime) -> str:
        took = f"{(self.finished_at - self.started_at).total_seconds():.1f}s" if self.finished_at else "?"
        age = _age(now - self.started_at)
        detail = f"{self.written} rows written" if self.outcome == "succeeded" else (self.message or "")
        if self.outcome == "succeeded" and self.message:  # e.g. an application table that refused its defaults
            detail += f"; {self.message}"
        return f"{self.outcome} {age} ago (took {took}; {detail}; run {self.run_id})"


@dataclass(frozen=True)
class MirrorStatus:
    verdict: str
    reasons: list[str]
    last_full: SyncRunSummary | None
    last_partial: SyncRunSummary | None
    last_failure: SyncRunSummary | None
    live_rows: dict[str, int]
    pending_events: int
    oldest_pending_seconds: float | None
    lag_p95_seconds: float | None
    invalid_last_day: int = 0
    invalid_reasons: tuple[tuple[str, int], ...] = ()

    @property
    def healthy(self) -> bool:
        return self.verdict == OK

    def render(self, now: datetime | None = None) -> str:
        now = now or datetime.now(timezone.utc)
        lines = [f"Mirror: {self.verdict.upper()}" + (f" — {'; '.join(self.reasons)}" if self.reasons else "")]
        lines.append(f"  last full sync:     {self.last_full.describe(now) if self.last_full else 'never'}")
        lines.append(f"  last partial sync:  {self.last_partial.describe(now) if self.last_partial else 'never'}")
        if self.last_failure:
            lines.append(f"  last failure:       {self.last_failure.describe(now)}")
        lines.append("  live rows:          " + ", ".join(f"{entity} {count}" for entity, count in self.live_rows.items()))
        waited = f", oldest waiting {self.oldest_pending_seconds:.0f}s" if self.oldest_pending_seconds else ""
        lag = f"; last hour p95 lag {self.lag_p95_seconds:.1f}s" if self.lag_p95_seconds is not None else ""
        lines.append(f"  webhook events:     {self.pending_events} pending{waited}{lag}")
        if self.invalid_last_day:
            why = ", ".join(f"{problem}: {count}" for problem, count in self.invalid_reasons)
            lines.append(f"  invalid events:     {self.invalid_last_day} in the last day, never sent to Clerk ({why})")
        return "\n".join(lines)


def _age(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def _total(counts: dict | None, key: str) -> int:
    kinds = (counts or {}).get(key) or {}
    return sum(sum(v.values()) if isinstance(v, dict) else 0 for v in kinds.values())


def _last_run(connection: sa.Connection, schema: str, where: str) -> SyncRunSummary | None:
    row = connection.execute(
        sa.text(
            f'SELECT mode, outcome, started_at, finished_at, run_id, counts, message FROM "{schema}".sync_runs '
            f"WHERE {where} ORDER BY started_at DESC, id DESC LIMIT 1"
        )
    ).mappings().first()
    if row is None:
        return None
    return SyncRunSummary(
        mode=row["mode"],
        outcome=row["outcome"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        run_id=row["run_id"],
        written=_total(row["counts"], "written"),
        planned=_total(row["counts"], "planned"),
        message=row["message"],
    )


def mirror_status(engine: Engine, schema: str, *, max_wait_seconds: float, now: datetime | None = None) -> MirrorStatus:
    now = now or datetime.now(timezone.utc)
    with engine.connect() as connection:
        exists = connection.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f'"{schema}".sync_runs'}).scalar_one()
        if not exists:
            return MirrorStatus(NEVER_SYNCED, ["no mirror in this schema yet"], None, None, None, {}, 0, None, None)
        real = "NOT dry_run"
        last_full = _last_run(connection, schema, f"{real} AND mode = 'full' AND outcome = 'succeeded'")
        last_partial = _last_run(connection, schema, f"{real} AND mode IN ('partial', 'replay', 'scoped') AND outcome = 'succeeded'")
        latest_full_attempt = _last_run(connection, schema, f"{real} AND mode = 'full'")
        last_failure = _last_run(connection, schema, f"{real} AND outcome IN ('failed', 'refused')")
        # A mirror the next sync has not migrated yet lacks the newest tables: they count 0.
        live_rows = {
            entity: connection.execute(sa.text(f'SELECT count(*) FROM "{schema}".{entity} WHERE deleted_at IS NULL')).scalar_one()
            if connection.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f'"{schema}".{entity}'}).scalar_one()
            else 0
            for entity in ENTITIES
        }
    health = inbox.inbox_health(engine, schema)

    reasons: list[str] = []
    verdict = OK
    if last_full is None:
        verdict, reasons = NEVER_SYNCED, ["no full sync has succeeded yet: run `sync-pipeline sync`"]
    elif latest_full_attempt and latest_full_attempt.outcome != "succeeded":
        verdict = FAILING
        reasons.append(f"the latest full sync {latest_full_attempt.outcome}: {latest_full_attempt.message or 'see its run'}")
    elif now - last_full.started_at > FULL_SYNC_MAX_AGE:
        verdict = STALE
        reasons.append(f"the last successful full sync started {_age(now - last_full.started_at)} ago")
    waited = health.oldest_pending_age_seconds or 0.0
    if waited > max_wait_seconds:
        verdict = verdict if verdict != OK else LAGGING
        reasons.append(f"{health.pending_count} webhook event(s) pending, the oldest for {waited:.0f}s (bound {max_wait_seconds:.0f}s)")
    return MirrorStatus(
        verdict=verdict,
        reasons=reasons,
        last_full=last_full,
        last_partial=last_partial,
        last_failure=last_failure,
        live_rows=live_rows,
        pending_events=health.pending_count,
        oldest_pending_seconds=health.oldest_pending_age_seconds,
        lag_p95_seconds=health.lag_p95_seconds,
        invalid_last_day=health.invalid_last_day,
        invalid_reasons=health.invalid_reasons,
    )
