"""The created_at windows that split GET /users: disjoint, covering, each user read once,
whether Clerk's created_at bounds are inclusive or not, crowds in one millisecond included."""

from __future__ import annotations

import asyncio
from bisect import bisect_left, bisect_right
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from sync_pipeline.clerk.windows import Window, in_window, plan_windows, split_at, windows_wanted


def _clerk(times: list[int], inclusive: bool):  # noqa: ANN202
    """What GET /users (and its count) answer for a window's query under one reading of the bounds."""
    ordered = sorted(times)

    def answer(window: Window) -> list[int]:
        params = dict(window.query())
        start, stop = 0, len(ordered)
        if "created_at_after" in params:
            after = int(params["created_at_after"])
            start = bisect_left(ordered, after) if inclusive else bisect_right(ordered, after)
        before = int(params["created_at_before"])
        stop = bisect_right(ordered, before) if inclusive else bisect_left(ordered, before)
        return ordered[start:stop]

    return answer


def _plan(times: list[int], upper: int, inclusive: bool, wanted: int, max_counts: int = 40) -> tuple[list[Window], int]:
    answer = _clerk(times, inclusive)
    counts = 0

    async def count(window: Window) -> int:
        nonlocal counts
        counts += 1
        return len(answer(window))

    below = [t for t in times if t < upper]
    windows = asyncio.run(plan_windows(count, min(below), upper, len(below), wanted=wanted, max_counts=max_counts))
    return windows, counts


def _read(times: list[int], windows: list[Window], inclusive: bool) -> Counter[int]:
    """Every window walked, rows outside it dropped, as the client does."""
    answer = _clerk(times, inclusive)
    return Counter(t for window in windows for t in answer(window) if in_window(t, window))


def _assert_partition(windows: list[Window], upper: int) -> None:
    assert windows[0].lo is None and windows[-1].hi == upper
    for before, after in zip(windows, windows[1:]):
        assert before.hi == after.lo  # adjacent, no gap, no overlap
        assert after.lo < after.hi


timestamps = st.lists(st.integers(min_value=1_000, max_value=1_000 + 5_000), min_size=1, max_size=400)


@settings(max_examples=150, deadline=None)
@given(
    times=timestamps,
    crowd=st.integers(min_value=0, max_value=300),
    inclusive=st.booleans(),
    wanted=st.integers(min_value=1, max_value=16),
    past_upper=st.integers(min_value=0, max_value=20),
)
def test_every_user_before_the_upper_bound_is_read_exactly_once(
    times: list[int], crowd: int, inclusive: bool, wanted: int, past_upper: int
) -> None:
    times = times + [times[0]] * crowd  # a bulk import: many users in one millisecond
    upper = max(times) + 1
    later = [upper + i for i in range(past_upper)]  # created after the scan began
    windows, _ = _plan(times + later, upper, inclusive, wanted)
    _assert_partition(windows, upper)
    assert _read(times + later, windows, inclusive) == Counter(times)


@given(inclusive=st.booleans())
@settings(deadline=None)
def test_users_on_every_boundary_are_neither_lost_nor_doubled(inclusive: bool) -> None:
    # A user in every millisecond: each window boundary has users on both sides of it.
    times = [t for t in range(1_000, 1_400) for _ in range(3)]
    windows, _ = _plan(times, 1_400, inclusive, wanted=8)
    assert len(windows) == 8
    assert _read(times, windows, inclusive) == Counter(times)


def test_a_crowd_in_one_millisecond_is_one_window_walked_alone() -> None:
    times = list(range(0, 27_000, 10)) + [13_337] * 3_000
    windows, counts = _plan(times, 30_000, inclusive=False, wanted=16, max_counts=48)
    crowd = [w for w in windows if w.lo is not None and w.lo <= 13_337 < w.hi]
    assert len(crowd) == 1
    assert _read(times, windows, False) == Counter(times)
    assert counts <= 48


def test_windows_are_balanced_by_a_few_counts_when_users_are_spread() -> None:
    times = list(range(100_000))
    windows, counts = _plan(times, 100_000, inclusive=False, wanted=8)
    sizes = [len([t for t in times if in_window(t, w)]) for w in windows]
    assert len(windows) == 8 and max(sizes) <= 2 * min(sizes)
    assert counts <= 2 * 7  # about one count per cut


def test_a_window_of_one_millisecond_cannot_be_split_and_the_query_widens_by_one_below() -> None:
    assert not Window(5, 6).splittable and Window(5, 7).splittable and not Window(None, 9).splittable
    assert Window(5, 9).query() == [("created_at_after", "4"), ("created_at_before", "9")]
    assert Window(None, 9).query() == [("created_at_before", "9")]
    assert split_at(Window(5, 9), 7) == (Window(5, 7), Window(7, 9))
    assert in_window(5, Window(5, 9)) and not in_window(9, Window(5, 9)) and not in_window(4, Window(5, 9))


def test_windows_wanted_grows_with_the_list_up_to_the_concurrency() -> None:
    assert windows_wanted(0, 500, 16) == 1
    assert windows_wanted(4_000, 500, 16) == 1
    assert windows_wanted(30_000, 500, 16) == 8
    assert windows_wanted(1_000_000, 500, 16) == 16
