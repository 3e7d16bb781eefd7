"""How fast the sync asks Clerk: a fair share of the instance's limit, adapting to 429s.

Clerk's limit is per instance and shared with the application's own backend calls, so
the sync holds itself to a *share* of it (half by default) and backs off when the
instance says it is busy:

- the pace comes from an ``aiolimiter.AsyncLimiter`` (a leaky bucket sized so that no
  window of ``window_seconds`` ever admits more than the current rate);
- a 429 pauses every request of the call for ``Retry-After`` seconds and halves the
  current rate (once per pause, not once per request that met it);
- each window of successful traffic after that adds back a twentieth of the target, so the
  rate climbs back to its share over about twenty windows (additive increase,
  multiplicative decrease, as TCP does for the same reason);
- a call is *stalled* when no request of it has succeeded for ``stall_timeout`` seconds:
  only then do 429s make it fail.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
from datetime import datetime, timezone

from aiolimiter import AsyncLimiter

from sync_pipeline import progress
from sync_pipeline.clerk.stats import FetchStats

# Clerk's limits per instance (secret key) and 10 s: production and development keys.
INSTANCE_REQUESTS_PER_10S = {"sk_live_": 1000, "sk_test_": 100}
DEFAULT_RATE_SHARE = 0.5
DEFAULT_STALL_TIMEOUT_SECONDS = 600.0
# After a 429 the rate is cut to this fraction; each good window adds back this share of the target.
DECREASE_FACTOR = 0.5
INCREASE_SHARE = 0.05


def instance_limit(secret_key: str) -> int:
    """Clerk's documented limit per 10 s for the key's kind (a development key's when unknown)."""
    key = secret_key.strip()
    return next(
        (limit for prefix, limit in INSTANCE_REQUESTS_PER_10S.items() if key.startswith(prefix)),
        INSTANCE_REQUESTS_PER_10S["sk_test_"],
    )


def share_of_limit(secret_key: str, share: float) -> int:
    """``share`` of the key's instance limit, in whole requests per 10 s (at least one)."""
    return max(1, math.floor(instance_limit(secret_key) * share))


def leaky_bucket(requests_per_window: float, window_seconds: float, max_burst: int) -> AsyncLimiter:
    """A leaky bucket that lets at most ``requests_per_window`` requests into *any* window.

    ``AsyncLimiter(n, window)`` alone allows a burst of n on top of n per window (2n in
    the first window), which would trip Clerk's limit. With a small burst b and a drain
    rate of (n - b) per window, any window sees at most b + (n - b) = n requests.
    """
    n = max(1.0, requests_per_window)
    burst = max(1, min(max_burst, int(n // 20)))
    if n <= burst + 0.5:
        return AsyncLimiter(burst, window_seconds * burst / n)
    return AsyncLimiter(burst, window_seconds * burst / (n - burst))


class RateControl:
    """The pace of one call's requests; see the module docstring."""

    def __init__(
        self,
        target_per_window: int,
        *,
        window_seconds: float,
        max_burst: int,
        stall_timeout: float,
        stats: FetchStats,
    ) -> None:
        self.target = float(target_per_window)
        self.current = self.target
        self.window = window_seconds
        self.max_burst = max_burst
        self.stall_timeout = stall_timeout
        self.stats = stats
        stats.target_per_10s = round(self.target * 10.0 / window_seconds, 1)
        self.limiter = leaky_bucket(self.current, window_seconds, max_burst)
        self.resume_at = 0.0  # loop time before which no request is sent (after a 429)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_success = 0.0
        self._last_change = 0.0
        self._cut_allowed_at = 0.0
        self._reported_at = 0.0
        self._reported_requests = 0

    def _now(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            now = self._loop.time()
            self._last_success = self._last_change = self._reported_at = now
        return self._loop.time()

    async def admit(self) -> None:
        """Wait out any pause, then for the limiter's leave to send one request."""
        while (pause := self.resume_at - self._now()) > 0:
            await asyncio.sleep(pause)
        await self.limiter.acquire()

    def succeeded(self) -> None:
        """A request was answered (any answer but a 429 or a 5xx): the instance is serving us."""
        now = self._now()
        self._last_success = now
        if now - self._last_change >= self.window and self.current < self.target:
            self._set_rate(min(self.target, self.current + max(1.0, self.target * INCREASE_SHARE)), now)
        if now - self._reported_at >= self.window:
            requests = self.stats.requests
            rate = (requests - self._reported_requests) * 10.0 / (now - self._reported_at)
            progress.current().rate(rate, self.stats.responses_429, self.stats.waiting_seconds)
            self._reported_at, self._reported_requests = now, requests

    def rate_limited(self, retry_after: float | None) -> None:
        """Clerk answered 429: pause everyone for ``Retry-After``, and slow down."""
        now = self._now()
        if retry_after is not None:
            until = now + retry_after
            self.stats.waiting_seconds += max(0.0, until - max(self.resume_at, now))
            self.resume_at = max(self.resume_at, until)
        if now >= self._cut_allowed_at:
            # Requests already in flight when the pause began meet 429s too: one cut per pause.
            self._set_rate(max(1.0, self.current * DECREASE_FACTOR), now)
            self._cut_allowed_at = max(self.resume_at, now + self.window / 10)

    def stalled_for(self) -> float | None:
        """Seconds since the last success when that is past the stall timeout, else None."""
        since = self._now() - self._last_success
        return since if since > self.stall_timeout else None

    def _set_rate(self, rate: float, now: float) -> None:
        self.current = rate
        self._last_change = now
        # A new bucket rather than editing the old one's internals; requests already
        # waiting on the old one keep its pace.
        self.limiter = leaky_bucket(rate, self.window, self.max_burst)


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
