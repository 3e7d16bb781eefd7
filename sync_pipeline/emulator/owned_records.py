"""Objects an organization owns besides its memberships (invitations, domains): one helper for each kind.

Generated ones hold positions ``0..n-1`` of an :class:`~.generate.OwnedLayout` and are
made on demand; created ones are appended. Changed or created records live in an
overlay, deleted positions are remembered. What the store's invitation and domain parts
would otherwise each repeat (lookup by id, an organization's live records, the order by
``created_at``, a column of every live record for filters and sorts) is here once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from sync_pipeline.emulator.generate import OwnedLayout
from sync_pipeline.emulator.ids import IdCodec
from sync_pipeline.emulator.positions import Positions
from sync_pipeline.emulator.store_common import SCAN_BATCH, overlaid

Record = TypeVar("Record")


class OwnedRecords(Generic[Record]):
    """One kind of organization-owned record: generated, created, changed and deleted ones."""

    def __init__(
        self,
        layout: OwnedLayout,
        codec: IdCodec,
        generate: Callable[[Sequence[int]], list[Record]],
        organization_count: int,
    ) -> None:
        self.layout = layout
        self._codec = codec
        self._generate = generate
        self._generated_organizations = organization_count
        self.positions = Positions(layout.count)
        self.overlay: dict[int, Record] = {}
        self._created: dict[str, int] = {}  # id -> position, for records created through the store
        self._added_to_organization: dict[int, list[int]] = {}
        self._by_creation: np.ndarray | None = None  # generated positions by (created_at, position); never stale
        self._columns: dict[str, list[Any]] = {}  # field -> its value for every generated position; never stale

    def position(self, object_id: str) -> int | None:
        """The position of a live record by id, or None."""
        position = self._created.get(object_id)
        if position is None:
            position = _generated_position(self._codec, self.layout, object_id)
        return position if position is not None and self.positions.is_live(position) else None

    def records(self, positions: Sequence[int]) -> list[Record]:
        """The records at ``positions`` (overlaid ones as they are: copy before changing)."""
        return overlaid(positions, self.overlay, lambda missing: self._generate(missing), lambda _, record: record)

    def record(self, position: int) -> Record:
        """A fresh copy of the record at ``position``, to change and :meth:`write` back."""
        return copy.deepcopy(self.records([position])[0])

    def of_organization(self, organization_position: int) -> list[int]:
        """The organization's live records, in creation order."""
        positions: list[int] = []
        if organization_position < self._generated_organizations:
            positions.extend(self.layout.positions_of_organization(organization_position))
        positions.extend(self._added_to_organization.get(organization_position, ()))
        return [p for p in positions if self.positions.is_live(p)]

    def add(self, record: Record, object_id: str, organization_position: int) -> int:
        position = self.positions.append()
        self.overlay[position] = record
        self._created[object_id] = position
        self._added_to_organization.setdefault(organization_position, []).append(position)
        return position

    def write(self, position: int, record: Record) -> None:
        self.overlay[position] = record

    def delete(self, position: int) -> Record:
        record = self.records([position])[0]
        self.positions.delete(position)
        self.overlay.pop(position, None)
        return record

    def live_by_creation(self) -> list[int]:
        """Every live position, ascending by (created_at, position); created records come last."""
        if self._by_creation is None:
            count = self.layout.count
            self._by_creation = np.lexsort((np.arange(count), self.layout.created_at)).astype(np.int64)
        order = self._by_creation
        deleted = np.array(self.positions.deleted, dtype=np.int64)
        if len(deleted):
            order = order[~np.isin(order, deleted)]
        # Created records' created_at is a store tick, later than any generated one.
        return order.tolist() + self.positions.live(self.layout.count)

    def column(self, field: str, positions: Sequence[int]) -> list[Any]:
        """``field`` of each record at ``positions``: generated values computed once for all, overlay on top."""
        generated = self._columns.get(field)
        if generated is None:
            generated = []
            for start in range(0, self.layout.count, SCAN_BATCH):
                batch = range(start, min(start + SCAN_BATCH, self.layout.count))
                generated.extend(getattr(record, field) for record in self._generate(batch))
            self._columns[field] = generated
        overlay = self.overlay
        return [getattr(overlay[p], field) if p in overlay else generated[p] for p in positions]


def _generated_position(codec: IdCodec, layout: OwnedLayout, object_id: str) -> int | None:
    position = codec.decode(object_id)
    if position is None or position >= layout.count:
        return None
    return position if codec.encode(position, int(layout.created_at[position])) == object_id else None
