"""The webhook inbox (``<schema>.webhook_events``): storing deliveries and reading them back.

The receiver stores every verified delivery here and does nothing else; a sync later
reads the pending events, syncs the users and organizations they name, and marks them
processed in its own apply transaction. Svix delivers at least once and reuses the
message id on retries and replays, so ``svix_id`` is the key and a redelivery only
bumps ``delivery_count``.

Statuses: ``pending`` (a type the mirror follows, with the ids it needs), ``ignored``
(any other type: stored, never failed), ``invalid`` (a followed type missing the id it
needs, or carrying one that cannot be a Clerk id: ``..``, a slash, 10,000 characters)
and ``processed``. An invalid event's ``problem`` says why in a few words, never quoting
the id; it is never sent to Clerk and never holds up the events around it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync_pipeline.clerk.ids import id_problem
from sync_pipeline.entities import catalog
from sync_pipeline.entities.description import Entity, value_at
from sync_pipeline.mirror.database import validate_schema_name

# The ``entity`` column holds each description's singular name.
USER, ORGANIZATION, MEMBERSHIP = (e.singular for e in (catalog.USERS, catalog.ORGANIZATIONS, catalog.MEMBERSHIPS))
PENDING, IGNORED, INVALID, PROCESSED = "pending", "ignored", "invalid", "processed"

# The inbox's id column for each SyncScope field: what a scoped sync re-reads. Roles and
# permissions are named by the event's own object id.
_ID_COLUMN_OF_SCOPE = {
    "user_ids": "user_id",
    "organization_ids": "organization_id",
    "role_ids": "object_id",
    "permission_ids": "object_id",
}

# Events of the entities a scoped sync can re-read; the others wait for the full sync.
_ENTITY_OF_EVENT: dict[str, Entity] = {
    t: e for e in catalog.ENTITIES if catalog.in_scoped_syncs(e) for t in e.event_types
}

RELEVANT_EVENT_TYPES: frozenset[str] = frozenset(_ENTITY_OF_EVENT)
"""The event types the mirror follows; every other type is stored as 'ignored'."""


def _id_column(entity: Entity) -> str | None:
    """The inbox column that holds ids of ``entity`` itself (None: it has none)."""
    return _ID_COLUMN_OF_SCOPE.get(entity.scope_ids) if entity.scope_ids else None


def _parent_id_columns(entity: Entity) -> list[tuple[str, tuple[str, ...], bool]]:
    """(inbox column, path in the event's data, counts_children) per parent of ``entity``
    the inbox can name: where Clerk's object holds the parent's id (the column's path)."""
    found = []
    for parent in catalog.scoping_parents(entity):
        column = _id_column(catalog.describe(parent.entity))
        path = next(c.path for c in entity.columns if c.name == parent.column)
        if column is not None and path:
            found.append((column, path, parent.counts_children))
    return found


# Documented in milliseconds, but some payloads carry seconds: 10^11 ms is 1973, 10^11 s is year 5138.
_SECONDS_BELOW = 10**11

# Events a replay may run again: everything the mirror follows.
_REPLAYABLE = f"status IN ('{PENDING}', '{PROCESSED}')"

_EVENT_COLUMNS = (
    "svix_id, event_type, entity, object_id, user_id, organization_id, received_at, clerk_timestamp, status"
)


@dataclass(frozen=True)
class EventFacts:
    """What :func:`classify` reads from a payload: the columns stored beside it."""

    event_type: str
    entity: str | None
    object_id: str | None
    user_id: str | None
    organization_id: str | None
    status: str
    clerk_timestamp: datetime | None
    problem: str | None = None
    """Why the event is 'invalid' (which id, and what is wrong with it); None otherwise."""


@dataclass(frozen=True)
class StoredDelivery:
    svix_id: str
    status: str
    """The stored row's status: on a redelivery, the one the first delivery got (or 'processed')."""
    first_delivery: bool
    problem: str | None = None


@dataclass(frozen=True)
class InboxEvent:
    """One stored event, without its payload."""

    svix_id: str
    event_type: str
    entity: str | None
    object_id: str | None
    user_id: str | None
    organization_id: str | None
    received_at: datetime
    clerk_timestamp: datetime | None
    status: str


@dataclass(frozen=True)
class InboxHealth:
    pending_count: int
    oldest_pending_age_seconds: float | None
    """Age of the oldest pending event; None when nothing is pending."""
    processed_last_hour: int
    """Events processed in the last hour; the lag figures below are over these (None when 0)."""
    lag_p50_seconds: float | None
    lag_p95_seconds: float | None
    lag_max_seconds: float | None
    invalid_last_day: int = 0
    """Events stored as 'invalid' in the last 24 hours (never sent to Clerk)."""
    invalid_reasons: tuple[tuple[str, int], ...] = ()
    """The last day's invalid events by problem, the commonest first (at most five)."""


class _EventIds(Protocol):
    event_type: str
    entity: str | None
    object_id: str | None
    user_id: str | None
    organization_id: str | None


def _table(schema: str) -> str:
    return f'"{validate_schema_name(schema)}".webhook_events'


def _id(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _checked_id(value: Any, name: str, problems: list[str]) -> str | None:
    """``value`` when it can be a Clerk id; else None, and the reason added to ``problems``."""
    value = _id(value)
    if value is None:
        return None
    problem = id_problem(value)
    if problem is not None:
        problems.append(f"{name} {problem}")
        return None
    return value


def _clerk_timestamp(value: Any) -> datetime | None:
    """The body's ``timestamp`` as a datetime: milliseconds, or seconds below 10^11; None if unusable."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    seconds = value if value < _SECONDS_BELOW else value / 1000
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def classify(payload: dict) -> EventFacts:
    """Read the type, the ids and the status from a webhook body. Pure, and never raises.

    user.*: ``user_id`` is data.id. organization.*: ``organization_id`` is data.id.
    organizationMembership.* (deletion included, which carries the whole membership):
    ``user_id`` is data.public_user_data.user_id and ``organization_id`` is
    data.organization.id; one of the two is enough. A followed type without the id it
    needs is 'invalid'; any other type (session.*, email.created, …) is 'ignored'.
    An id that :func:`~sync_pipeline.clerk.ids.id_problem` refuses (``..``, a slash, an
    absurd length) is never stored in an id column and makes a followed event 'invalid',
    with ``problem`` naming the id and what is wrong with it: such an id would reach
    Clerk's URLs, and one such event must not fail the batch it joins.
    Nothing depends on ``instance_id``, on the order of events, or on the timestamp's unit.
    """
    payload = payload if isinstance(payload, dict) else {}
    event_type = payload.get("type") if isinstance(payload.get("type"), str) else ""
    data = payload.get("data") if isinstance(payload.get("data"), dict) else None
    problems: list[str] = []
    object_id = _checked_id(data.get("id"), "data.id", problems) if data is not None else None
    timestamp = _clerk_timestamp(payload.get("timestamp"))

    if event_type not in RELEVANT_EVENT_TYPES:
        return EventFacts(event_type, None, object_id, None, None, IGNORED, timestamp)

    described = _ENTITY_OF_EVENT[event_type]
    entity = described.singular
    ids: dict[str, str | None] = {"user_id": None, "organization_id": None}
    own = _id_column(described)
    if own == "object_id":
        if problems:
            return EventFacts(event_type, entity, None, None, None, INVALID, timestamp, "; ".join(problems))
        if object_id is None:
            return EventFacts(event_type, entity, None, None, None, INVALID, timestamp, f"no {entity} id")
        return EventFacts(event_type, entity, object_id, None, None, PENDING, timestamp)
    if own is not None:
        ids[own] = object_id
    elif data is not None:
        problems.clear()  # a child's own id never reaches a URL; the parent ids it names do
        for column, path, _ in _parent_id_columns(described):
            ids[column] = _checked_id(value_at(data, path), column.replace("_", " "), problems)
    if problems:
        return EventFacts(event_type, entity, None, None, None, INVALID, timestamp, "; ".join(problems))
    if not (ids["user_id"] or ids["organization_id"]):
        return EventFacts(event_type, entity, object_id, None, None, INVALID, timestamp, "no user or organization id")
    return EventFacts(event_type, entity, object_id, ids["user_id"], ids["organization_id"], PENDING, timestamp)


# Postgres jsonb refuses \u0000 and unpaired surrogates, which JSON itself allows.
_JSONB_UNSAFE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _jsonb_safe(value: Any) -> Any:
    if isinstance(value, str):
        return _JSONB_UNSAFE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_jsonb_safe(k): _jsonb_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonb_safe(v) for v in value]
    return value


def _storable(payload: dict) -> tuple[dict, str]:
    """The payload as Postgres can hold it, and its JSON text.

    NUL characters and lone surrogates (which JSON allows and Postgres refuses, in jsonb
    and in text columns alike) become U+FFFD, everywhere: in the stored payload and in
    the ids and type read from it, so that one value cannot make the insert fail.
    """
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
        if "\\u0000" in text or _SURROGATE.search(text):  # rare: only then walk the payload
            payload = _jsonb_safe(payload)
            text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"the payload cannot be stored as JSON: {type(error).__name__}") from None
    return payload, text


def without_private_metadata(payload: dict) -> dict:
    """The payload without Clerk's ``private_metadata`` (the object's, and its embedded organization's)."""
    data = payload.get("data")
    if not isinstance(data, dict):
        return payload
    data = {key: value for key, value in data.items() if key != "private_metadata"}
    if isinstance(data.get("organization"), dict):
        data["organization"] = {key: value for key, value in data["organization"].items() if key != "private_metadata"}
    return {**payload, "data": data}


def store_delivery(
    engine: Engine,
    schema: str,
    *,
    svix_id: str,
    svix_timestamp: datetime | None,
    payload: dict,
    include_private_metadata: bool = True,
) -> StoredDelivery:
    """Store one verified delivery, in one statement; a redelivery of ``svix_id`` only counts itself.

    A first delivery inserts the row with the facts :func:`classify` reads. A redelivery
    adds one to ``delivery_count`` and sets ``last_received_at``; it never changes the
    stored status or payload. ``include_private_metadata=False`` stores the payload without
    ``private_metadata`` (SYNC_INCLUDE_PRIVATE_METADATA=false: the schema never holds it).
    Raises ValueError when the payload has no non-empty string
    ``type`` or cannot be stored as JSON (NUL characters and lone surrogates, which
    Postgres refuses, are stored as U+FFFD, in the payload and in the ids read from it).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str) or not payload["type"]:
        raise ValueError("a webhook payload is a JSON object with a string type")
    if not include_private_metadata:  # SYNC_INCLUDE_PRIVATE_METADATA=false keeps it out of the inbox too
        payload = without_private_metadata(payload)
    payload, payload_text = _storable(payload)
    facts = classify(payload)
    statement = sa.text(
        f"""
        INSERT INTO {_table(schema)} AS e
            (svix_id, event_type, clerk_timestamp, svix_timestamp, last_received_at, payload,
             entity, object_id, user_id, organization_id, status, problem)
        VALUES (:svix_id, :event_type, :clerk_timestamp, :svix_timestamp, now(), CAST(:payload AS jsonb),
                :entity, :object_id, :user_id, :organization_id, :status, :problem)
        ON CONFLICT (svix_id) DO UPDATE
            SET delivery_count = e.delivery_count + 1, last_received_at = now()
        RETURNING e.status, e.delivery_count = 1 AS first_delivery, e.problem
        """
    )
    parameters = {
        "svix_id": svix_id,
        "event_type": facts.event_type,
        "clerk_timestamp": facts.clerk_timestamp,
        "svix_timestamp": svix_timestamp,
        "payload": payload_text,
        "entity": facts.entity,
        "object_id": facts.object_id,
        "user_id": facts.user_id,
        "organization_id": facts.organization_id,
        "status": facts.status,
        "problem": facts.problem,
    }
    with engine.begin() as connection:
        status, first, problem = connection.execute(statement, parameters).one()
    return StoredDelivery(svix_id=svix_id, status=status, first_delivery=bool(first), problem=problem)


def _select_events(connection_or_engine: Connection | Engine, sql: str, parameters: dict) -> list[InboxEvent]:
    statement = sa.text(sql)
    if isinstance(connection_or_engine, Connection):
        rows = connection_or_engine.execute(statement, parameters).all()
    else:
        with connection_or_engine.connect() as connection:
            rows = connection.execute(statement, parameters).all()
    return [InboxEvent(**row._mapping) for row in rows]


def pending_events(connection_or_engine: Connection | Engine, schema: str, *, limit: int) -> list[InboxEvent]:
    """Up to ``limit`` pending events, the oldest first (by received_at, then svix_id)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, not {limit!r}")
    return _select_events(
        connection_or_engine,
        f"SELECT {_EVENT_COLUMNS} FROM {_table(schema)} WHERE status = '{PENDING}' "
        "ORDER BY received_at, svix_id LIMIT :limit",
        {"limit": limit},
    )


def events_by_ids(engine: Engine, schema: str, svix_ids: Iterable[str]) -> list[InboxEvent]:
    """The stored events among ``svix_ids``, pending or processed (for a replay), oldest first.

    'ignored' and 'invalid' events are left out; unknown ids are skipped.
    """
    ids = sorted(set(svix_ids))
    if not ids:
        return []
    return _select_events(
        engine,
        f"SELECT {_EVENT_COLUMNS} FROM {_table(schema)} "
        f"WHERE svix_id = ANY(CAST(:ids AS text[])) AND {_REPLAYABLE} ORDER BY received_at, svix_id",
        {"ids": ids},
    )


def events_received_between(engine: Engine, schema: str, since: datetime, until: datetime) -> list[InboxEvent]:
    """Events first received in ``[since, until)``, pending or processed (for a replay), oldest first.

    'ignored' and 'invalid' events are left out. Both bounds must be timezone-aware.
    """
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware datetimes")
    return _select_events(
        engine,
        f"SELECT {_EVENT_COLUMNS} FROM {_table(schema)} "
        f"WHERE received_at >= :since AND received_at < :until AND {_REPLAYABLE} ORDER BY received_at, svix_id",
        {"since": since, "until": until},
    )


def affected_scope(events: Iterable[_EventIds]) -> dict[str, list[str]]:
    """The ids a scoped sync must re-read for ``events``, by SyncScope field, each sorted:
    :func:`affected_ids`' users and organizations, and the roles and permissions that
    role.* and permission.* events name (their memberships are found from the mirror,
    ``webhooks.runs.organizations_holding_roles``)."""
    found: dict[str, set[str]] = {field: set() for field in _ID_COLUMN_OF_SCOPE}
    users, organizations = affected_ids(events)
    found["user_ids"].update(users)
    found["organization_ids"].update(organizations)
    for event in events:
        described = catalog.BY_SINGULAR.get(event.entity or "")
        if described is None or _id_column(described) != "object_id" or not _ids_usable(event):
            continue
        if event.object_id and id_problem(event.object_id) is None:
            found[described.scope_ids].add(event.object_id)
    return {field: sorted(ids) for field, ids in found.items()}


def affected_ids(events: Iterable[_EventIds]) -> tuple[list[str], list[str]]:
    """The user ids and organization ids a scoped sync must re-read for ``events``, each sorted.

    Takes :class:`InboxEvent` or :class:`EventFacts`. user.* adds its user and
    organization.* its organization. A membership event adds its user (a sync scoped to
    a user re-reads that user's memberships) and, when the membership was created or
    deleted, its organization too: a member joining or leaving changes the organization's
    ``members_count``, held by the organization row and embedded in every other
    membership of it. A role change moves no count, so it does not pay for re-reading a
    large organization. Without a user id, the organization stands in. Events of no
    entity (ignored types) add nothing, and neither does an id that cannot be a Clerk id
    (:func:`classify` stores such events as 'invalid'; this is the last guard before a URL).
    """
    found: dict[str, set[str]] = {"user_id": set(), "organization_id": set()}
    for event in events:
        described = catalog.BY_SINGULAR.get(event.entity or "")
        if described is None or not _ids_usable(event):
            continue
        own = _id_column(described)
        if own == "object_id":
            continue  # roles and permissions: see affected_scope
        if own is not None:
            if getattr(event, own):
                found[own].add(getattr(event, own))
            continue
        parents = _parent_id_columns(described)
        # A parent that counts its children is re-read when one comes or goes, or when
        # no other parent is named to stand in for the event.
        others_named = any(getattr(event, column) for column, _, counts in parents if not counts)
        for column, _, counts in parents:
            value = getattr(event, column)
            if value and (not counts or not others_named or not event.event_type.endswith(".updated")):
                found[column].add(value)
    return sorted(found["user_id"]), sorted(found["organization_id"])


def _ids_usable(event: _EventIds) -> bool:
    return all(value is None or id_problem(value) is None for value in (event.user_id, event.organization_id))


def mark_processed(connection: Connection, schema: str, svix_ids: Sequence[str], run_id: str | None) -> int:
    """Mark events processed by ``run_id``, inside the caller's transaction; returns how many.

    Pending events become 'processed'; already processed ones (a replay) get the new
    processed_at and run id. 'ignored' and 'invalid' events are left alone.
    """
    if not isinstance(connection, Connection):
        raise TypeError("mark_processed takes an open Connection, so it commits with the sync's apply")
    ids = sorted(set(svix_ids))
    if not ids:
        return 0
    result = connection.execute(
        sa.text(
            f"UPDATE {_table(schema)} SET status = '{PROCESSED}', processed_at = now(), processed_run_id = :run_id "
            f"WHERE svix_id = ANY(CAST(:ids AS text[])) AND {_REPLAYABLE}"
        ),
        {"ids": ids, "run_id": run_id},
    )
    return result.rowcount


def inbox_health(engine: Engine, schema: str) -> InboxHealth:
    """How far behind the inbox is: pending events and their oldest age, and the last hour's lag.

    Lag is processed_at − received_at, over the events processed in the last hour.
    """
    statement = sa.text(
        f"""
        WITH pending AS (
            SELECT count(*) AS n, extract(epoch FROM now() - min(received_at)) AS oldest_age
            FROM {_table(schema)} WHERE status = '{PENDING}'
        ), lag AS (
            SELECT count(*) AS n,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95,
                   max(seconds) AS worst
            FROM (
                SELECT extract(epoch FROM processed_at - received_at) AS seconds
                FROM {_table(schema)}
                WHERE status = '{PROCESSED}' AND processed_at >= now() - interval '1 hour'
            ) recent
        )
        SELECT pending.n, pending.oldest_age, lag.n, lag.p50, lag.p95, lag.worst FROM pending, lag
        """
    )
    invalid = sa.text(
        f"""
        SELECT coalesce(problem, 'no reason recorded') AS problem, count(*) AS n FROM {_table(schema)}
        WHERE status = '{INVALID}' AND received_at >= now() - interval '1 day'
        GROUP BY 1 ORDER BY 2 DESC, 1
        """
    )
    with engine.connect() as connection:
        pending_n, oldest, processed_n, p50, p95, worst = connection.execute(statement).one()
        reasons = [(problem, int(n)) for problem, n in connection.execute(invalid).all()]

    def seconds(value: Any) -> float | None:
        return None if value is None else float(value)

    return InboxHealth(
        pending_count=int(pending_n),
        oldest_pending_age_seconds=seconds(oldest),
        processed_last_hour=int(processed_n),
        lag_p50_seconds=seconds(p50),
        lag_p95_seconds=seconds(p95),
        lag_max_seconds=seconds(worst),
        invalid_last_day=sum(n for _, n in reasons),
        invalid_reasons=tuple(reasons[:5]),
    )
