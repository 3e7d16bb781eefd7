"""Which webhook events a sync run answers (named ones, a replay window, or all pending),
and which organizations a partial run must re-read beside the users it names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync_pipeline.errors import ConfigurationError
from sync_pipeline.mirror.database import validate_schema_name
from sync_pipeline.webhooks import inbox

# A full sync answers the events pending when it starts; past this many, the rest wait
# for the sensor (run config and the audit row stay small).
MAX_EVENTS_ANSWERED_BY_FULL_SYNC = 100_000


def parse_instant(value: str, name: str) -> datetime:
    """An ISO 8601 time (naive means UTC), or a one-line error naming the setting."""
    try:
        instant = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not an ISO 8601 time such as 2026-11-21T10:00:00Z") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


def events_for_run(
    engine: Engine,
    schema: str,
    *,
    svix_ids: Sequence[str] = (),
    since: str = "",
    until: str = "",
    pending_too: bool = False,
) -> list[inbox.InboxEvent]:
    """The events a run answers, each once, oldest first."""
    found: dict[str, inbox.InboxEvent] = {}
    if svix_ids:
        for event in inbox.events_by_ids(engine, schema, list(svix_ids)):
            found[event.svix_id] = event
    if since or until:
        start = parse_instant(since, "replay_since") if since else datetime(1970, 1, 1, tzinfo=timezone.utc)
        end = parse_instant(until, "replay_until") if until else datetime.now(timezone.utc)
        if end <= start:
            raise ConfigurationError(f"the replay window is empty: replay_until ({end}) is not after replay_since ({start})")
        for event in inbox.events_received_between(engine, schema, start, end):
            found[event.svix_id] = event
    if pending_too:
        for event in inbox.pending_events(engine, schema, limit=MAX_EVENTS_ANSWERED_BY_FULL_SYNC):
            found[event.svix_id] = event
    return sorted(found.values(), key=lambda e: (e.received_at, e.svix_id))


def organizations_of_users(engine: Engine, schema: str, user_ids: Sequence[str]) -> list[str]:
    """The organizations of these users' live memberships in the mirror, sorted.

    A user's change can change organizations no event names: a deleted user's memberships
    go with it (Clerk may send no membership event), and each one leaving lowers its
    organization's ``members_count``. The mirror, read before this run writes, still
    holds those memberships.
    """
    if not user_ids:
        return []
    with engine.connect() as connection:
        found = connection.execute(
            sa.text(
                f"""
                SELECT DISTINCT organization_id FROM "{validate_schema_name(schema)}".organization_memberships
                WHERE deleted_at IS NULL AND organization_id IS NOT NULL AND user_id = ANY(CAST(:ids AS text[]))
                """
            ),
            {"ids": sorted(set(user_ids))},
        ).scalars()
        return sorted(found)


# A role or permission change re-reads the memberships of every organization with a member
# of a role it changes. Past this many organizations (each one costs its by-id read, its
# membership pages and its domain list: at least 3 requests, about a minute at a test
# key's share), the memberships wait for the next full sync, and the run's metadata says so.
MAX_ORGANIZATIONS_PER_ROLE_CHANGE = 300


@dataclass(frozen=True)
class RoleFanOut:
    """What a role or permission change re-reads: its roles, and the organizations whose
    memberships hold one of them (their permissions follow their role)."""

    role_ids: tuple[str, ...]
    organization_ids: tuple[str, ...]
    requests: int  # an estimate of what re-reading those organizations costs
    deferred_organizations: int = 0  # over the bound: left for the next full sync

    def describe(self) -> str:
        text = f"{len(self.role_ids)} role(s), {len(self.organization_ids)} organization(s), ~{self.requests} request(s)"
        if self.deferred_organizations:
            text += f"; {self.deferred_organizations} organization(s) over the bound wait for the next full sync"
        return text


def organizations_holding_roles(
    engine: Engine,
    schema: str,
    role_ids: Sequence[str],
    permission_ids: Sequence[str],
    *,
    page_size: int = 500,
    max_organizations: int = MAX_ORGANIZATIONS_PER_ROLE_CHANGE,
) -> RoleFanOut:
    """The roles these events change and the organizations of their live memberships, from
    the mirror as it is before this run writes.

    A permission changes every role holding its key; a role changes every membership of its
    key (Clerk documents no membership event after either). An organization costs its
    by-id read and its domain list, plus a page of memberships per ``page_size`` members.
    """
    if not role_ids and not permission_ids:
        return RoleFanOut((), (), 0)
    schema = validate_schema_name(schema)
    with engine.connect() as connection:
        roles = connection.execute(
            sa.text(
                f"""
                SELECT id, key FROM "{schema}".organization_roles
                WHERE id = ANY(CAST(:roles AS text[]))
                   OR (deleted_at IS NULL AND permissions ?| ARRAY(
                       SELECT key FROM "{schema}".organization_permissions
                       WHERE id = ANY(CAST(:permissions AS text[])) AND key IS NOT NULL))
                """
            ),
            {"roles": sorted(set(role_ids)), "permissions": sorted(set(permission_ids))},
        ).all()
        keys = sorted({key for _, key in roles if key})
        # Each organization with a live member of those roles, and all its live members (what re-reading it costs).
        organizations = connection.execute(
            sa.text(
                f"""
                SELECT organization_id, count(*) AS members FROM "{schema}".organization_memberships
                WHERE deleted_at IS NULL AND organization_id IN (
                    SELECT organization_id FROM "{schema}".organization_memberships
                    WHERE deleted_at IS NULL AND role = ANY(CAST(:keys AS text[])))
                GROUP BY organization_id ORDER BY organization_id
                """
            ),
            {"keys": keys},
        ).all()
    kept = organizations[:max_organizations]
    requests = sum(2 + max(1, -(-members // page_size)) for _, members in kept)
    return RoleFanOut(
        role_ids=tuple(sorted({*role_ids, *(role_id for role_id, _ in roles)})),
        organization_ids=tuple(organization for organization, _ in kept),
        requests=requests,
        deferred_organizations=len(organizations) - len(kept),
    )


@dataclass(frozen=True)
class RunLag:
    """Receiver-to-mirror lag (received_at -> processed_at) of the events one run answered."""

    events: int
    p50_seconds: float
    max_seconds: float


def run_lag(engine: Engine, schema: str, run_id: str) -> RunLag:
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                f"""
                SELECT count(*) AS events,
                       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)), 0) AS p50,
                       coalesce(max(extract(epoch FROM processed_at - received_at)), 0) AS max
                FROM "{schema}".webhook_events WHERE processed_run_id = :run_id
                """
            ),
            {"run_id": run_id},
        ).one()
    return RunLag(events=int(row.events), p50_seconds=float(row.p50), max_seconds=float(row.max))
