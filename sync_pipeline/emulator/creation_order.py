"""Users in ``created_at`` order, ties broken by id: the order ``GET /users`` pages and cursors walk.

Generated users are created in index (position) order, strictly later one after the
other, except for the *crowd*: a run of users sharing one millisecond, as a bulk import
makes. Within it Clerk can only order by something else that is unique; the id is the
plausible tie-break (a database's ``ORDER BY created_at, id``), so the crowd is ranked by
id. Every position therefore has a *rank*: its place in that order. Outside the crowd
rank and position are the same number, so pages away from the crowd stay arithmetic on
positions; inside it a small permutation (one entry per crowd member) maps between them.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

from sync_pipeline.emulator.positions import Positions


class CreationOrder:
    """Ranks of positions in (created_at, id) order, given the crowd and its ids."""

    def __init__(self, crowd: range, crowd_ids: list[str]) -> None:
        self.crowd = crowd
        by_id = np.argsort(np.array(crowd_ids, dtype=object), kind="stable") if crowd_ids else np.empty(0, int)
        self._crowd_by_rank = (crowd.start + np.asarray(by_id, dtype=np.int64)).astype(np.int64)
        self._crowd_rank_of = np.empty(len(crowd), dtype=np.int64)
        self._crowd_rank_of[by_id] = crowd.start + np.arange(len(crowd), dtype=np.int64)

    def rank(self, position: int) -> int:
        if position in self.crowd:
            return int(self._crowd_rank_of[position - self.crowd.start])
        return position

    def position(self, rank: int) -> int:
        if rank in self.crowd:
            return int(self._crowd_by_rank[rank - self.crowd.start])
        return rank

    def ranks(self, positions: np.ndarray) -> np.ndarray:
        """:meth:`rank` over an array of positions."""
        positions = np.asarray(positions, dtype=np.int64)
        if not len(self.crowd):
            return positions
        inside = (positions >= self.crowd.start) & (positions < self.crowd.stop)
        ranks = positions.copy()
        ranks[inside] = self._crowd_rank_of[positions[inside] - self.crowd.start]
        return ranks

    def _segments(self, start: int, stop: int) -> list[tuple[int, int, bool]]:
        """[start, stop) in rank space cut into (start, stop, in_crowd) pieces, ascending."""
        crowd = self.crowd
        pieces = [
            (start, min(stop, crowd.start), False),
            (max(start, crowd.start), min(stop, crowd.stop), True),
            (max(start, crowd.stop), stop, False),
        ] if len(crowd) else [(start, stop, False)]
        return [(a, b, in_crowd) for a, b, in_crowd in pieces if a < b]

    def _crowd_live(self, positions: Positions, start: int, stop: int) -> list[int]:
        """Live positions of crowd ranks [start, stop), in rank order."""
        members = self._crowd_by_rank[start - self.crowd.start : stop - self.crowd.start].tolist()
        return [p for p in members if positions.is_live(p)]

    def _crowd_live_count(self, positions: Positions, start: int, stop: int) -> int:
        deleted = positions.deleted
        in_crowd = deleted[bisect_left(deleted, self.crowd.start) : bisect_left(deleted, self.crowd.stop)]
        gone = sum(1 for p in in_crowd if start <= self.rank(p) < stop)
        return (stop - start) - gone

    def live_count(self, positions: Positions, start: int, stop: int) -> int:
        """Live users with a rank in [start, stop)."""
        return sum(
            self._crowd_live_count(positions, a, b) if in_crowd else positions.live_count(a, b)
            for a, b, in_crowd in self._segments(start, stop)
        )

    def live(self, positions: Positions, start: int, stop: int) -> list[int]:
        """Live positions with a rank in [start, stop), in rank order."""
        found: list[int] = []
        for a, b, in_crowd in self._segments(start, stop):
            found.extend(self._crowd_live(positions, a, b) if in_crowd else positions.live(a, b))
        return found

    def page(
        self, positions: Positions, offset: int, limit: int, *, descending: bool, start: int, stop: int
    ) -> list[int]:
        """Live positions ``offset..offset+limit`` of ranks [start, stop), in the given direction."""
        segments = self._segments(start, min(stop, positions.end))
        if descending:
            segments.reverse()
        found: list[int] = []
        for a, b, in_crowd in segments:
            if len(found) >= limit:
                break
            count = self._crowd_live_count(positions, a, b) if in_crowd else positions.live_count(a, b)
            if offset >= count:
                offset -= count
                continue
            wanted = limit - len(found)
            if in_crowd:
                members = self._crowd_live(positions, a, b)
                if descending:
                    members.reverse()
                found.extend(members[offset : offset + wanted])
            else:
                found.extend(positions.page(offset, wanted, descending=descending, start=a, stop=b))
            offset = 0
        return found
