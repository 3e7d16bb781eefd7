"""What a fetch cost: requests, pages, rows, retries and the rate held, per endpoint and in all.

These figures flow to the CLI's summary (:meth:`FetchStats.summary`) and to the
``clerk_snapshot`` asset's metadata (:meth:`FetchStats.to_metadata`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]


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
    # The rate: what the call held itself to (per 10 s), the seconds every request stood
    # still after a 429 (wall clock, not summed over requests), and how the users were cut.
    target_per_10s: float | None = None
    waiting_seconds: float = 0.0
    user_windows: int = 0
    # A deep offset that timed out on the instance-wide membership list, and what reading
    # the rest per organization cost instead (see paging.MembershipFallback).
    offset_timeouts: list[dict[str, Any]] = field(default_factory=list)
    fallback_requests: int = 0
    gone_parents: list[str] = field(default_factory=list)

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

    @property
    def achieved_per_10s(self) -> float:
        """Requests per 10 s over the call's wall-clock time."""
        return self.requests * 10.0 / self.seconds if self.seconds > 0 else 0.0

    def merge(self, *others: FetchStats) -> FetchStats:
        """A new FetchStats adding this one and ``others`` (seconds add up too)."""
        merged = FetchStats(operation="+".join(s.operation for s in (self, *others) if s.operation))
        for stats in (self, *others):
            merged.seconds += stats.seconds
            merged.early_short_pages += stats.early_short_pages
            merged.waiting_seconds += stats.waiting_seconds
            merged.user_windows += stats.user_windows
            merged.offset_timeouts += stats.offset_timeouts
            merged.fallback_requests += stats.fallback_requests
            merged.gone_parents += stats.gone_parents
            if stats.target_per_10s is not None:
                merged.target_per_10s = max(merged.target_per_10s or 0.0, stats.target_per_10s)
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
            "requests_per_10s": round(self.achieved_per_10s, 1),
            "target_per_10s": self.target_per_10s,
            "waiting_seconds": round(self.waiting_seconds, 3),
            "user_windows": self.user_windows,
            "offset_timeouts": list(self.offset_timeouts),
            "fallback_requests": self.fallback_requests,
            "gone_parents": list(self.gone_parents),
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
        metadata[f"{prefix}requests_per_10s"] = round(self.achieved_per_10s, 1)
        if self.target_per_10s is not None:
            metadata[f"{prefix}target_per_10s"] = self.target_per_10s
        metadata[f"{prefix}waiting_seconds"] = round(self.waiting_seconds, 3)
        if self.user_windows:
            metadata[f"{prefix}user_windows"] = self.user_windows
        if self.offset_timeouts:
            metadata[f"{prefix}offset_timeouts"] = list(self.offset_timeouts)
            metadata[f"{prefix}fallback_requests"] = self.fallback_requests
        if self.gone_parents:
            metadata[f"{prefix}gone_parents"] = len(self.gone_parents)
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
        if self.target_per_10s is not None:
            text += f"; {self.achieved_per_10s:.0f} requests per 10 s held (target {self.target_per_10s:.0f})"
        if self.responses_429 or self.waiting_seconds:
            text += f", {self.waiting_seconds:.1f} s paused after 429s"
        if self.user_windows:
            text += f"; users read in {self.user_windows} created_at window(s)"
        if self.early_short_pages:
            text += f"; {self.early_short_pages} page(s) came back short inside the announced range"
        for timeout in self.offset_timeouts:
            text += (
                f"; {timeout['list']} timed out at offset {timeout['offset']}, the rest read per organization "
                f"({self.fallback_requests} request(s))"
            )
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
