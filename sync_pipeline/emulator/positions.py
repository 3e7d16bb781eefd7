"""Positions of objects in creation order, some deleted: the index the store pages over."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator


class Positions:
    """The positions of one kind of object, in creation order, with the deleted ones skipped.

    Paging needs the n-th live position; with ``d`` deleted positions that is a binary
    search in O(log d) steps, whatever the number of objects.
    """

    def __init__(self, generated_count: int) -> None:
        self.end = generated_count  # one past the last position handed out
        self._deleted: list[int] = []  # sorted
        self._deleted_set: set[int] = set()

    def append(self) -> int:
        self.end += 1
        return self.end - 1

    def delete(self, position: int) -> None:
        if position not in self._deleted_set:
            self._deleted_set.add(position)
            insort(self._deleted, position)

    @property
    def deleted(self) -> list[int]:
        """The deleted positions, ascending."""
        return list(self._deleted)

    def is_live(self, position: int) -> bool:
        return 0 <= position < self.end and position not in self._deleted_set

    def live_count(self, start: int = 0, stop: int | None = None) -> int:
        stop = self.end if stop is None else min(stop, self.end)
        start = max(start, 0)
        if stop <= start:
            return 0
        return (stop - start) - (bisect_left(self._deleted, stop) - bisect_left(self._deleted, start))

    def nth_live(self, n: int, start: int = 0) -> int:
        """The position of the n-th (from 0) live position at or after ``start``."""
        deleted_before_start = bisect_left(self._deleted, start)
        position = start + n
        while True:  # converges upward to the smallest position with n live ones before it
            candidate = start + n + bisect_right(self._deleted, position) - deleted_before_start
            if candidate == position:
                return position
            position = candidate

    def page(
        self, offset: int, limit: int, *, descending: bool, start: int = 0, stop: int | None = None
    ) -> list[int]:
        """Live positions ``offset..offset+limit`` of [start, stop), in the given direction."""
        stop = self.end if stop is None else min(stop, self.end)
        start = max(start, 0)
        total = self.live_count(start, stop)
        count = min(limit, total - offset)
        if count <= 0:
            return []
        rank = total - 1 - offset if descending else offset
        position = self.nth_live(rank, start)
        step = -1 if descending else 1
        found = []
        while len(found) < count:
            if position not in self._deleted_set:
                found.append(position)
            position += step
        return found

    def live(self, start: int = 0, stop: int | None = None) -> list[int]:
        """Every live position in [start, stop), ascending."""
        stop = self.end if stop is None else min(stop, self.end)
        return [position for position in range(max(start, 0), stop) if position not in self._deleted_set]

    def chunks(self, size: int) -> Iterator[range]:
        """Ranges of at most ``size`` positions, up to the end as it is when each is taken."""
        start = 0
        while start < self.end:
            yield range(start, min(start + size, self.end))
            start += size
