"""The store's clock, its minted ids and its webhook events: every change appends one and tells the listeners."""

from __future__ import annotations

import time
from typing import Any


from sync_pipeline.emulator.objects import event_envelope
from sync_pipeline.emulator.store_common import EventListener
from sync_pipeline.emulator.store_state import StoreState


class StoreEvents(StoreState):
    """Subscribing to events; the clock, ids and emission every change goes through."""


    def subscribe(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for every event from now on (after it is appended)."""
        with self._lock:
            self._listeners.append(listener)

    def _emit(self, event_type: str, data: dict[str, Any], timestamp_ms: int) -> None:
        event = event_envelope(event_type, data, timestamp_ms, self.instance_id)
        self.events.append(event)
        for listener in self._listeners:
            listener(event)

    def _tick(self) -> int:
        """Now, in epoch ms, strictly later than any earlier tick (so updated_at always grows)."""
        self._clock_ms = max(int(time.time() * 1000), self._clock_ms + 1)
        return self._clock_ms

    def _mint_id(self, prefix: str, created_at_ms: int) -> str:
        self._minted += 1
        return self._new_ids[prefix].encode(self._minted, created_at_ms)

    def _emit_cascade(self, removed_memberships: list[dict[str, Any]], now: int) -> None:
        """Membership deletions caused by a user or organization deletion (if so configured)."""
        if self.cascade_membership_events:
            for membership in removed_memberships:
                self._emit("organizationMembership.deleted", membership, now)
