"""Splitting ``GET /users`` into disjoint ``created_at`` windows, walked side by side.

A cursor walk (``starting_after``) is sequential; concurrency comes from walking several
windows of creation time at once. Everything here is pure: the planner is handed a
``count`` function (``GET /users/count`` over a window, in the client) and asks it a
bounded number of times.

Clerk's spec does not say whether ``created_at_after``/``created_at_before`` are
inclusive. A window is the half-open interval ``[lo, hi)`` of epoch milliseconds; it is
*asked for* one millisecond wider below (``created_at_after=lo-1``, ``created_at_before=hi``)
and rows outside ``[lo, hi)`` are dropped client-side. Under the exclusive reading the
answer is exactly the window; under the inclusive one it holds at most the rows of the two
neighbouring milliseconds too, which :func:`in_window` drops. Either way each user lands in
exactly one window.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Window:
    """Users with ``lo <= created_at < hi``; ``lo=None`` reaches back to the first user."""

    lo: int | None
    hi: int

    @property
    def splittable(self) -> bool:
        """Whether the window spans more than one millisecond (a crowd in one cannot be cut)."""
        return self.lo is not None and self.hi - self.lo > 1

    def query(self) -> list[tuple[str, str]]:
        """The created_at filters that ask for this window, widened for either reading."""
        params = [("created_at_before", str(self.hi))]
        if self.lo is not None:
            params.insert(0, ("created_at_after", str(self.lo - 1)))
        return params


def in_window(created_at: object, window: Window) -> bool:
    """Whether a row with this ``created_at`` belongs to ``window`` (and so is kept)."""
    if not isinstance(created_at, int) or isinstance(created_at, bool):
        # No usable timestamp: keep it in the window that asked for it; the normalizer
        # judges the row. Only rows on a boundary can be doubled, and those have one.
        return True
    return (window.lo is None or window.lo <= created_at) and created_at < window.hi


def split_at(window: Window, at: int) -> tuple[Window, Window]:
    """``window`` cut at ``at`` into ``[lo, at)`` and ``[at, hi)``: disjoint, covering it."""
    assert window.lo is not None and window.lo < at < window.hi, (window, at)
    return Window(window.lo, at), Window(at, window.hi)


def windows_wanted(total: int, page_size: int, max_windows: int, pages_per_window: int = 8) -> int:
    """How many windows a scan of ``total`` users is worth: a window is worth its count
    requests only when it holds several pages."""
    return max(1, min(max_windows, math.ceil(total / (page_size * pages_per_window))))


Count = Callable[[Window], Awaitable[int]]


async def plan_windows(
    count: Count,
    first_created_at: int,
    upper: int,
    total: int,
    *,
    wanted: int,
    max_counts: int,
    min_rows: int = 1,
) -> list[Window]:
    """Disjoint windows covering every user created before ``upper``, about equally full.

    ``first_created_at`` is the oldest user's ``created_at`` and ``total`` the users before
    ``upper``. The first window reaches back without a lower bound, so nothing older than
    the oldest user seen is lost. The fullest window is halved by counting until there are
    ``wanted`` windows, ``max_counts`` counts have been spent, or no window can be cut (a
    crowd of users in one millisecond stays one window, walked by cursor alone) or holds
    more than ``min_rows`` (a page: less is not worth a count).
    Counts are balance hints only: a wrong count costs time, never rows.
    """
    if wanted <= 1 or upper - first_created_at <= 1:
        return [Window(None, upper)]
    # The open lower end is kept aside: splitting happens on [first, upper).
    windows: dict[Window, int] = {Window(first_created_at, upper): total}
    budget = max_counts
    while len(windows) < wanted and budget > 0:
        candidates = [w for w in windows if w.splittable and windows[w] > max(1, min_rows)]
        if not candidates:
            break
        fullest = max(candidates, key=lambda w: (windows[w], -w.hi))
        n = windows.pop(fullest)
        left, right, left_n, spent = await _halve(count, fullest, n, budget)
        budget -= spent
        windows[left], windows[right] = min(n, left_n), max(0, n - left_n)
    ordered = sorted(windows)
    # Reach below the oldest user: anything created earlier (a clock quirk, an import
    # with old timestamps added since the first page) is still read.
    first = ordered[0]
    return [Window(None, first.hi), *ordered[1:]]


async def _halve(count: Count, window: Window, n: int, budget: int) -> tuple[Window, Window, int, int]:
    """Cut ``window`` (holding about ``n`` users) where the left part holds about half.

    Bisection on time: a few counts when users are spread evenly, more when they bunch.
    Stops at a cut holding between a quarter and three quarters, at the budget, or when
    the search has narrowed to one millisecond (then the cut falls beside the crowd).
    """
    assert window.lo is not None
    low, high = window.lo, window.hi  # the cut lies in (low, high)
    best: tuple[float, int, int] | None = None  # (distance from half, cut, left count)
    spent = 0
    while high - low > 1 and spent < budget:
        mid = (low + high) // 2
        left = await count(Window(window.lo, mid))
        spent += 1
        distance = abs(left - n / 2)
        if best is None or distance <= best[0]:  # on a tie the later cut, nearer a crowd
            best = (distance, mid, left)
        if n / 4 <= left <= 3 * n / 4:
            break
        if left < n / 2:
            low = mid
        else:
            high = mid
    if best is None:
        mid = (window.lo + window.hi) // 2
        best = (0.0, mid, n // 2)
    left_part, right_part = split_at(window, best[1])
    return left_part, right_part, best[2], spent
