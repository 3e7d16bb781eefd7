"""The emulator's HTTP face: Clerk's Backend API routes behind Clerk's gate.

Every request passes, in order: the configured latency (``asyncio.sleep``, so concurrent
requests overlap as against the real API), the ``Authorization: Bearer`` check (401),
the per-key rate limit (429 with ``Retry-After``), any injected fault, and then the
route. Errors carry Clerk's body: ``{"errors": [{message, long_message, code, meta}],
"clerk_trace_id"}``. After the rate limit comes the API version (``check_api_version``):
Clerk's docs ("Versioning overview") let a request name its version in the
``Clerk-API-Version`` header or the ``__clerk_api_version`` query parameter, and call a
request that uses both, or names an invalid version, invalid; the emulator answers
those 400 (the status the spec gives ``GET /users`` for a ClerkErrors body). Valid
versions are the dates Clerk has released (:data:`CLERK_API_VERSIONS`, the specs of
clerk/openapi-specs); a request naming none gets the instance's default.

List bodies are assembled from the store's pre-rendered JSON texts, never re-encoded.

Admin API (not Clerk's: for a demo or an end-to-end test in another process to change
the data, so that the store emits events and any webhook dispatcher delivers them).
Under ``/_emulator/``, never under ``/v1``; the same ``Authorization: Bearer`` key (401
otherwise), but no latency, rate limit, injected faults or request counts. JSON bodies:

- ``POST /_emulator/users``: fields of :meth:`ClerkStore.create_user` (``email_addresses``,
  ``first_name``, ``public_metadata``...); ``PATCH /_emulator/users/{id}``: top-level fields
  for :meth:`ClerkStore.update_user`; ``DELETE /_emulator/users/{id}``;
- ``POST /_emulator/organizations``: ``name`` and the other fields of
  :meth:`ClerkStore.create_organization`; ``PATCH`` and ``DELETE /_emulator/organizations/{id}``;
- ``POST /_emulator/organizations/{id}/memberships``: ``user_id``, ``role`` (default
  ``org:member``), metadata; ``PATCH /_emulator/memberships/{id}``: ``role``, metadata;
  ``DELETE /_emulator/memberships/{id}``.

- ``POST /_emulator/organization_roles`` (:meth:`ClerkStore.create_role`: ``name``, ``key``,
  ``permissions`` as ids...); ``PATCH`` and ``DELETE /_emulator/organization_roles/{id}``;
  ``POST`` / ``DELETE /_emulator/organization_roles/{id}/permissions/{permission_id}``
  (grant, take away);
- ``POST /_emulator/organization_permissions``; ``PATCH`` and ``DELETE
  /_emulator/organization_permissions/{id}``;
- ``POST /_emulator/organizations/{id}/invitations`` (``email_address``, ``role``,
  ``inviter_user_id``...); ``POST /_emulator/invitations/{id}/accept`` (optional
  ``user_id``) and ``/revoke`` (optional ``requesting_user_id``);
- ``POST /_emulator/organizations/{id}/domains`` (``name``, ``enrollment_mode``,
  ``verified``); ``PATCH`` and ``DELETE /_emulator/domains/{id}``.

Each answers 200 with the resulting object: the user, organization, membership, role,
permission, invitation or domain, a DeletedObject for a deleted user, organization, role,
permission or domain, the removed membership for a deleted one. Unknown ids are 404,
unknown fields or refused values 422, and what Clerk refuses with a status of its own
(a system permission: 403, a permission a role already has: 409, a settled invitation:
400) that status (Clerk's error body).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from sync_pipeline.emulator.faults import Fault, FaultInjector, FaultKind
from sync_pipeline.emulator.objects import to_json
from sync_pipeline.emulator.store import (
    ChangeRefused,
    ClerkStore,
    InvalidParameter,
    ObjectNotFound,
    OrganizationQuery,
    UserQuery,
)

logger = logging.getLogger(__name__)

DEFAULT_SECRET_KEY = "sk_test_emulator"
MAX_LIMIT = 500
MAX_FILTER_VALUES = 100
REQUEST_TIMES_KEPT = 200_000  # EmulatorStats.request_times: enough for any test's busiest window
ADMIN_PREFIX = "/_emulator"  # the emulator's own admin API (see the module docstring)
# Clerk's limits per secret key and 10 s: development instances (sk_test_) and production (sk_live_).
CLERK_REQUESTS_PER_10S = {"sk_test_": 100, "sk_live_": 1000}
GONE_PARENT_ANSWERS = ("404", "403", "422", "empty")  # EmulatorSettings.gone_parent_answer
# The Backend API versions Clerk has released (bapi/*.yml in clerk/openapi-specs).
CLERK_API_VERSIONS = ("2021-02-05", "2024-10-01", "2025-03-12", "2025-04-10", "2025-11-10", "2026-05-12")
API_VERSION_HEADER, API_VERSION_QUERY = "clerk-api-version", "__clerk_api_version"


@dataclass
class EmulatorSettings:
    """How the emulator behaves; change fields at any time, the next request sees them.

    ``requests_per_10s``: None for Clerk's own limit for the key's kind (100 for
    ``sk_test_`` keys, 1000 for ``sk_live_``), 0 for no limit, else that many requests
    per window. ``rate_limit_window_s`` (10 s like Clerk's) can be shortened for tests.

    ``application_share``: the share of each window's budget the instance's own
    application spends (Clerk's limit is the instance's, and the app's backend calls use
    it too). The emulator simulates those calls, spread evenly over the window, so a sync
    meets 429s once it takes more than ``1 - application_share`` of the limit. 0 turns the
    application off; with no limit (``requests_per_10s=0``) there is nothing to share.

    ``check_api_version``: refuse (400) a request naming an unknown or malformed API
    version, or naming one both in the header and the query (see the module docstring);
    False accepts anything.

    ``created_at_bounds_inclusive``: whether ``created_at_after``/``created_at_before`` on
    ``GET /users`` and ``/users/count`` keep a user created exactly on the bound (>=, <=)
    or not (>, <, the default). Clerk does not say; a client must survive both.

    Deep offsets, as Clerk's spec describes for ``GET /users`` ("a large ``offset`` has to
    walk and discard every row before it, so it gets progressively slower and eventually
    times out"): a page at ``offset`` is delayed ``offset / 1000 * users_offset_ms_per_1000``
    ms, and an ``offset`` above ``users_offset_timeout`` answers 504 with Clerk's error
    body (None: never). ``GET /organization_memberships`` has the same pair
    (``memberships_offset_*``); its timeout is off by default, as its spec says nothing.

    ``gone_parent_answer``: what ``GET /users/{id}/organization_memberships``,
    ``GET /organizations/{id}/memberships`` and ``GET /organizations/{id}/domains`` answer
    for a user or organization that does not exist (deleted, or never was). Clerk does not
    document it (the first lists 200 and 403, the others 200, 401 and 422), so any of :data:`GONE_PARENT_ANSWERS`:
    ``"404"`` (the default), ``"403"`` and ``"422"`` with Clerk's error body, or
    ``"empty"``: a 200 with no rows. ``GET /users/{id}`` and ``GET /organizations/{id}``
    answer 404 whatever this says.
    """

    secret_key: str = DEFAULT_SECRET_KEY
    latency_ms: float = 0.0
    requests_per_10s: int | None = None
    rate_limit_window_s: float = 10.0
    created_at_bounds_inclusive: bool = False
    users_offset_ms_per_1000: float = 0.5
    users_offset_timeout: int | None = 10_000
    memberships_offset_ms_per_1000: float = 0.5
    memberships_offset_timeout: int | None = None
    gone_parent_answer: str = "404"
    application_share: float = 0.2
    check_api_version: bool = True

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "gone_parent_answer" and value not in GONE_PARENT_ANSWERS:
            raise ValueError(f"gone_parent_answer must be one of {', '.join(GONE_PARENT_ANSWERS)}, not {value!r}")
        if name == "application_share" and not 0 <= value < 1:
            raise ValueError(f"application_share must be at least 0 and below 1, not {value!r}")
        super().__setattr__(name, value)

    def request_limit(self) -> int | None:
        """Requests allowed per window, or None for no limit."""
        if self.requests_per_10s is not None:
            return self.requests_per_10s or None
        return next(
            (limit for prefix, limit in CLERK_REQUESTS_PER_10S.items() if self.secret_key.startswith(prefix)),
            CLERK_REQUESTS_PER_10S["sk_test_"],
        )


@dataclass
class EmulatorStats:
    """What the emulator has served, for tests and benchmarks to read."""

    requests_by_path: Counter[str] = field(default_factory=Counter)
    responses_by_status: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0  # 429s from the rate limiter (injected 429s are in FaultInjector.fired)
    # When each API request arrived (time.monotonic()), refused ones included; the latest only.
    request_times: deque[float] = field(default_factory=lambda: deque(maxlen=REQUEST_TIMES_KEPT), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def too_many_requests(self) -> int:
        """Every 429 served, from the rate limiter or injected."""
        return self.responses_by_status[429]

    @property
    def requests(self) -> int:
        with self._lock:
            return sum(self.requests_by_path.values())

    def record_request(self, path: str, at: float | None = None) -> None:
        with self._lock:
            self.requests_by_path[path] += 1
            self.request_times.append(time.monotonic() if at is None else at)

    def busiest_window(self, window_s: float = 10.0) -> int:
        """The most API requests that arrived within any ``window_s`` seconds.

        Counts every request of the Clerk API the emulator saw (refused ones too, since
        they cost the instance's budget as much), never the admin API or the simulated
        application's calls. Only the last :data:`REQUEST_TIMES_KEPT` arrivals are kept.
        """
        with self._lock:
            times = list(self.request_times)
        busiest, first = 0, 0
        for last, arrived in enumerate(times):  # arrival order is time order
            while arrived - times[first] >= window_s:
                first += 1
            busiest = max(busiest, last - first + 1)
        return busiest

    def record_response(self, status: int) -> None:
        with self._lock:
            self.responses_by_status[status] += 1

    def record_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def requests_under(self, path_prefix: str) -> int:
        with self._lock:
            return sum(count for path, count in self.requests_by_path.items() if path.startswith(path_prefix))

    def reset(self) -> None:
        with self._lock:
            self.requests_by_path.clear()
            self.responses_by_status.clear()
            self.rate_limited = 0
            self.request_times.clear()


class SlidingWindowRateLimiter:
    """At most ``limit`` requests per key in any ``window_s`` seconds, the application's included.

    The simulated application (``application_share`` of the limit) calls at an even pace:
    its calls due since the last request are counted in when a request arrives, so it
    costs nothing while the emulator is idle.
    """

    def __init__(self) -> None:
        self._recent: dict[str, deque[float]] = {}
        # Per key, the application's pace: (first call, calls made since, seconds between calls).
        self._application_clock: dict[str, tuple[float, int, float]] = {}

    def admit(
        self, key: str, limit: int, window_s: float, now: float, application_share: float = 0.0
    ) -> float | None:
        """Count the request and return None, or refuse it: the seconds until one would pass."""
        recent = self._recent.setdefault(key, deque())
        application_calls = math.floor(limit * application_share)
        if application_calls > 0:
            interval = window_s / application_calls
            start, made, pace = self._application_clock.get(key, (now, 0, interval))
            if pace != interval:  # the settings changed: the new pace starts at the next call
                start, made = start + made * pace, 0
            if start + made * interval < now - window_s:  # idle: calls out of the window never count
                made = math.ceil((now - window_s - start) / interval)
            # Due times as start + k * interval, never a running sum, so no rounding drift.
            while (due := start + made * interval) <= now:
                recent.append(due)  # the application's call, in time order with the sync's
                made += 1
            self._application_clock[key] = (start, made, interval)
        while recent and recent[0] <= now - window_s:
            recent.popleft()
        if len(recent) >= limit:
            return recent[0] + window_s - now
        recent.append(now)
        return None


def clerk_error(
    status: int,
    code: str,
    message: str,
    long_message: str,
    *,
    meta: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "errors": [{"message": message, "long_message": long_message, "code": code, "meta": meta or {}}],
        "clerk_trace_id": uuid.uuid4().hex,
    }
    return Response(to_json(body), status_code=status, media_type="application/json", headers=headers)


def _unauthorized() -> Response:
    return clerk_error(
        401, "authentication_invalid", "Invalid authentication",
        "Unable to authenticate the request, you need to supply an active API key",
    )


def _too_many_requests(retry_after_s: int) -> Response:
    return clerk_error(
        429, "too_many_requests", "Too many requests", "Too many requests, retry later",
        headers={"Retry-After": str(retry_after_s)},
    )


def _offset_timed_out() -> Response:
    return clerk_error(
        504, "request_timeout", "Request timed out",
        "The request took too long: a large offset walks every row before it. Paginate with starting_after.",
    )


async def _walk_offset(offset: int, ms_per_1000: float, timeout_offset: int | None) -> Response | None:
    """Spend the time a database spends skipping ``offset`` rows; a 504 past ``timeout_offset``."""
    timed_out = timeout_offset is not None and offset > timeout_offset
    walked = timeout_offset if timed_out and timeout_offset is not None else offset
    if ms_per_1000 > 0 and walked > 0:
        await asyncio.sleep(walked / 1000 * ms_per_1000 / 1000)
    return _offset_timed_out() if timed_out else None


def _api_version_problem(scope: Scope) -> Response | None:
    """A 400 if the request names its API version twice, or a version Clerk never released."""
    headers = [value.decode("latin-1") for name, value in scope["headers"] if name.lower() == b"clerk-api-version"]
    query = QueryParams(scope.get("query_string", b"")).getlist(API_VERSION_QUERY)
    named = headers + query
    if headers and query:
        problem = f"name the API version once: in the Clerk-API-Version header or in {API_VERSION_QUERY}, not both"
    elif len(named) > 1:
        problem = "name the API version once"
    elif named and named[0].strip() not in CLERK_API_VERSIONS:
        problem = (
            f"{named[0]!r} is not a Clerk API version; versions are release dates such as 2025-11-10"
            f" (known: {', '.join(CLERK_API_VERSIONS)})"
        )
    else:
        return None
    return clerk_error(400, "api_version_invalid", "Invalid API version", problem)


def _json(text: str) -> Response:
    return Response(text, media_type="application/json")


def _paginated(texts: list[str], total_count: int) -> Response:
    return _json(f'{{"data":[{",".join(texts)}],"total_count":{total_count}}}')


# -- query parameters -----------------------------------------------------------------

_DIGITS = re.compile(r"\d+")


def _integer(request: Request, name: str, default: int, minimum: int, maximum: int | None, rule: str) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or int(raw) < minimum or (maximum is not None and int(raw) > maximum):
        raise InvalidParameter(name, f"{name} {rule}")  # "10.0", "-1", "501"... all 422, as Clerk
    return int(raw)


def _page(request: Request) -> tuple[int, int]:
    limit = _integer(request, "limit", 10, 1, MAX_LIMIT, f"must be between 1 and {MAX_LIMIT}")
    offset = _integer(request, "offset", 0, 0, None, "must be greater than or equal to 0")
    return limit, offset


def _timestamp(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw):
        raise InvalidParameter(name, f"{name} must be a timestamp in epoch milliseconds")
    return int(raw)


def _values(request: Request, name: str) -> tuple[str, ...]:
    values = tuple(request.query_params.getlist(name))
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidParameter(name, f"{name} accepts at most {MAX_FILTER_VALUES} values")
    return values


def _order_by(request: Request, default: str | None) -> str | None:
    """The first ``order_by`` given (Clerk keeps the first of several), else ``default``."""
    given = request.query_params.getlist("order_by")
    return given[0] if given else default


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise InvalidParameter(name, f"{name} must be true or false")
    return raw == "true"


def _listed(request: Request, name: str) -> tuple[str, ...]:
    """A filter given repeated (``status=a&status=b``) or comma-separated (``status=a,b``)."""
    return tuple(part for value in _values(request, name) for part in value.split(",") if part)


def _optional_flag(request: Request, name: str) -> bool | None:
    return _flag(request, name) if name in request.query_params else None


def _user_query(request: Request, settings: EmulatorSettings, *, for_count: bool) -> UserQuery:
    return UserQuery(
        user_ids=_values(request, "user_id"),
        email_addresses=_values(request, "email_address"),
        external_ids=_values(request, "external_id"),
        organization_ids=_values(request, "organization_id"),
        text=request.query_params.get("query") or None,
        created_at_after=_timestamp(request, "created_at_after"),
        created_at_before=_timestamp(request, "created_at_before"),
        last_active_at_after=_timestamp(request, "last_active_at_after"),
        last_active_at_before=_timestamp(request, "last_active_at_before"),
        order_by="-created_at" if for_count else _order_by(request, "-created_at"),
        starting_after=None if for_count else request.query_params.get("starting_after"),
        created_at_bounds_inclusive=settings.created_at_bounds_inclusive,
    )


def _as_served(rows: list[str], request: Request) -> list[str]:
    """The page's rows, less any a SHORT_PAGE fault withholds (total_count still counts them)."""
    withheld = request.scope.get("state", {}).get("withhold_rows", 0)
    return rows[: max(len(rows) - withheld, 0)]


class ClerkEmulatorApp:
    """The ASGI application: one store, its settings, faults and stats."""

    def __init__(
        self,
        store: ClerkStore,
        settings: EmulatorSettings | None = None,
        faults: FaultInjector | None = None,
        stats: EmulatorStats | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or EmulatorSettings()
        self.faults = faults or FaultInjector()
        self.stats = stats or EmulatorStats()
        self._rate_limiter = SlidingWindowRateLimiter()
        self._router = Starlette(
            routes=[
                Route("/v1/users", self._list_users),
                Route("/v1/users/count", self._count_users),
                Route("/v1/users/{user_id}", self._get_user),
                Route("/v1/users/{user_id}/organization_memberships", self._list_user_memberships),
                Route("/v1/organizations", self._list_organizations),
                Route("/v1/organizations/{organization_id}", self._get_organization),
                Route("/v1/organizations/{organization_id}/memberships", self._list_organization_memberships),
                Route("/v1/organization_memberships", self._list_memberships),
                Route("/v1/organization_roles", self._list_roles),
                Route("/v1/organization_roles/{organization_role_id}", self._get_role),
                Route("/v1/organization_permissions", self._list_permissions),
                Route("/v1/organization_permissions/{permission_id}", self._get_permission),
                Route("/v1/organization_invitations", self._list_invitations),
                Route("/v1/organizations/{organization_id}/invitations", self._list_organization_invitations),
                Route(
                    "/v1/organizations/{organization_id}/invitations/{invitation_id}",
                    self._get_organization_invitation,
                ),
                Route("/v1/organization_domains", self._list_domains),
                Route("/v1/organizations/{organization_id}/domains", self._list_organization_domains),
            ],
            exception_handlers={
                InvalidParameter: self._invalid_parameter,
                ObjectNotFound: self._not_found,
                HTTPException: self._http_exception,
            },
        )
        self._admin_router = Starlette(
            routes=[
                Route(f"{ADMIN_PREFIX}/users", self._admin_create_user, methods=["POST"]),
                Route(f"{ADMIN_PREFIX}/users/{{user_id}}", self._admin_change_user, methods=["PATCH", "DELETE"]),
                Route(f"{ADMIN_PREFIX}/organizations", self._admin_create_organization, methods=["POST"]),
                Route(
                    f"{ADMIN_PREFIX}/organizations/{{organization_id}}",
                    self._admin_change_organization,
                    methods=["PATCH", "DELETE"],
                ),
                Route(
                    f"{ADMIN_PREFIX}/organizations/{{organization_id}}/memberships",
                    self._admin_create_membership,
                    methods=["POST"],
                ),
                Route(
                    f"{ADMIN_PREFIX}/memberships/{{membership_id}}",
                    self._admin_change_membership,
                    methods=["PATCH", "DELETE"],
                ),
                Route(f"{ADMIN_PREFIX}/organization_roles", self._admin_create_role, methods=["POST"]),
                Route(
                    f"{ADMIN_PREFIX}/organization_roles/{{role_id}}", self._admin_change_role, methods=["PATCH", "DELETE"]
                ),
                Route(
                    f"{ADMIN_PREFIX}/organization_roles/{{role_id}}/permissions/{{permission_id}}",
                    self._admin_role_permission,
                    methods=["POST", "DELETE"],
                ),
                Route(f"{ADMIN_PREFIX}/organization_permissions", self._admin_create_permission, methods=["POST"]),
                Route(
                    f"{ADMIN_PREFIX}/organization_permissions/{{permission_id}}",
                    self._admin_change_permission,
                    methods=["PATCH", "DELETE"],
                ),
                Route(
                    f"{ADMIN_PREFIX}/organizations/{{organization_id}}/invitations",
                    self._admin_create_invitation,
                    methods=["POST"],
                ),
                Route(
                    f"{ADMIN_PREFIX}/invitations/{{invitation_id}}/{{action}}",
                    self._admin_settle_invitation,
                    methods=["POST"],
                ),
                Route(
                    f"{ADMIN_PREFIX}/organizations/{{organization_id}}/domains",
                    self._admin_create_domain,
                    methods=["POST"],
                ),
                Route(f"{ADMIN_PREFIX}/domains/{{domain_id}}", self._admin_change_domain, methods=["PATCH", "DELETE"]),
            ],
            exception_handlers={
                InvalidParameter: self._invalid_parameter,
                ObjectNotFound: self._not_found,
                HTTPException: self._http_exception,
            },
        )

    # -- the gate -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(f"{ADMIN_PREFIX}/"):
            await self._admin(scope, receive, send)
            return

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.stats.record_response(message["status"])
            await send(message)

        self.stats.record_request(path)
        if self.settings.latency_ms > 0:
            await asyncio.sleep(self.settings.latency_ms / 1000)
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, counted_send)
            return
        fault = self.faults.take(path)
        if fault is None:
            await self._router(scope, receive, counted_send)
        else:
            logger.info("emulator: injecting %s into %s", fault.kind.value, path)
            await self._inject(fault, scope, receive, counted_send)

    def _authorized(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, key = authorization.partition(" ")
        return scheme.lower() == "bearer" and key.strip() == self.settings.secret_key

    def _refusal(self, scope: Scope) -> Response | None:
        """A 401, 429 or 400 (API version) if the request may not pass, else None."""
        if not self._authorized(scope):
            return _unauthorized()
        key = self.settings.secret_key
        limit = self.settings.request_limit()
        if limit is not None:
            wait_s = self._rate_limiter.admit(
                key, limit, self.settings.rate_limit_window_s, time.monotonic(), self.settings.application_share
            )
            if wait_s is not None:
                self.stats.record_rate_limited()
                return _too_many_requests(max(1, math.ceil(wait_s)))
        if self.settings.check_api_version:
            return _api_version_problem(scope)
        return None

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The admin API: the key is checked, nothing else of the gate applies."""
        if not self._authorized(scope):
            await _unauthorized()(scope, receive, send)
            return
        await self._admin_router(scope, receive, send)

    async def _inject(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        kind = fault.kind
        if kind is FaultKind.SERVER_ERROR:
            response = clerk_error(
                fault.status or 500, "internal_clerk_error", "Oops, an unexpected error occurred",
                "There was an internal error on our servers. We've been notified and are working on fixing it.",
            )
            await response(scope, receive, send)
        elif kind is FaultKind.RATE_LIMITED:
            await _too_many_requests(fault.retry_after_s)(scope, receive, send)
        elif kind is FaultKind.UNAUTHORIZED:
            await _unauthorized()(scope, receive, send)
        elif kind is FaultKind.NON_JSON:
            page = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
            await Response(page, status_code=fault.status or 200, media_type="text/html")(scope, receive, send)
        elif kind is FaultKind.SLOW:
            if await _client_left_within(fault.delay_s, receive):
                return
            await self._router(scope, receive, send)
        elif kind is FaultKind.SHORT_PAGE:
            scope.setdefault("state", {})["withhold_rows"] = fault.missing_rows
            await self._router(scope, receive, send)
        elif kind is FaultKind.CALLBACK:
            assert fault.action is not None
            fault.action()  # on the server's loop, before this request is answered
            if not self._authorized(scope):  # the action revoked the key: this request already feels it
                await _unauthorized()(scope, receive, send)
            else:
                await self._router(scope, receive, send)
        else:
            await self._send_broken_body(kind, scope, receive, send)

    async def _send_broken_body(self, kind: FaultKind, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the real answer, broken: cut short (TRUNCATED_BODY) or dropped mid-body."""
        start: Message = {}
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            else:
                body.extend(message.get("body", b""))

        await self._router(scope, receive, capture)
        half = bytes(body[: len(body) // 2])
        headers = [(name, value) for name, value in start["headers"] if name.lower() != b"content-length"]
        if kind is FaultKind.TRUNCATED_BODY:
            headers.append((b"content-length", str(len(half)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": half})
            return
        # DROPPED_CONNECTION: promise the whole body, send half, and return without
        # finishing. uvicorn then closes the connection (logging that the response was
        # left incomplete), so the client reads a body that stops mid-way.
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": half, "more_body": True})

    # -- error handlers -------------------------------------------------------------------

    @staticmethod
    async def _invalid_parameter(request: Request, error: Exception) -> Response:
        assert isinstance(error, InvalidParameter)
        return clerk_error(
            422, "form_param_value_invalid", "is invalid", error.long_message, meta={"param_name": error.param_name}
        )

    @staticmethod
    async def _not_found(request: Request, error: Exception) -> Response:
        return clerk_error(404, "resource_not_found", "not found", "Resource not found")

    @staticmethod
    async def _http_exception(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if error.status_code == 405:
            return clerk_error(
                405, "request_method_not_allowed", "method not allowed", "This request method is not allowed"
            )
        return clerk_error(404, "resource_not_found", "not found", "Resource not found")

    # -- routes ---------------------------------------------------------------------------

    async def _list_users(self, request: Request) -> Response:
        limit, offset = _page(request)
        settings = self.settings
        # The store first, so a bad parameter is a 422 however deep the offset.
        texts = self.store.list_users(_user_query(request, settings, for_count=False), limit=limit, offset=offset)
        timed_out = await _walk_offset(offset, settings.users_offset_ms_per_1000, settings.users_offset_timeout)
        if timed_out is not None:
            return timed_out
        return _json(f"[{','.join(_as_served(texts, request))}]")

    async def _count_users(self, request: Request) -> Response:
        total = self.store.count_users(_user_query(request, self.settings, for_count=True))
        return _json(f'{{"object":"total_count","total_count":{total}}}')

    async def _get_user(self, request: Request) -> Response:
        text = self.store.get_user_json(request.path_params["user_id"])
        if text is None:
            raise ObjectNotFound("user", request.path_params["user_id"])
        return _json(text)

    async def _list_user_memberships(self, request: Request) -> Response:
        limit, offset = _page(request)
        user_id = request.path_params["user_id"]
        try:
            texts, total = self.store.list_user_memberships(user_id, limit=limit, offset=offset)
        except ObjectNotFound:
            return self._gone_parent("user_id", user_id)
        return _paginated(_as_served(texts, request), total)

    def _gone_parent(self, param_name: str, parent_id: str) -> Response:
        """A membership list's answer for a parent that does not exist (``gone_parent_answer``)."""
        answer = self.settings.gone_parent_answer
        if answer == "empty":
            return _paginated([], 0)
        if answer == "403":
            return clerk_error(
                403, "authorization_invalid", "Unauthorized request",
                "You are not authorized to perform this request",
            )
        if answer == "422":
            return clerk_error(
                422, "form_param_value_invalid", "is invalid", f"{param_name} {parent_id!r} is not a valid id",
                meta={"param_name": param_name},
            )
        return clerk_error(404, "resource_not_found", "not found", "Resource not found")

    async def _list_organizations(self, request: Request) -> Response:
        limit, offset = _page(request)
        query = OrganizationQuery(
            text=request.query_params.get("query") or None,
            order_by=_order_by(request, "-created_at"),
        )
        texts, total = self.store.list_organizations(
            query, limit=limit, offset=offset, include_members_count=_flag(request, "include_members_count")
        )
        return _paginated(_as_served(texts, request), total)

    async def _get_organization(self, request: Request) -> Response:
        organization_id = request.path_params["organization_id"]
        text = self.store.get_organization_json(
            organization_id, include_members_count=_flag(request, "include_members_count")
        )
        if text is None:
            raise ObjectNotFound("organization", organization_id)
        return _json(text)

    async def _list_organization_memberships(self, request: Request) -> Response:
        limit, offset = _page(request)
        organization_id = request.path_params["organization_id"]
        try:
            texts, total = self.store.list_organization_memberships(
                organization_id, limit=limit, offset=offset, order_by=_order_by(request, None),
                roles=_values(request, "role"), user_ids=_values(request, "user_id"),
            )
        except ObjectNotFound:
            return self._gone_parent("organization_id", organization_id)
        return _paginated(_as_served(texts, request), total)

    async def _list_memberships(self, request: Request) -> Response:
        limit, offset = _page(request)
        settings = self.settings
        texts, total = self.store.list_memberships(limit=limit, offset=offset, order_by=_order_by(request, None))
        timed_out = await _walk_offset(
            offset, settings.memberships_offset_ms_per_1000, settings.memberships_offset_timeout
        )
        if timed_out is not None:
            return timed_out
        return _paginated(_as_served(texts, request), total)

    # -- roles, permissions, invitations, domains ------------------------------------------

    async def _list_roles(self, request: Request) -> Response:
        limit, offset = _page(request)
        texts, total = self.store.list_roles(
            limit=limit, offset=offset, order_by=_order_by(request, "-created_at"),
            query=request.query_params.get("query") or None,
        )
        return _paginated(_as_served(texts, request), total)

    async def _get_role(self, request: Request) -> Response:
        role_id = request.path_params["organization_role_id"]
        role = self.store.get_role(role_id)
        if role is None:
            raise ObjectNotFound("role", role_id)
        return _json(to_json(role))

    async def _list_permissions(self, request: Request) -> Response:
        limit, offset = _page(request)
        # The spec names no default order for permissions; the roles' (-created_at) is used.
        texts, total = self.store.list_permissions(
            limit=limit, offset=offset, order_by=_order_by(request, "-created_at"),
            query=request.query_params.get("query") or None,
        )
        return _paginated(_as_served(texts, request), total)

    async def _get_permission(self, request: Request) -> Response:
        permission_id = request.path_params["permission_id"]
        permission = self.store.get_permission(permission_id)
        if permission is None:
            raise ObjectNotFound("permission", permission_id)
        return _json(to_json(permission))

    async def _list_invitations(self, request: Request) -> Response:
        limit, offset = _page(request)
        texts, total = self.store.list_invitations(
            limit=limit, offset=offset, order_by=_order_by(request, "-created_at"),
            statuses=_listed(request, "status"), query=request.query_params.get("query") or None,
        )
        return _paginated(_as_served(texts, request), total)

    async def _list_organization_invitations(self, request: Request) -> Response:
        limit, offset = _page(request)
        texts, total = self.store.list_organization_invitations(
            request.path_params["organization_id"], limit=limit, offset=offset,
            order_by=_order_by(request, "-created_at"), statuses=_listed(request, "status"),
            email_address=request.query_params.get("email_address"),
        )  # an organization that does not exist: ObjectNotFound, the 404 the spec documents
        return _paginated(_as_served(texts, request), total)

    async def _get_organization_invitation(self, request: Request) -> Response:
        invitation_id = request.path_params["invitation_id"]
        text = self.store.get_organization_invitation_json(request.path_params["organization_id"], invitation_id)
        if text is None:
            raise ObjectNotFound("organization_invitation", invitation_id)
        return _json(text)

    async def _list_domains(self, request: Request) -> Response:
        limit, offset = _page(request)
        texts, total = self.store.list_domains(
            limit=limit, offset=offset, order_by=_order_by(request, "-created_at"),
            organization_id=request.query_params.get("organization_id"),
            verified=_optional_flag(request, "verified"), enrollment_modes=_listed(request, "enrollment_mode"),
            query=request.query_params.get("query"), domains=_values(request, "domains"),
        )
        return _paginated(_as_served(texts, request), total)

    async def _list_organization_domains(self, request: Request) -> Response:
        limit, offset = _page(request)
        organization_id = request.path_params["organization_id"]
        verified = _optional_flag(request, "verified")
        enrollment_modes = _listed(request, "enrollment_mode")
        try:
            texts, total = self.store.list_organization_domains(
                organization_id, limit=limit, offset=offset, verified=verified, enrollment_modes=enrollment_modes
            )
        except ObjectNotFound:
            # Documented answers 200, 401, 422 only: a gone organization as the membership lists answer it.
            return self._gone_parent("organization_id", organization_id)
        return _paginated(_as_served(texts, request), total)

    # -- the admin API (module docstring) -------------------------------------------------

    async def _admin_create_user(self, request: Request) -> Response:
        return _admin_answer(self.store.create_user, await _admin_body(request))

    async def _admin_change_user(self, request: Request) -> Response:
        user_id = request.path_params["user_id"]
        if request.method == "DELETE":
            return _admin_answer(self.store.delete_user, {}, user_id)
        return _admin_answer(self.store.update_user, await _admin_body(request), user_id)

    async def _admin_create_organization(self, request: Request) -> Response:
        return _admin_answer(self.store.create_organization, await _admin_body(request))

    async def _admin_change_organization(self, request: Request) -> Response:
        organization_id = request.path_params["organization_id"]
        if request.method == "DELETE":
            return _admin_answer(self.store.delete_organization, {}, organization_id)
        return _admin_answer(self.store.update_organization, await _admin_body(request), organization_id)

    async def _admin_create_membership(self, request: Request) -> Response:
        fields = await _admin_body(request)
        user_id = fields.pop("user_id", None)
        if not isinstance(user_id, str):
            raise InvalidParameter("user_id", "user_id is required")
        return _admin_answer(self.store.create_membership, fields, request.path_params["organization_id"], user_id)

    async def _admin_change_membership(self, request: Request) -> Response:
        membership_id = request.path_params["membership_id"]
        if request.method == "DELETE":
            return _admin_answer(self.store.delete_membership, {}, membership_id)
        return _admin_answer(self.store.update_membership, await _admin_body(request), membership_id)

    async def _admin_create_role(self, request: Request) -> Response:
        return _admin_answer(self.store.create_role, await _admin_body(request))

    async def _admin_change_role(self, request: Request) -> Response:
        role_id = request.path_params["role_id"]
        if request.method == "DELETE":
            return _admin_answer(self.store.delete_role, {}, role_id)
        return _admin_answer(self.store.update_role, await _admin_body(request), role_id)

    async def _admin_role_permission(self, request: Request) -> Response:
        change = self.store.assign_permission if request.method == "POST" else self.store.remove_permission
        return _admin_answer(change, {}, request.path_params["role_id"], request.path_params["permission_id"])

    async def _admin_create_permission(self, request: Request) -> Response:
        return _admin_answer(self.store.create_permission, await _admin_body(request))

    async def _admin_change_permission(self, request: Request) -> Response:
        permission_id = request.path_params["permission_id"]
        if request.method == "DELETE":
            return _admin_answer(self.store.delete_permission, {}, permission_id)
        return _admin_answer(self.store.update_permission, await _admin_body(request), permission_id)

    async def _admin_create_invitation(self, request: Request) -> Response:
        return _admin_answer(
            self.store.create_invitation, await _admin_body(request), request.path_params["organization_id"]
        )

    async def _admin_settle_invitation(self, request: Request) -> Response:
        settle = {"accept": self.store.accept_invitation, "revoke": self.store.revoke_invitation}.get(
            request.path_params["action"]
        )
        if settle is None:
            raise ObjectNotFound("route", request.url.path)
        return _admin_answer(settle, await _admin_body(request), request.path_params["invitation_id"])

    async def _admin_create_domain(self, request: Request) -> Response:
        return _admin_answer(self.store.create_domain, await _admin_body(request), request.path_params["organization_id"])

    async def _admin_change_domain(self, request: Request) -> Response:
        domain_id = request.path_params["domain_id"]
        if request.method == "DELETE":
            return _admin_answer(self.store.delete_domain, {}, domain_id)
        return _admin_answer(self.store.update_domain, await _admin_body(request), domain_id)


async def _admin_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``); 422 otherwise."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidParameter("body", "the request body must be JSON") from None
    if not isinstance(body, dict):
        raise InvalidParameter("body", "the request body must be a JSON object")
    return body


def _admin_answer(change: Callable[..., dict[str, Any]], fields: dict[str, Any], *ids: str) -> Response:
    """Call a store mutation with ``ids`` positionally and ``fields`` as keywords; answer its result.

    Fields the mutation does not take, and values it refuses (ValueError), are 422.
    """
    parameters = inspect.signature(change).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    positional = set(list(parameters)[: len(ids)])
    unknown = sorted(set(fields) & positional if takes_any else set(fields) - (set(parameters) - positional))
    if unknown:
        raise InvalidParameter(unknown[0], f"unknown field(s): {', '.join(unknown)}")
    try:
        result = change(*ids, **fields)
    except ChangeRefused as error:  # a 400, 403 or 409 of Clerk's own
        return clerk_error(error.status, error.code, "refused", error.long_message)
    except (ValueError, TypeError) as error:
        if isinstance(error, InvalidParameter):
            raise
        raise InvalidParameter(next(iter(fields), "body"), str(error)) from None
    return _json(to_json(result))


async def _client_left_within(seconds: float, receive: Receive) -> bool:
    """Wait ``seconds``, or less if the client disconnects (then True): a timed-out client
    should not keep a server task sleeping through shutdown."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(receive(), timeout=min(remaining, 1.0))
        except asyncio.TimeoutError:
            continue
        if message["type"] == "http.disconnect":
            return True
    return False
