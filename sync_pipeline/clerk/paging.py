"""How each list is walked: users by cursor in created_at windows, the rest by offset,
by-id reads, and per-parent lists that confirm a gone parent before believing it.

Every function takes the :class:`~sync_pipeline.clerk.call.Call` of one fetch method and
delivers pages to its sink; none returns rows.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

from sync_pipeline import progress
from sync_pipeline.entities import catalog
from sync_pipeline.entities.description import ByParent, Entity
from sync_pipeline.clerk.call import Call, Refused, Request, count_of, list_body, object_of, rows_of, total_of
from sync_pipeline.clerk.errors import ClerkAuthError, ClerkUnavailableError
from sync_pipeline.clerk.ids import path_segment
from sync_pipeline.clerk.stats import Row
from sync_pipeline.clerk.windows import Window, in_window, plan_windows, windows_wanted

logger = dg.get_dagster_logger("sync_pipeline.clerk")

IDS_PER_REQUEST = 100  # Clerk accepts up to 100 values of a repeated filter such as user_id=

# Endpoint names used as keys of FetchStats.endpoints, from the entity descriptions.
USERS_ENDPOINT = catalog.USERS.endpoints.list_label  # GET /users
USER_ENDPOINT = catalog.USERS.endpoints.by_id_label  # GET /users/{id}
USERS_COUNT_ENDPOINT = f"{USERS_ENDPOINT}/count"
# The one list walked by cursor windows (catalog.USERS.endpoints.paging), and its count.
_USERS_PATH = catalog.USERS.endpoints.list_path
USERS_COUNT_PATH = f"{_USERS_PATH}/count"
ORGANIZATIONS_ENDPOINT = catalog.ORGANIZATIONS.endpoints.list_label
ORGANIZATION_ENDPOINT = catalog.ORGANIZATIONS.endpoints.by_id_label
MEMBERSHIPS_ENDPOINT = catalog.MEMBERSHIPS.endpoints.list_label


def _by_parent(entity: Entity, parent_entity: str) -> ByParent:
    column = entity.parent_column(parent_entity)
    for by_parent in entity.endpoints.by_parent:
        if by_parent.parent_column == column:
            return by_parent
    raise ValueError(f"{entity.name}: Clerk lists none by {parent_entity}")


USER_MEMBERSHIPS_ENDPOINT = f"GET {_by_parent(catalog.MEMBERSHIPS, 'users').path}"
ORGANIZATION_MEMBERSHIPS_ENDPOINT = f"GET {_by_parent(catalog.MEMBERSHIPS, 'organizations').path}"

# What a membership list by parent may answer for a parent that no longer exists: the spec
# documents none of these for it, so each is checked against the parent itself.
_GONE_PARENT_ANSWERS = frozenset({403, 404, 422})
# Counting requests spent balancing the user windows, per window wanted.
COUNTS_PER_WINDOW = 3


class DeepOffsetTimeout(Exception):
    """An offset page deep in a list kept timing out; ``offset`` is the first that did."""

    def __init__(self, name: str, offset: int, error: ClerkUnavailableError) -> None:
        super().__init__(f"{name} timed out at offset {offset}: {error}")
        self.name = name
        self.offset = offset
        self.error = error


# ---- users: cursor walks over created_at windows --------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


async def users_by_cursor(call: Call, *, known_total: int | None = None) -> None:
    """Every user created before the scan began, walked by ``starting_after`` in windows.

    Later users belong to the next sync (or their webhook). The count of the whole list
    (``known_total``, or one ``/users/count``) says how many windows are worth it; the
    oldest user (one row) anchors the split; bisection on ``/users/count`` balances them.
    """
    upper = _now_ms()
    size = call.page_size
    whole = Window(None, upper)
    total = known_total if known_total is not None else await _count(call, whole)
    progress.current().list_started("users", total)
    wanted = windows_wanted(total, size, call.width)
    windows = [whole]
    if wanted > 1:
        first = await call.get(
            Request(USERS_ENDPOINT, _USERS_PATH, [("order_by", "+created_at"), *whole.query(), ("limit", "1")], list_body)
        )
        oldest = rows_of(first)
        created_at = oldest[0].get("created_at") if oldest else None
        if isinstance(created_at, int) and not isinstance(created_at, bool) and created_at < upper:
            windows = await plan_windows(
                lambda window: _count(call, window),
                created_at,
                upper,
                total,
                wanted=wanted,
                max_counts=COUNTS_PER_WINDOW * wanted,
                min_rows=size,
            )
    call.stats.total_count = total
    call.stats.user_windows = len(windows)
    await call.for_each(enumerate(windows), lambda indexed: _walk_window(call, *indexed))
    progress.current().list_finished("users")


async def _count(call: Call, window: Window) -> int:
    return await call.get(Request(USERS_COUNT_ENDPOINT, USERS_COUNT_PATH, window.query(), count_of))


async def _walk_window(call: Call, index: int, window: Window) -> None:
    """One window by cursor: pages until an empty one, or a short one confirmed by an empty
    one after it; rows outside the
    window (its neighbours' millisecond, under the inclusive reading) are dropped.

    If Clerk refuses the cursor (422: a user deleted under the walk may no longer mark a
    place), the walk resumes from the last ``created_at`` it read, skipping the users of
    that millisecond it already delivered.
    """
    size = call.page_size
    cursor: str | None = None
    page = 0
    last_at: int | None = None
    seen_at_last: set[str] = set()
    skip: set[str] = set()
    confirming = False
    while True:
        params = [("order_by", "+created_at"), *window.query(), ("limit", str(size))]
        if cursor is not None:
            params.append(("starting_after", cursor))
        request = Request(USERS_ENDPOINT, _USERS_PATH, params, list_body, tolerate=frozenset({422}) if cursor else frozenset())
        body = await call.get(request)
        if isinstance(body, Refused):
            if last_at is None:
                raise call.request_error(request, status=body.status)
            logger.warning("Clerk %s: the cursor was refused (HTTP 422); resuming at created_at %d", request.label, last_at)
            window, cursor, skip = Window(last_at, window.hi), None, set(seen_at_last)
            continue
        raw = rows_of(body)
        kept = [row for row in raw if in_window(row.get("created_at"), window) and row.get("id") not in skip]
        call.deliver(USERS_ENDPOINT, (index, page, 0), kept, progress_name="users")
        page += 1
        for row in kept:
            at = row.get("created_at")
            if isinstance(at, int):
                if at != last_at:
                    last_at, seen_at_last = at, set()
                seen_at_last.add(row.get("id"))
        if not raw or (len(raw) < size and confirming):
            return
        # A short page ends a walk, but a page that lost rows (a proxy, a fault) looks the
        # same: one more page from its last row confirms the end (empty) or reads on.
        confirming = len(raw) < size
        cursor = raw[-1].get("id")
        if not isinstance(cursor, str):
            raise call.request_error(request, status=200)


# ---- the other lists: offset pages --------------------------------------------------------


def _timed_out(error: ClerkUnavailableError) -> bool:
    """A page that kept timing out (504, or no answer in time): what a deep offset does.
    Other failures (503s, a stall) are the instance's, and no other way of reading helps."""
    return error.stalled_seconds is None and (
        error.last_status == 504 or (error.last_status is None and "Timeout" in error.last_error)
    )


def _page_request(call: Call, endpoint: str, path: str, params: Mapping[str, str], offset: int, **kw: Any) -> Request:
    query = [*params.items(), ("limit", str(call.page_size)), ("offset", str(offset))]
    return Request(endpoint, path, query, list_body, **kw)


async def offset_scan(
    call: Call,
    *,
    name: str,
    endpoint: str,
    path: str,
    params: Mapping[str, str],
    on_rows: Callable[[list[Row]], None] | None = None,
    deep_timeout_is_fatal: bool = True,
) -> None:
    """A list without a cursor: the first page gives the total, the promised pages are read
    concurrently, then pages past the promised end until a short one (the list may grow).

    With ``deep_timeout_is_fatal=False`` a page past the first that keeps timing out
    raises :class:`DeepOffsetTimeout` (after every other page was tried) rather than
    :class:`ClerkUnavailableError`, for the caller to read the rest another way.
    """
    size = call.page_size
    lengths: dict[int, int] = {}
    failed: dict[int, ClerkUnavailableError] = {}

    async def page(offset: int) -> int:
        try:
            rows = rows_of(await call.get(_page_request(call, endpoint, path, params, offset)))
        except ClerkUnavailableError as error:
            if deep_timeout_is_fatal or offset == 0 or not _timed_out(error):
                raise
            failed[offset] = error
            return 0
        call.deliver(endpoint, (0, offset, 0), rows, progress_name=name)
        if on_rows is not None:
            on_rows(rows)
        lengths[offset] = len(rows)
        return len(rows)

    body = await call.get(_page_request(call, endpoint, path, params, 0))
    rows = rows_of(body)
    total = total_of(body)
    progress.current().list_started(name, total)
    call.deliver(endpoint, (0, 0, 0), rows, progress_name=name)
    if on_rows is not None:
        on_rows(rows)
    lengths[0] = len(rows)
    if total is None:  # no total: plain sequential paging
        total = len(rows)
    call.stats.total_count = total
    if not (len(rows) < size and total <= len(rows)):  # more than the first page holds
        # A short first page while total_count promises more is a page that came back
        # short inside the announced range, not the end of the list: read on.
        offsets = range(size, total, size)
        await call.for_each(offsets, page)
        if failed:
            first = min(failed)
            # Deep means pages below it answered, past the first: a list that times out
            # from its second page on is down, not deep, and fails as such.
            if not (max(lengths) > 0 and first > max(lengths)):
                raise failed[first]
            raise DeepOffsetTimeout(name, first, failed[first])
        # A page inside the announced range (the last one included) holding fewer rows
        # than the range promises: the list shrank while it was read, or the page lost rows.
        call.stats.early_short_pages = sum(1 for o, n in lengths.items() if o < total and n < min(size, total - o))
        last = offsets[-1] if offsets else 0
        next_offset = last + size if lengths[last] >= size else None
        while next_offset is not None:
            if await page(next_offset) < size:
                break
            next_offset += size
        if failed:
            first = min(failed)
            raise DeepOffsetTimeout(name, first, failed[first])
        if call.stats.early_short_pages:
            logger.warning(
                "Clerk %s: %d page(s) came back short inside the announced %d rows; the list "
                "shrank while it was read, so some rows may have been skipped",
                endpoint,
                call.stats.early_short_pages,
                total,
            )
    progress.current().list_finished(name)


async def list_scan(call: Call, entity: Entity, **kw: Any) -> None:
    """An entity's instance-wide offset list, as its description gives it (path, order, params)."""
    endpoints = entity.endpoints
    await offset_scan(
        call,
        name=entity.name,
        endpoint=endpoints.list_label,
        path=endpoints.list_path,
        params=dict(endpoints.list_params),
        **kw,
    )


async def memberships(call: Call, members_count: Mapping[str, int] | None) -> None:
    """Every membership of the instance, in ``+created_at`` order.

    If a deep offset times out and ``members_count`` (organization id → members, from
    the organization scan) is known, the organizations whose members the pages read so
    far do not all hold are read one by one instead; the run's stats name the list and
    offset, and what the fallback cost.
    """
    seen: Counter[str] = Counter()

    def count_members(rows: list[Row]) -> None:
        for row in rows:
            organization = row.get("organization")
            if isinstance(organization, dict) and isinstance(organization.get("id"), str):
                seen[organization["id"]] += 1

    try:
        await list_scan(
            call,
            catalog.MEMBERSHIPS,
            on_rows=count_members,
            deep_timeout_is_fatal=members_count is None,
        )
        return
    except DeepOffsetTimeout as timeout:
        call.stats.offset_timeouts.append({"list": MEMBERSHIPS_ENDPOINT, "offset": timeout.offset, "error": str(timeout.error)})
        assert members_count is not None
        missing = [org for org, n in members_count.items() if n and seen[org] < n]
        logger.warning(
            "Clerk %s timed out at offset %d (%s); reading the memberships of %d organization(s) one by one",
            MEMBERSHIPS_ENDPOINT,
            timeout.offset,
            timeout.error,
            len(missing),
        )
    before = call.stats.requests
    await children(call, missing, of="organizations", key_base=1)
    call.stats.fallback_requests = call.stats.requests - before
    progress.current().list_finished(catalog.MEMBERSHIPS.name)


# ---- sizes ---------------------------------------------------------------------------------


async def list_sizes(call: Call, entities: list[Entity]) -> dict[str, int | None]:
    """How many rows each list holds before it is read, all asked at once: the users'
    ``/users/count``, and every offset list's ``total_count`` from a one-row first page
    (``None`` where a list announces none).

    A full scan split over two processes divides the rate by these, so that both end together.
    """
    sizes: dict[str, int | None] = {}

    async def size_of(entity: Entity) -> None:
        endpoints = entity.endpoints
        if entity.name == catalog.USERS.name:
            sizes[entity.name] = await call.get(Request(USERS_COUNT_ENDPOINT, USERS_COUNT_PATH, (), count_of))
            return
        query = [*endpoints.list_params.items(), ("limit", "1"), ("offset", "0")]
        sizes[entity.name] = total_of(await call.get(Request(endpoints.list_label, endpoints.list_path, query, list_body)))

    await call.for_each(entities, size_of)
    return sizes


# ---- by id --------------------------------------------------------------------------------


async def by_ids_filter(call: Call, entity: Entity, ids: list[str]) -> None:
    """The rows with these ids, through the list's repeated id filter, 100 ids a request."""
    endpoints = entity.endpoints
    label = endpoints.list_label
    chunk = min(IDS_PER_REQUEST, call.page_size)
    chunks = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]

    async def one(indexed: tuple[int, list[str]]) -> None:
        index, members = indexed
        params = [(endpoints.ids_filter, id_) for id_ in members] + [("limit", str(chunk)), ("offset", "0")]
        body = await call.get(Request(label, endpoints.list_path, params, list_body))
        call.deliver(label, (index, 0, 0), rows_of(body))

    await call.for_each(enumerate(chunks), one)


async def users_by_id(call: Call, ids: list[str]) -> None:
    await by_ids_filter(call, catalog.USERS, ids)


async def by_id(call: Call, entity: Entity, ids: list[str]) -> None:
    """One request per id on the entity's by-id path; a 404 leaves the id out."""
    endpoints = entity.endpoints
    label = endpoints.by_id_label

    async def one(indexed: tuple[int, str]) -> None:
        index, id_ = indexed
        body = await call.get(
            Request(
                label,
                endpoints.by_id_path.format(id=path_segment(id_)),
                list(endpoints.by_id_params.items()),
                object_of,
                tolerate=frozenset({404}),
            )
        )
        if not isinstance(body, Refused):
            call.deliver(label, (index, 0, 0), body)

    await call.for_each(enumerate(ids), one)


async def organizations_by_id(call: Call, ids: list[str]) -> None:
    await by_id(call, catalog.ORGANIZATIONS, ids)


# ---- memberships by parent -------------------------------------------------------------------


async def children(
    call: Call,
    ids: list[str],
    *,
    of: str,
    entity: Entity = catalog.MEMBERSHIPS,
    key_base: int = 0,
    known_parents: frozenset[str] = frozenset(),
) -> None:
    """Page through each parent's list of ``entity`` (memberships unless told), ``of`` naming
    the parent entity; the paths are the description's ``by_parent``.

    What these lists answer for a parent that does not exist is not documented (404, 403,
    422 or an empty page are all possible), so any of those is checked against the parent
    itself: only a 404 there makes it gone (no memberships; recorded in
    ``stats.gone_parents``). A parent that exists leaves an empty page meaning "no
    memberships" and a refusal standing as the error it is. ``known_parents`` are ids this
    run has just read: an empty page under one of them is believed without that check.
    """
    by_parent = _by_parent(entity, of)
    endpoint, list_path, params = f"GET {by_parent.path}", by_parent.path, dict(by_parent.params)
    parent_endpoint, parent_path = f"GET {by_parent.parent_path}", by_parent.parent_path
    size = call.page_size

    async def one(indexed: tuple[int, str]) -> None:
        index, id_ = indexed
        segment = path_segment(id_)
        offset = 0
        while True:
            request = _page_request(call, endpoint, list_path.format(id=segment), params, offset, tolerate=_GONE_PARENT_ANSWERS)
            body = await call.get(request)
            rows = [] if isinstance(body, Refused) else rows_of(body)
            # A parent this run just read needs no second look when its list is merely empty.
            if isinstance(body, Refused) or (offset == 0 and not rows and id_ not in known_parents):
                parent = await call.get(
                    Request(parent_endpoint, parent_path.format(id=segment), (), object_of, tolerate=frozenset({404}))
                )
                if isinstance(parent, Refused):
                    call.stats.gone_parents.append(id_)
                    return
                if isinstance(body, Refused):  # the parent exists: the refusal stands
                    if body.status == 403:
                        raise ClerkAuthError(403, path=request.label)
                    raise call.request_error(request, status=body.status)
            call.deliver(endpoint, (key_base, index, offset), rows)
            if len(rows) < size:
                return
            offset += size

    await call.for_each(enumerate(ids), one)
