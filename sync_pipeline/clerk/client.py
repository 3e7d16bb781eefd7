"""A client for the part of Clerk's Backend API the sync reads: users, organizations and
organization memberships, in full or by id.

:class:`ClerkClient` is a Dagster ``ConfigurableResource`` with a synchronous API (the
assets are synchronous). Each call runs its own asyncio event loop with one
``httpx.AsyncClient``, one rate control and one concurrency bound shared by every request
of that call, so the resource keeps no state between calls and may be used from any thread.

Behaviour, in short (the API facts are in ``../shared/clerk/README.md`` beside the repository):

- ``Authorization: Bearer <key>``, ``Clerk-API-Version: <api_version>``, a User-Agent
  naming sync_pipeline. The key is never logged nor put into an error or metadata.
- Rate (:mod:`.rate`): a share of the instance's limit, which the application shares
  (``rate_share``, half by default: 50 of 100 per 10 s for ``sk_test_`` keys, 500 of 1000
  for ``sk_live_``), or ``requests_per_10s`` when set. A 429 pauses every request for
  ``Retry-After`` and halves the rate, which climbs back slowly; 429s never use up
  attempts, the call fails only when nothing succeeded for ``stall_timeout_seconds``.
- Retries (:mod:`.call`): 5xx, 408, timeouts, dropped connections and bodies that are not
  the expected JSON back off exponentially with jitter, up to ``max_attempts``; then
  :class:`ClerkUnavailableError`. 401/403 raise :class:`ClerkAuthError` at once; other 4xx
  raise :class:`ClerkRequestError`.
- Paging (:mod:`.paging`): users by ``starting_after`` cursor over disjoint ``created_at``
  windows walked side by side (:mod:`.windows`), bounded above by when the scan began;
  organizations and memberships by ``limit``/``offset`` with ``order_by=+created_at``,
  pages read concurrently, then past the promised end until a short page. Rows are passed
  through untouched (a row seen twice is delivered twice; the normalizer de-duplicates).
- Streaming: every fetch method takes ``on_page``; when given, each page's rows are handed
  to it as they arrive -- in the thread that called the method (or, when that thread
  already runs an event loop, in one helper thread), never concurrently, in arrival
  order -- and are not kept. Without it, the method returns every row, in page order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import httpx
from pydantic import Field, PrivateAttr

from sync_pipeline.clerk import paging
from sync_pipeline.entities import catalog
from sync_pipeline.entities.description import OFFSET
from sync_pipeline.clerk.call import Call, OnPage, Request, Sink, count_of
from sync_pipeline.clerk.errors import ClerkBadIdError, ClerkConfigError
from sync_pipeline.clerk.ids import id_problem
from sync_pipeline.clerk.paging import (  # noqa: F401  (re-exported: endpoint names are stats keys)
    IDS_PER_REQUEST,
    MEMBERSHIPS_ENDPOINT,
    ORGANIZATION_ENDPOINT,
    ORGANIZATION_MEMBERSHIPS_ENDPOINT,
    ORGANIZATIONS_ENDPOINT,
    USER_ENDPOINT,
    USER_MEMBERSHIPS_ENDPOINT,
    USERS_COUNT_ENDPOINT,
    USERS_ENDPOINT,
)
from sync_pipeline.clerk.rate import (  # noqa: F401
    DEFAULT_RATE_SHARE,
    DEFAULT_STALL_TIMEOUT_SECONDS,
    instance_limit,
    parse_retry_after,
    share_of_limit,
)
from sync_pipeline.clerk.stats import EndpointStats, FetchStats, Row  # noqa: F401

logger = dg.get_dagster_logger("sync_pipeline.clerk")

DEFAULT_API_URL = "https://api.clerk.com/v1"
DEFAULT_API_VERSION = "2025-11-10"
MAX_PAGE_SIZE = 500


@dataclass
class FetchResult:
    """What a fetch method returns: the rows (empty when they were streamed through
    ``on_page``) and the call's :class:`FetchStats`."""

    rows: list[Row]
    stats: FetchStats

    def as_dict(self) -> dict[str, Any]:
        """Shorthand for ``self.stats.as_dict()``."""
        return self.stats.as_dict()


class ClerkClient(dg.ConfigurableResource):
    """Reads users, organizations and organization memberships from Clerk's Backend API.

    Wire the key from the environment: ``ClerkClient(secret_key=dg.EnvVar("CLERK_SECRET_KEY"))``.
    Every ``fetch_*`` method returns a :class:`FetchResult` (``.rows``, ``.stats``) and
    takes an optional ``on_page`` callback to stream rows instead of collecting them.
    """

    secret_key: str = Field(
        repr=False,
        description="Clerk secret key (sk_live_… or sk_test_…); wire it from EnvVar('CLERK_SECRET_KEY').",
    )
    api_url: str = Field(default=DEFAULT_API_URL, description="Base URL of Clerk's Backend API.")
    api_version: str = Field(
        default=DEFAULT_API_VERSION, description="Sent as the Clerk-API-Version header."
    )
    requests_per_10s: int | None = Field(
        default=None,
        description=(
            "Most requests in any 10-second window; when set it wins over rate_share. "
            "Default: rate_share of Clerk's limit for the key's kind."
        ),
    )
    rate_share: float = Field(
        default=DEFAULT_RATE_SHARE,
        description=(
            "Share (0-1] of the instance's limit (100 per 10 s for sk_test_ keys, 1000 for sk_live_) "
            "the sync takes; the application's own backend calls share the rest."
        ),
    )
    stall_timeout_seconds: float = Field(
        default=DEFAULT_STALL_TIMEOUT_SECONDS,
        description="Fail when no request has succeeded for this long (429s never use up attempts).",
    )
    max_concurrency: int = Field(default=16, description="Most requests in flight at once.")
    page_size: int = Field(default=MAX_PAGE_SIZE, description="limit= for list requests (1-500).")
    timeout_seconds: float = Field(
        default=60.0, description="Timeout for connecting, reading and writing one request."
    )
    max_attempts: int = Field(
        default=6, description="Attempts per request on 5xx, timeouts and dropped connections (429s not counted)."
    )
    max_backoff_seconds: float = Field(
        default=30.0, description="Cap on the exponential backoff between attempts."
    )

    # Test hooks, not configuration: a transport to fake Clerk at the HTTP edge, and the
    # length of the rate window (10 s in real life; tests shrink it).
    _transport: httpx.AsyncBaseTransport | None = PrivateAttr(default=None)
    _rate_window_seconds: float = PrivateAttr(default=10.0)

    # ---- derived settings ------------------------------------------------------------

    @property
    def rate_limit_per_10s(self) -> int:
        """The request budget per 10 s this client holds itself to (its target)."""
        if self.requests_per_10s is not None:
            return self.requests_per_10s
        return share_of_limit(self.secret_key, self.rate_share)

    @property
    def rate_limit_per_window(self) -> int:
        """The same budget, per ``_rate_window_seconds`` (10 s unless a test shrinks it)."""
        return self.rate_limit_per_10s

    def _validate(self) -> None:
        key = self.secret_key.strip() if isinstance(self.secret_key, str) else ""
        if not key:
            raise ClerkConfigError(
                "CLERK_SECRET_KEY is empty: set it to the instance's secret key (sk_live_… or sk_test_…)"
            )
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in key):
            raise ClerkConfigError("CLERK_SECRET_KEY contains whitespace or control characters: check its value")
        if not self.api_url.startswith(("https://", "http://")):
            raise ClerkConfigError(f"api_url must start with https:// or http://, got {self.api_url!r}")
        if self.requests_per_10s is not None and self.requests_per_10s < 1:
            raise ClerkConfigError(f"requests_per_10s must be at least 1, got {self.requests_per_10s}")
        if not 0 < self.rate_share <= 1:
            raise ClerkConfigError(f"rate_share must be a number in (0, 1], got {self.rate_share}")
        if not self.stall_timeout_seconds > 0:
            raise ClerkConfigError(f"stall_timeout_seconds must be positive, got {self.stall_timeout_seconds}")
        if self.max_concurrency < 1:
            raise ClerkConfigError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ClerkConfigError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {self.page_size}")
        if self.max_attempts < 1:
            raise ClerkConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not self.timeout_seconds > 0:
            raise ClerkConfigError(f"timeout_seconds must be positive, got {self.timeout_seconds}")
        if self.max_backoff_seconds < 0:
            raise ClerkConfigError(f"max_backoff_seconds must not be negative, got {self.max_backoff_seconds}")

    # ---- public API: full scans ----------------------------------------------------------

    def fetch_users(self, on_page: OnPage | None = None, *, total_count: int | None = None) -> FetchResult:
        """Every user created before the scan began (``GET /users``, oldest first per window).

        Walked by ``starting_after`` in disjoint ``created_at`` windows side by side, never by
        offset. ``total_count`` (what :meth:`fetch_list_sizes` just said) spares the count
        that sizes the windows.
        """
        return self._execute("fetch_users", on_page, lambda call: paging.users_by_cursor(call, known_total=total_count))

    def fetch_list_sizes(self, entities: Iterable[str]) -> tuple[dict[str, int | None], FetchResult]:
        """How many rows each of these lists holds (users: ``GET /users/count``; the others: the
        ``total_count`` of a one-row first page; ``None`` where a list announces none), one
        request each, concurrently."""
        descriptions = [catalog.describe(entity) for entity in entities]
        sizes: dict[str, int | None] = {}

        async def ask(call: Call) -> None:
            sizes.update(await paging.list_sizes(call, descriptions))

        result = self._execute("fetch_list_sizes", None, ask)
        return sizes, result

    def fetch_organizations(self, on_page: OnPage | None = None) -> FetchResult:
        """Every organization (``GET /organizations?include_members_count=true``, oldest first)."""
        return self.fetch_list(catalog.ORGANIZATIONS.name, on_page)

    def fetch_list(self, entity: str, on_page: OnPage | None = None) -> FetchResult:
        """Every row of an entity Clerk lists by offset, as its description says
        (``GET /organizations?order_by=+created_at&include_members_count=true``, …)."""
        description = catalog.describe(entity)
        if description.endpoints.paging != OFFSET:
            raise ValueError(f"{entity} is not read by offset; use its own fetch method")
        return self._execute(f"fetch_{entity}", on_page, lambda call: paging.list_scan(call, description))

    def fetch_memberships(
        self, on_page: OnPage | None = None, *, members_count: Mapping[str, int] | None = None
    ) -> FetchResult:
        """Every organization membership of the instance (``GET /organization_memberships``, oldest first).

        ``members_count`` (organization id → its ``members_count``, from the organization
        scan) lets a deep offset that keeps timing out be worked around: the memberships not
        yet covered are read per organization, and the stats say so. Without it, that
        timeout fails the call.
        """
        return self._execute("fetch_memberships", on_page, lambda call: paging.memberships(call, members_count))

    # ---- public API: by id (partial syncs) ------------------------------------------------

    def fetch_by_id(self, entity: str, ids: Iterable[str], on_page: OnPage | None = None) -> FetchResult:
        """The rows of ``entity`` with these ids that exist; ids Clerk doesn't know are simply
        absent. Through the list's id filter where it has one (``GET /users?user_id=…``, 100
        ids a request), else one request per id on its by-id path (404 → absent)."""
        description = catalog.describe(entity)
        endpoints = description.endpoints
        if not (endpoints.ids_filter or endpoints.by_id_path):
            raise ValueError(f"Clerk reads no {entity} by id")
        unique = _unique_ids(ids, entity)
        read = paging.by_ids_filter if endpoints.ids_filter else paging.by_id
        return self._execute(f"fetch_{entity}_by_id", on_page, lambda call: read(call, description, unique))

    def fetch_users_by_id(self, ids: Iterable[str], on_page: OnPage | None = None) -> FetchResult:
        """The users with these ids that exist (``GET /users?user_id=…``, 100 ids a request)."""
        return self.fetch_by_id(catalog.USERS.name, ids, on_page)

    def fetch_organizations_by_id(self, ids: Iterable[str], on_page: OnPage | None = None) -> FetchResult:
        """The organizations with these ids that exist (``GET /organizations/{id}``; 404 → absent)."""
        return self.fetch_by_id(catalog.ORGANIZATIONS.name, ids, on_page)

    def fetch_children(
        self,
        entity: str,
        of: str,
        ids: Iterable[str],
        on_page: OnPage | None = None,
        *,
        known_parents: Iterable[str] = (),
    ) -> FetchResult:
        """Every row of ``entity`` under these rows of its parent entity ``of``, from the
        description's by-parent list (``GET /users/{id}/organization_memberships``, …).

        A list answering 404, 403, 422 or an empty page for a parent is checked with the
        parent's own by-id path: a 404 there means the parent is gone (no children; its id
        is in ``.stats.gone_parents``); otherwise an error stays an error. An empty list
        under one of ``known_parents`` (just read) is believed without that check.
        """
        description = catalog.describe(entity)
        unique = _unique_ids(ids, of)
        return self._execute(
            f"fetch_{description.singular}s_of_{of}",
            on_page,
            lambda call: paging.children(call, unique, of=of, entity=description, known_parents=frozenset(known_parents)),
        )

    def fetch_memberships_of_users(self, ids: Iterable[str], on_page: OnPage | None = None) -> FetchResult:
        """Every membership of these users (``GET /users/{id}/organization_memberships``)."""
        return self.fetch_children(catalog.MEMBERSHIPS.name, catalog.USERS.name, ids, on_page)

    def fetch_memberships_of_organizations(
        self, ids: Iterable[str], on_page: OnPage | None = None
    ) -> FetchResult:
        """Every membership of these organizations (``GET /organizations/{id}/memberships``)."""
        return self.fetch_children(catalog.MEMBERSHIPS.name, catalog.ORGANIZATIONS.name, ids, on_page)

    # ---- running a call ---------------------------------------------------------------

    def _execute(
        self,
        operation: str,
        on_page: OnPage | None,
        body: Callable[[Call], Awaitable[None]],
    ) -> FetchResult:
        self._validate()
        stats = FetchStats(operation=operation)
        sink = Sink(on_page)

        async def main() -> None:
            async with Call(self, stats, sink) as call:
                await body(call)

        started = time.monotonic()
        try:
            _run_coroutine(main)
        except BaseException:
            stats.seconds = time.monotonic() - started
            logger.warning("Clerk %s failed after %s", operation, stats.summary())
            raise
        stats.seconds = time.monotonic() - started
        logger.info("Clerk %s: %s", operation, stats.summary())
        return FetchResult(rows=sink.rows(), stats=stats)


def _unique_ids(ids: Iterable[str], what: str) -> list[str]:
    """The ids once each, in order; an id that cannot be Clerk's is refused before anything is sent."""
    if isinstance(ids, str):
        raise TypeError("ids must be an iterable of id strings, not one string")
    unique = [i for i in dict.fromkeys(ids) if i != ""]
    for id_ in unique:
        problem = id_problem(id_)
        if problem is not None:
            shown = repr(id_[:40]) if isinstance(id_, str) else repr(id_)
            raise ClerkBadIdError(what, f"{shown} is not a Clerk id ({problem})")
    return unique


def _run_coroutine(make: Callable[[], Awaitable[None]]) -> None:
    """Run a coroutine to completion from synchronous code.

    In a thread without a running event loop (Dagster's op threads, a plain script, a
    worker thread), ``asyncio.run`` gives the call its own loop. In a thread that already
    runs a loop (a notebook, an async caller) the call runs in one helper thread instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(make())
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="clerk-client") as pool:
        pool.submit(lambda: asyncio.run(make())).result()
