"""One fetch method's requests: the HTTP client, retries, the rate, and where pages go.

A :class:`Call` lives for one public method of :class:`~sync_pipeline.clerk.client.ClerkClient`
and is shared by every request it makes, so the pause after a 429, the rate and the
concurrency bound hold across all of them.

Retries (tenacity): a 429 waits ``Retry-After`` (every request of the call stands still
meanwhile) and never uses up an attempt: the request is tried again for as long as the
instance keeps answering *something* successfully within ``stall_timeout_seconds``. 5xx,
408, timeouts, dropped connections and bodies that are not the expected JSON back off
exponentially with jitter, up to ``max_attempts``. 401 raises :class:`ClerkAuthError` at
once, as does 403 (except where a request tolerates it); other 4xx raise
:class:`ClerkRequestError`.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg
import httpx
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.wait import wait_exponential_jitter

from sync_pipeline import progress
from sync_pipeline.clerk.errors import (
    ClerkAuthError,
    ClerkRequestError,
    ClerkUnavailableError,
)
from sync_pipeline.clerk.rate import RateControl, parse_retry_after
from sync_pipeline.clerk.stats import FetchStats, Row

if TYPE_CHECKING:
    from sync_pipeline.clerk.client import ClerkClient

logger = dg.get_dagster_logger("sync_pipeline.clerk")

OnPage = Callable[[list[Row]], None]

_TRANSIENT_STATUSES = frozenset({408, 429})


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        ours = version("sync_pipeline")
    except Exception:  # not installed (running from a checkout)
        ours = "dev"
    return f"sync_pipeline/{ours} (clerk-sync; httpx/{httpx.__version__})"


@dataclass(frozen=True)
class Refused:
    """A status the request said it would take as an answer (``Request.tolerate``)."""

    status: int


@dataclass
class Request:
    endpoint: str
    path: str
    params: Sequence[tuple[str, str]]
    parse: Callable[[Any], Any]
    tolerate: frozenset[int] = field(default_factory=frozenset)  # statuses returned as Refused

    @property
    def label(self) -> str:
        text = f"GET {self.path}"
        offset = next((v for k, v in self.params if k == "offset"), None)
        if offset not in (None, "0"):
            text += f" offset={offset}"
        cursor = next((v for k, v in self.params if k == "starting_after"), None)
        if cursor:
            text += f" starting_after={cursor}"
        ids = sum(1 for k, _ in self.params if k == "user_id")
        if ids:
            text += f" ({ids} user_id filter(s))"
        return text


class Transient(Exception):
    """An attempt that may succeed if repeated."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class BadShape(ValueError):
    pass


class Sink:
    """Where pages go: to ``on_page`` at once, or kept by key to be returned in order."""

    def __init__(self, on_page: OnPage | None) -> None:
        self._on_page = on_page
        self._pages: dict[tuple, list[Row]] = {}

    def deliver(self, key: tuple, rows: list[Row]) -> None:
        if self._on_page is None:
            self._pages[key] = rows
        elif rows:
            # Runs on the event loop's thread, so calls never overlap.
            self._on_page(rows)

    def rows(self) -> list[Row]:
        return [row for key in sorted(self._pages) for row in self._pages[key]]


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS settings every call's client shares: httpx's own defaults (certifi, or
    SSL_CERT_FILE / SSL_CERT_DIR), built once. Built per client they cost 20 ms each, and
    a partial sync opens a client per list it reads, on the path from a webhook to the mirror."""
    return httpx.create_ssl_context()


class Call:
    """The state one fetch method shares across its requests: HTTP client, rate control,
    concurrency bound, stats and the sink."""

    def __init__(self, client: ClerkClient, stats: FetchStats, sink: Sink) -> None:
        self.settings = client
        self.stats = stats
        self.sink = sink
        self._secret = client.secret_key.strip()
        self.page_size = client.page_size
        self.width = client.max_concurrency
        self.rate = RateControl(
            client.rate_limit_per_window,
            window_seconds=client._rate_window_seconds,
            max_burst=client.max_concurrency,
            stall_timeout=client.stall_timeout_seconds,
            stats=stats,
        )
        self.semaphore = asyncio.Semaphore(client.max_concurrency)
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
            verify=_tls_context(),
            transport=client._transport,
        )

    async def __aenter__(self) -> Call:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.aclose()

    # ---- one request, with retries -----------------------------------------------------

    async def get(self, request: Request) -> Any:
        """The parsed body of ``request``, or :class:`Refused` for a status it tolerates."""
        settings = self.settings
        backoff = wait_exponential_jitter(
            initial=0.5,
            max=settings.max_backoff_seconds,
            jitter=min(0.5, settings.max_backoff_seconds),
        )
        failures = 0  # attempts that used up an attempt: every transient failure but a 429

        def stop(state: RetryCallState) -> bool:
            nonlocal failures
            error = state.outcome.exception() if state.outcome else None
            if not (isinstance(error, Transient) and error.status == 429):
                failures += 1
            return failures >= settings.max_attempts or self.rate.stalled_for() is not None

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, Transient) and error.status == 429:
                # With Retry-After the pause is the call's (RateControl.admit waits it out).
                return 0.0 if error.retry_after is not None else backoff(state)
            return backoff(state)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self.stats.endpoint(request.endpoint).retries += 1
            if isinstance(error, Transient) and error.status == 429:
                logger.info("Clerk %s: HTTP 429; paused %.1f s", request.label, error.retry_after or 0.0)
                return
            logger.warning(
                "Clerk %s: %s; retrying in %.1f s (attempt %d of %d failed)",
                request.label,
                getattr(error, "reason", type(error).__name__),
                state.next_action.sleep if state.next_action else 0.0,
                failures,
                settings.max_attempts,
            )

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type(Transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return await retrying(self._attempt, request)
        except Transient as error:
            stalled = self.rate.stalled_for()
            raise ClerkUnavailableError(
                path=request.label,
                attempts=failures,
                last_status=error.status,
                last_error=error.reason,
                stalled_seconds=stalled,
            ) from error

    async def _attempt(self, request: Request) -> Any:
        stats = self.stats.endpoint(request.endpoint)
        async with self.semaphore:
            await self.rate.admit()
            stats.requests += 1
            started = time.monotonic()
            try:
                response = await self.http.get(request.path, params=list(request.params))
            except httpx.TransportError as error:  # timeouts, refused/dropped connections, bad framing
                raise Transient(f"{type(error).__name__}: {self._scrub(str(error)) or 'no detail'}") from error
            finally:
                stats.seconds += time.monotonic() - started

        status = response.status_code
        if status == 429:
            stats.responses_429 += 1
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            self.rate.rate_limited(retry_after)
            raise Transient("HTTP 429", status=status, retry_after=retry_after)
        if status >= 500 or status in _TRANSIENT_STATUSES:
            raise Transient(f"HTTP {status}", status=status)
        self.rate.succeeded()
        if status in request.tolerate:
            stats.not_found += status == 404
            return Refused(status)
        if status in (401, 403):
            raise ClerkAuthError(status, path=request.label)
        if not 200 <= status < 300:
            raise self.request_error(request, response)
        try:
            return request.parse(_decode_json(response))
        except BadShape as error:
            raise Transient(f"unexpected body from HTTP {status}: {error}", status=status) from error
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
            raise Transient(f"body of HTTP {status} is not valid JSON", status=status) from error

    def request_error(self, request: Request, response: httpx.Response | None = None, *, status: int | None = None) -> ClerkRequestError:
        long_message = code = trace_id = None
        body = None
        if response is not None:
            status = response.status_code
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
        if not long_message and response is not None:
            if 300 <= response.status_code < 400:
                long_message = f"unexpected redirect to {response.headers.get('Location', '?')}: check api_url"
            elif response.status_code == 404:
                long_message = "not found: check api_url"
        return ClerkRequestError(
            status or 0,
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

    def deliver(self, endpoint: str, key: tuple, rows: list[Row], *, progress_name: str | None = None) -> None:
        stats = self.stats.endpoint(endpoint)
        stats.pages += 1
        stats.rows += len(rows)
        self.sink.deliver(key, rows)
        if progress_name is not None:
            progress.current().page_read(progress_name, len(rows))


# ---- bodies -------------------------------------------------------------------------------


def _decode_json(response: httpx.Response) -> Any:
    """The body as JSON: orjson (several times the stdlib's speed on 500-row pages), or the
    stdlib where orjson refuses what it accepts (lone surrogates, integers past 64 bits,
    1e999), so every body reads exactly as ``response.json()`` would read it."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.json()


def rows_of(body: Any) -> list[Row]:
    """Rows of a list response: a bare array (``/users``) or ``{"data": [...]}``.

    Both shapes are accepted on every list endpoint so a change of wrapping between API
    versions doesn't break the read.
    """
    if isinstance(body, list):
        rows = body
    elif isinstance(body, dict) and isinstance(body.get("data"), list):
        rows = body["data"]
    else:
        raise BadShape("expected a JSON array or an object with a data array")
    if not all(isinstance(row, dict) for row in rows):
        raise BadShape("expected JSON objects as rows")
    return rows


def total_of(body: Any) -> int | None:
    if isinstance(body, dict):
        total = body.get("total_count")
        if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
            return total
    return None


def count_of(body: Any) -> int:
    total = total_of(body)
    if total is None:
        raise BadShape("expected an object with an integer total_count")
    return total


def object_of(body: Any) -> list[Row]:
    if not isinstance(body, dict) or "id" not in body:
        raise BadShape("expected a JSON object with an id")
    return [body]


def list_body(body: Any) -> Any:
    """Validate a list response inside the retried attempt; the body itself is returned."""
    rows_of(body)
    return body
