"""A client for the part of Clerk's Backend API the sync reads: users, organizations and
organization memberships, in full or by id.

:class:`ClerkClient` is a Dagster ``ConfigurableResource`` with a synchronous API (the
assets are synchronous). Each call runs its own asyncio event loop with one
``httpx.AsyncClient``, one rate limiter and one concurrency bound shared by every request
of that call, so the resource keeps no state between calls and may be used from any thread.

Behaviour, in short (the API facts are in ``../shared/clerk/README.md`` beside the repository):

- ``Authorization: Bearer <key>``, ``Clerk-API-Version: <api_version>``, a User-Agent
  naming sync_pipeline. The key is never logged nor put into an error or metadata.
- Rate: at most ``requests_per_10s`` requests in *any* 10-second window (default 95 for
  ``sk_test_`` keys, 950 for ``sk_live_``, 95 for anything else). In flight: at most
  ``max_concurrency`` requests.
- Retries (tenacity): a 429 waits exactly ``Retry-After`` seconds (and pauses every other
  request of the call for as long); 5xx, 408, timeouts, dropped connections and bodies that
  are not the expected JSON back off exponentially with jitter, capped at
  ``max_backoff_seconds``. Every attempt, 429s included, counts toward ``max_attempts``;
  a request that still fails raises :class:`ClerkUnavailableError`. 401/403 raise
  :class:`ClerkAuthError` at once; other 4xx raise :class:`ClerkRequestError`.
- Full scans page with ``limit``/``offset``: learn the total (``/users/count``, or the
  first page's ``total_count``), read the promised pages concurrently, then keep reading
  past the promised end until a short page, because the list may grow while it is read.
  Rows are passed through untouched: a row seen on two pages is delivered twice (the
  normalizer de-duplicates), unknown fields and enum values are kept.
- Streaming: every fetch method takes ``on_page``; when given, each page's rows are handed
  to it as they arrive -- in the thread that called the method (or, when that thread
  already runs an event loop, in one helper thread), never concurrently, in arrival
  order -- and are not kept. Without it, the method returns every row, in page order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import dagster as dg
import httpx
import orjson
from aiolimiter import AsyncLimiter
from pydantic import Field, PrivateAttr
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from sync_pipeline import progress
from sync_pipeline.clerk.errors import (
    ClerkAuthError,
    ClerkConfigError,
    ClerkRequestError,
    ClerkUnavailableError,
)

logger = dg.get_dagster_logger("sync_pipeline.clerk")

Row = dict[str, Any]
OnPage = Callable[[list[Row]], None]

DEFAULT_API_URL = "https://api.clerk.com/v1"
DEFAULT_API_VERSION = "2025-11-10"
# Clerk allows 100 (development) / 1000 (production) requests per 10 s per instance.
DEVELOPMENT_REQUESTS_PER_10S = 95
PRODUCTION_REQUESTS_PER_10S = 950
MAX_PAGE_SIZE = 500
IDS_PER_REQUEST = 100  # Clerk accepts up to 100 values of a repeated filter such as user_id=

# Endpoint names used as keys of FetchStats.endpoints.
USERS_ENDPOINT = "GET /users"
USERS_COUNT_ENDPOINT = "GET /users/count"
ORGANIZATIONS_ENDPOINT = "GET /organizations"
ORGANIZATION_ENDPOINT = "GET /organizations/{id}"
MEMBERSHIPS_ENDPOINT = "GET /organization_memberships"
USER_MEMBERSHIPS_ENDPOINT = "GET /users/{id}/organization_memberships"
ORGANIZATION_MEMBERSHIPS_ENDPOINT = "GET /organizations/{id}/memberships"

_TRANSIENT_STATUSES = frozenset({408, 429})


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        ours = version("sync_pipeline")
    except Exception:  # not installed (running from a checkout)
        ours = "dev"
    return f"sync_pipeline/{ours} (clerk-sync; httpx/{httpx.__version__})"


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


@dataclass
class EndpointStats:
    """Counters for one endpoint (for example ``GET /users``) within one call."""

    requests: int = 0  # HTTP attempts sent, retries included
    pages: int = 0  # successful responses whose rows were delivered
    rows: int = 0  # rows delivered (duplicates across pages included)
    retries: int = 0  # attempts that failed and were retried
    responses_429: int = 0
    not_found: int = 0  # 404s read as "absent" (by-id reads)
    seconds: float = 0.0  # summed request time (concurrent requests overlap)

    def add(self, other: EndpointStats) -> None:
        self.requests += other.requests
        self.pages += other.pages
        self.rows += other.rows
        self.retries += other.retries
        self.responses_429 += other.responses_429
        self.not_found += other.not_found
        self.seconds += other.seconds

    def as_dict(self) -> dict[str, int | float]:
        return {
            "requests": self.requests,
            "pages": self.pages,
            "rows": self.rows,
            "retries": self.retries,
            "responses_429": self.responses_429,
            "not_found": self.not_found,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class FetchStats:
    """What one fetch (or several, merged) cost: the totals, and the same per endpoint.

    ``total_count`` is the size Clerk announced when a full scan started (``None`` for
    by-id reads). ``early_short_pages`` counts pages *inside* the announced range that came
    back short, the first and the last included (a page holding fewer rows than the range
    promises it): the list shrank while it was read, so later rows shifted to lower offsets
    and some may have been skipped, or the page itself lost rows. A consumer that deletes
    what it did not see should treat a non-zero value with suspicion.
    """

    operation: str = ""
    seconds: float = 0.0  # wall-clock time of the call(s)
    endpoints: dict[str, EndpointStats] = field(default_factory=dict)
    total_count: int | None = None
    early_short_pages: int = 0

    def endpoint(self, name: str) -> EndpointStats:
        stats = self.endpoints.get(name)
        if stats is None:
            stats = self.endpoints[name] = EndpointStats()
        return stats

    def _sum(self, attribute: str) -> int:
        return sum(getattr(e, attribute) for e in self.endpoints.values())

    @property
    def requests(self) -> int:
        return self._sum("requests")

    @property
    def pages(self) -> int:
        return self._sum("pages")

    @property
    def rows(self) -> int:
        return self._sum("rows")

    @property
    def retries(self) -> int:
        return self._sum("retries")

    @property
    def responses_429(self) -> int:
        return self._sum("responses_429")

    @property
    def not_found(self) -> int:
        return self._sum("not_found")

    def merge(self, *others: FetchStats) -> FetchStats:
        """A new FetchStats adding this one and ``others`` (seconds add up too)."""
        merged = FetchStats(operation="+".join(s.operation for s in (self, *others) if s.operation))
        for stats in (self, *others):
            merged.seconds += stats.seconds
            merged.early_short_pages += stats.early_short_pages
            if stats.total_count is not None:
                merged.total_count = (merged.total_count or 0) + stats.total_count
            for name, endpoint in stats.endpoints.items():
                merged.endpoint(name).add(endpoint)
        return merged

    def as_dict(self) -> dict[str, Any]:
        """Every counter as plain JSON-able values, with the per-endpoint breakdown."""
        return {
            "operation": self.operation,
            "requests": self.requests,
            "pages": self.pages,
            "rows": self.rows,
            "retries": self.retries,
            "responses_429": self.responses_429,
            "not_found": self.not_found,
            "seconds": round(self.seconds, 3),
            "total_count": self.total_count,
            "early_short_pages": self.early_short_pages,
            "endpoints": {name: e.as_dict() for name, e in sorted(self.endpoints.items())},
        }

    def to_metadata(self, prefix: str = "clerk_") -> dict[str, Any]:
        """Plain values for Dagster metadata (``context.add_output_metadata``).

        The per-endpoint breakdown is a dict, which Dagster shows as JSON.
        """
        metadata: dict[str, Any] = {
            f"{prefix}requests": self.requests,
            f"{prefix}pages": self.pages,
            f"{prefix}rows": self.rows,
            f"{prefix}retries": self.retries,
            f"{prefix}responses_429": self.responses_429,
            f"{prefix}seconds": round(self.seconds, 3),
            f"{prefix}endpoints": {name: e.as_dict() for name, e in sorted(self.endpoints.items())},
        }
        if self.total_count is not None:
            metadata[f"{prefix}total_count"] = self.total_count
        if self.early_short_pages:
            metadata[f"{prefix}early_short_pages"] = self.early_short_pages
        return metadata

    def summary(self) -> str:
        text = (
            f"{self.requests} request(s), {self.pages} page(s), {self.rows} row(s), "
            f"{self.retries} retr{'y' if self.retries == 1 else 'ies'} "
            f"({self.responses_429} × 429) in {self.seconds:.1f} s"
        )
        if self.early_short_pages:
            text += f"; {self.early_short_pages} page(s) came back short inside the announced range"
        return text


@dataclass
class FetchResult:
    """What a fetch method returns: the rows (empty when they were streamed through
    ``on_page``) and the call's :class:`FetchStats`."""

    rows: list[Row]
    stats: FetchStats

    def as_dict(self) -> dict[str, Any]:
        """Shorthand for ``self.stats.as_dict()``."""
        return self.stats.as_dict()


# --------------------------------------------------------------------------------------
# The resource
# --------------------------------------------------------------------------------------


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
            "Most requests in any 10-second window. Default: a little under Clerk's limit for "
            "the key's kind (95 for sk_test_ keys, 950 for sk_live_ keys, 95 otherwise). "
            "Lower it when other clients share the instance's budget."
        ),
    )
    max_concurrency: int = Field(default=16, description="Most requests in flight at once.")
    page_size: int = Field(default=MAX_PAGE_SIZE, description="limit= for list requests (1-500).")
    timeout_seconds: float = Field(
        default=60.0, description="Timeout for connecting, reading and writing one request."
    )
    max_attempts: int = Field(
        default=6, description="Attempts per request (429s included) before giving up."
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
        """The request budget per 10 s this client holds itself to."""
        if self.requests_per_10s is not None:
            return self.requests_per_10s
        if self.secret_key.strip().startswith("sk_live_"):
            return PRODUCTION_REQUESTS_PER_10S
        return DEVELOPMENT_REQUESTS_PER_10S

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
        """Every user of the instance (``GET /users``, oldest first).

        Asks ``/users/count`` for the total (unless ``total_count`` is given: what
        :meth:`count_users` just said), reads the pages concurrently, then reads past the
        announced end until a short page.
        """
        return self._execute(
            "fetch_users",
            on_page,
            lambda call: call.scan(
                endpoint=USERS_ENDPOINT,
                path="/users",
                params={"order_by": "+created_at"},
                count_endpoint=USERS_COUNT_ENDPOINT,
                count_path="/users/count",
                known_total=total_count,
            ),
        )

    def fetch_user_count(self) -> FetchResult:
        """How many users the instance holds (``GET /users/count``, one request), as ``.stats.total_count``."""

        async def count(call: _Call) -> None:
            call.stats.total_count = await call.get(
                _Request(endpoint=USERS_COUNT_ENDPOINT, path="/users/count", params=(), parse=_count_of)
            )

        return self._execute("fetch_user_count", None, count)

    def fetch_organizations(self, on_page: OnPage | None = None) -> FetchResult:
        """Every organization (``GET /organizations?include_members_count=true``, oldest first)."""
        return self._execute(
            "fetch_organizations",
            on_page,
            lambda call: call.scan(
                endpoint=ORGANIZATIONS_ENDPOINT,
                path="/organizations",
                params={"order_by": "+created_at", "include_members_count": "true"},
            ),
        )

    def fetch_memberships(self, on_page: OnPage | None = None) -> FetchResult:
        """Every organization membership of the instance (``GET /organization_memberships``)."""
        return self._execute(
            "fetch_memberships",
            on_page,
            lambda call: call.scan(endpoint=MEMBERSHIPS_ENDPOINT, path="/organization_memberships", params={}),
        )

    # ---- public API: by id (partial syncs) ------------------------------------------------

    def fetch_users_by_id(self, ids: Iterable[str], on_page: OnPage | None = None) -> FetchResult:
        """The users with these ids that exist (``GET /users?user_id=…``, 100 ids a request).

        Ids Clerk doesn't know are simply absent from the result.
        """
        unique = _unique_ids(ids)
        return self._execute("fetch_users_by_id", on_page, lambda call: call.users_by_id(unique))

    def fetch_organizations_by_id(self, ids: Iterable[str], on_page: OnPage | None = None) -> FetchResult:
        """The organizations with these ids that exist (``GET /organizations/{id}``; 404 → absent)."""
        unique = _unique_ids(ids)
        return self._execute(
            "fetch_organizations_by_id", on_page, lambda call: call.organizations_by_id(unique)
        )

    def fetch_memberships_of_users(self, ids: Iterable[str], on_page: OnPage | None = None) -> FetchResult:
        """Every membership of these users (``GET /users/{id}/organization_memberships``).

        A user Clerk answers 404 for is gone, and so has no memberships.
        """
        unique = _unique_ids(ids)
        return self._execute(
            "fetch_memberships_of_users",
            on_page,
            lambda call: call.children(
                unique,
                endpoint=USER_MEMBERSHIPS_ENDPOINT,
                path_of=lambda id_: f"/users/{quote(id_, safe='')}/organization_memberships",
            ),
        )

    def fetch_memberships_of_organizations(
        self, ids: Iterable[str], on_page: OnPage | None = None
    ) -> FetchResult:
        """Every membership of these organizations (``GET /organizations/{id}/memberships``).

        An organization Clerk answers 404 for is gone, and so has no memberships.
        """
        unique = _unique_ids(ids)
        return self._execute(
            "fetch_memberships_of_organizations",
            on_page,
            lambda call: call.children(
                unique,
                endpoint=ORGANIZATION_MEMBERSHIPS_ENDPOINT,
                path_of=lambda id_: f"/organizations/{quote(id_, safe='')}/memberships",
            ),
        )

    # ---- running a call ---------------------------------------------------------------

    def _execute(
        self,
        operation: str,
        on_page: OnPage | None,
        body: Callable[[_Call], Awaitable[None]],
    ) -> FetchResult:
        self._validate()
        stats = FetchStats(operation=operation)
        # Interim (the client's rewrite reports from its scan loop): pages and rate to the terminal.
        reporter, name, begun = progress.current(), operation.removeprefix("fetch_"), time.monotonic()
        reporter.list_started(name, None)
        if on_page is not None:
            def on_page(rows: list[Row], _deliver: OnPage = on_page) -> None:  # noqa: E306
                _deliver(rows)
                reporter.page_read(name, len(rows))
                reporter.rate(stats.requests * 10 / max(time.monotonic() - begun, 1e-3), stats.responses_429, 0.0)
        sink = _Sink(on_page)

        async def main() -> None:
            async with _Call(self, stats, sink) as call:
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
        reporter.list_finished(name)
        return FetchResult(rows=sink.rows(), stats=stats)


def _unique_ids(ids: Iterable[str]) -> list[str]:
    if isinstance(ids, str):
        raise TypeError("ids must be an iterable of id strings, not one string")
    return [i for i in dict.fromkeys(ids) if i]


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


# --------------------------------------------------------------------------------------
# Internals of one call
# --------------------------------------------------------------------------------------


class _Sink:
    """Where pages go: to ``on_page`` at once, or kept by key to be returned in order."""

    def __init__(self, on_page: OnPage | None) -> None:
        self._on_page = on_page
        self._pages: dict[tuple[int, int], list[Row]] = {}

    def deliver(self, key: tuple[int, int], rows: list[Row]) -> None:
        if self._on_page is None:
            self._pages[key] = rows
        elif rows:
            # Runs on the event loop's thread, so calls never overlap.
            self._on_page(rows)

    def rows(self) -> list[Row]:
        return [row for key in sorted(self._pages) for row in self._pages[key]]


class _Transient(Exception):
    """An attempt that may succeed if repeated."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class _BadShape(ValueError):
    pass


_NOT_FOUND = object()


def _decode_json(response: httpx.Response) -> Any:
    """The body as JSON: orjson (several times the stdlib's speed on 500-row pages), or the
    stdlib where orjson refuses what it accepts (lone surrogates, integers past 64 bits,
    1e999), so every body reads exactly as ``response.json()`` would read it."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.json()


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date).

    ``None`` when the header is missing or unreadable (then the caller backs off instead).
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _rows_of(body: Any) -> list[Row]:
    """Rows of a list response: a bare array (``/users``) or ``{"data": [...]}``.

    Both shapes are accepted on every list endpoint so a change of wrapping between API
    versions doesn't break the read.
    """
    if isinstance(body, list):
        rows = body
    elif isinstance(body, dict) and isinstance(body.get("data"), list):
        rows = body["data"]
    else:
        raise _BadShape("expected a JSON array or an object with a data array")
    if not all(isinstance(row, dict) for row in rows):
        raise _BadShape("expected JSON objects as rows")
    return rows


def _total_of(body: Any) -> int | None:
    if isinstance(body, dict):
        total = body.get("total_count")
        if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
            return total
    return None


def _count_of(body: Any) -> int:
    total = _total_of(body)
    if total is None:
        raise _BadShape("expected an object with an integer total_count")
    return total


def _object_of(body: Any) -> list[Row]:
    if not isinstance(body, dict) or "id" not in body:
        raise _BadShape("expected a JSON object with an id")
    return [body]


def _limiter(requests_per_window: int, window_seconds: float, max_concurrency: int) -> AsyncLimiter:
    """A leaky bucket that lets at most ``requests_per_window`` requests into *any* window.

    ``AsyncLimiter(n, window)`` alone allows a burst of n on top of n per window (2n in
    the first window), which would trip Clerk's limit. With a small burst b and a drain
    rate of (n - b) per window, any window sees at most b + (n - b) = n requests.
    """
    n = requests_per_window
    burst = max(1, min(max_concurrency, n // 20))
    if n <= burst:
        return AsyncLimiter(n, window_seconds)
    return AsyncLimiter(burst, window_seconds * burst / (n - burst))


@dataclass
class _Request:
    endpoint: str
    path: str
    params: Sequence[tuple[str, str]]
    parse: Callable[[Any], Any]
    allow_404: bool = False

    @property
    def label(self) -> str:
        text = f"GET {self.path}"
        offset = next((v for k, v in self.params if k == "offset"), None)
        if offset not in (None, "0"):
            text += f" offset={offset}"
        ids = sum(1 for k, _ in self.params if k == "user_id")
        if ids:
            text += f" ({ids} user_id filter(s))"
        return text


class _Call:
    """The state one fetch method shares across its requests: HTTP client, limiter,
    concurrency bound, the 429 pause, stats and the sink."""

    def __init__(self, client: ClerkClient, stats: FetchStats, sink: _Sink) -> None:
        self.settings = client
        self.stats = stats
        self.sink = sink
        self._secret = client.secret_key.strip()
        self.page_size = client.page_size
        self.width = client.max_concurrency
        self.limiter = _limiter(client.rate_limit_per_10s, client._rate_window_seconds, client.max_concurrency)
        self.semaphore = asyncio.Semaphore(client.max_concurrency)
        self.resume_at = 0.0  # loop time before which no request is sent (after a 429)
        self.http = httpx.AsyncClient(
            base_url=client.api_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {self._secret}",
                "Clerk-API-Version": client.api_version,
                "User-Agent": _user_agent(),
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(client.timeout_seconds),
            limits=httpx.Limits(
                max_connections=client.max_concurrency, max_keepalive_connections=client.max_concurrency
            ),
            follow_redirects=False,
            transport=client._transport,
        )

    async def __aenter__(self) -> _Call:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.aclose()

    # ---- one request, with retries -----------------------------------------------------

    async def get(self, request: _Request) -> Any:
        """The parsed body of ``request``, or ``_NOT_FOUND`` (404 with ``allow_404``)."""
        settings = self.settings
        backoff = wait_exponential_jitter(
            initial=0.5,
            max=settings.max_backoff_seconds,
            jitter=min(0.5, settings.max_backoff_seconds),
        )

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, _Transient) and error.retry_after is not None:
                return error.retry_after
            return backoff(state)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self.stats.endpoint(request.endpoint).retries += 1
            logger.warning(
                "Clerk %s: %s; retrying in %.1f s (attempt %d of %d failed)",
                request.label,
                getattr(error, "reason", type(error).__name__),
                state.next_action.sleep if state.next_action else 0.0,
                state.attempt_number,
                settings.max_attempts,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.max_attempts),
            wait=wait,
            retry=retry_if_exception_type(_Transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return await retrying(self._attempt, request)
        except _Transient as error:
            raise ClerkUnavailableError(
                path=request.label,
                attempts=settings.max_attempts,
                last_status=error.status,
                last_error=error.reason,
            ) from error

    async def _attempt(self, request: _Request) -> Any:
        stats = self.stats.endpoint(request.endpoint)
        loop = asyncio.get_running_loop()
        async with self.semaphore:
            while (pause := self.resume_at - loop.time()) > 0:
                await asyncio.sleep(pause)
            await self.limiter.acquire()
            stats.requests += 1
            started = time.monotonic()
            try:
                response = await self.http.get(request.path, params=list(request.params))
            except httpx.TransportError as error:  # timeouts, refused/dropped connections, bad framing
                raise _Transient(f"{type(error).__name__}: {self._scrub(str(error)) or 'no detail'}") from error
            finally:
                stats.seconds += time.monotonic() - started

        status = response.status_code
        if status == 429:
            stats.responses_429 += 1
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                self.resume_at = max(self.resume_at, loop.time() + retry_after)
            raise _Transient("HTTP 429", status=status, retry_after=retry_after)
        if status >= 500 or status in _TRANSIENT_STATUSES:
            raise _Transient(f"HTTP {status}", status=status)
        if status in (401, 403):
            raise ClerkAuthError(status, path=request.label)
        if status == 404 and request.allow_404:
            stats.not_found += 1
            return _NOT_FOUND
        if not 200 <= status < 300:
            raise self._request_error(request, response)
        try:
            return request.parse(_decode_json(response))
        except _BadShape as error:
            raise _Transient(f"unexpected body from HTTP {status}: {error}", status=status) from error
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
            raise _Transient(f"body of HTTP {status} is not valid JSON", status=status) from error

    def _request_error(self, request: _Request, response: httpx.Response) -> ClerkRequestError:
        long_message = code = trace_id = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            errors = body.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                first = errors[0]
                long_message = first.get("long_message") or first.get("message")
                code = first.get("code")
            trace_id = body.get("clerk_trace_id")
        if not long_message:
            if 300 <= response.status_code < 400:
                long_message = f"unexpected redirect to {response.headers.get('Location', '?')}: check api_url"
            elif response.status_code == 404:
                long_message = "not found: check api_url"
        return ClerkRequestError(
            response.status_code,
            path=request.label,
            long_message=self._scrub(str(long_message)) if long_message else None,
            code=str(code) if code else None,
            trace_id=str(trace_id) if trace_id else None,
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "[secret key]") if self._secret else text

    # ---- fan-out -------------------------------------------------------------------------

    async def for_each(self, items: Iterable[Any], work: Callable[[Any], Awaitable[None]]) -> None:
        """Run ``work`` over ``items`` with at most ``max_concurrency`` running at once.

        The first error cancels the rest and propagates as is.
        """
        iterator = iter(items)

        async def worker() -> None:
            for item in iterator:  # shared: each item is taken by exactly one worker
                await work(item)

        workers = [asyncio.create_task(worker()) for _ in range(self.width)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise

    def deliver(self, endpoint: str, key: tuple[int, int], rows: list[Row]) -> None:
        stats = self.stats.endpoint(endpoint)
        stats.pages += 1
        stats.rows += len(rows)
        self.sink.deliver(key, rows)

    def _page_request(self, endpoint: str, path: str, params: dict[str, str], offset: int, **kw: Any) -> _Request:
        query = [*params.items(), ("limit", str(self.page_size)), ("offset", str(offset))]
        return _Request(endpoint=endpoint, path=path, params=query, parse=_list_body, **kw)

    # ---- full scans ----------------------------------------------------------------------

    async def scan(
        self,
        *,
        endpoint: str,
        path: str,
        params: dict[str, str],
        count_endpoint: str | None = None,
        count_path: str | None = None,
        known_total: int | None = None,
    ) -> None:
        size = self.page_size
        lengths: dict[int, int] = {}

        async def page(offset: int) -> int:
            rows = _rows_of(await self.get(self._page_request(endpoint, path, params, offset)))
            self.deliver(endpoint, (0, offset), rows)
            lengths[offset] = len(rows)
            return len(rows)

        if count_path is not None:
            total = known_total if known_total is not None else await self.get(
                _Request(endpoint=count_endpoint or count_path, path=count_path, params=(), parse=_count_of)
            )
            first = 0
        else:
            body = await self.get(self._page_request(endpoint, path, params, 0))
            rows = _rows_of(body)
            self.deliver(endpoint, (0, 0), rows)
            lengths[0] = len(rows)
            total = _total_of(body)
            if total is None:  # no total: plain sequential paging
                total = len(rows)
            if len(rows) < size and total <= len(rows):  # the whole list fit on the first page
                self.stats.total_count = total
                return
            # A short first page while total_count promises more is a page that came back
            # short inside the announced range, not the end of the list: read on.
            first = size
        self.stats.total_count = total

        offsets = range(first, total, size)
        await self.for_each(offsets, page)

        # A page inside the announced range (the last one included) holding fewer rows
        # than the range promises: the list shrank while it was read, or the page lost rows.
        self.stats.early_short_pages = sum(1 for o, n in lengths.items() if o < total and n < min(size, total - o))
        # Read past the announced end until a short page: rows added while paging land there.
        if offsets:
            last = offsets[-1]
            next_offset = last + size if lengths[last] >= size else None
        else:
            next_offset = first if lengths.get(0, size) >= size else None
        while next_offset is not None:
            if await page(next_offset) < size:
                break
            next_offset += size
        if self.stats.early_short_pages:
            logger.warning(
                "Clerk %s: %d page(s) came back short inside the announced %d rows; the list "
                "shrank while it was read, so some rows may have been skipped",
                endpoint,
                self.stats.early_short_pages,
                total,
            )

    # ---- by id -------------------------------------------------------------------------------

    async def users_by_id(self, ids: list[str]) -> None:
        chunk = min(IDS_PER_REQUEST, self.page_size)
        chunks = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]

        async def one(indexed: tuple[int, list[str]]) -> None:
            index, members = indexed
            params = [("user_id", id_) for id_ in members] + [("limit", str(chunk)), ("offset", "0")]
            body = await self.get(_Request(endpoint=USERS_ENDPOINT, path="/users", params=params, parse=_list_body))
            self.deliver(USERS_ENDPOINT, (index, 0), _rows_of(body))

        await self.for_each(enumerate(chunks), one)

    async def organizations_by_id(self, ids: list[str]) -> None:
        async def one(indexed: tuple[int, str]) -> None:
            index, id_ = indexed
            body = await self.get(
                _Request(
                    endpoint=ORGANIZATION_ENDPOINT,
                    path=f"/organizations/{quote(id_, safe='')}",
                    params=[("include_members_count", "true")],
                    parse=_object_of,
                    allow_404=True,
                )
            )
            if body is not _NOT_FOUND:
                self.deliver(ORGANIZATION_ENDPOINT, (index, 0), body)

        await self.for_each(enumerate(ids), one)

    async def children(self, ids: list[str], *, endpoint: str, path_of: Callable[[str], str]) -> None:
        """Page through a per-parent list for each parent; a 404 parent has no children."""
        size = self.page_size

        async def one(indexed: tuple[int, str]) -> None:
            index, id_ = indexed
            offset = 0
            while True:
                body = await self.get(self._page_request(endpoint, path_of(id_), {}, offset, allow_404=True))
                if body is _NOT_FOUND:
                    return
                rows = _rows_of(body)
                self.deliver(endpoint, (index, offset), rows)
                if len(rows) < size:
                    return
                offset += size

        await self.for_each(enumerate(ids), one)


def _list_body(body: Any) -> Any:
    """Validate a list response inside the retried attempt; the body itself is returned."""
    _rows_of(body)
    return body
