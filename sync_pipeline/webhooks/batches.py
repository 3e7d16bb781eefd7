"""Which pending events the next partial sync answers: a batch, split when it failed.

A partial sync answers its events all or nothing (one apply transaction). So one event
that makes every run fail would hold up every event queued with it. When a batch's run
failed and its events are still pending, the next batch is the first half of it, and so
on until an event that fails alone is found: that one is *held* (retried alone, paced,
while the other events go on) instead of blocking the queue. A batch that succeeds
lets the next one be full size again.

Splitting is immediate after one failed run (a poison event is found in minutes), but
when runs fail one after another, as every run does while Clerk or the database is down,
each further launch waits (:func:`split_pause_seconds`): an hour's outage costs a dozen
failed runs and alerts, not one per event.

The state is plain data, so the sensor keeps it in its cursor and ``webhooks process``
in a loop variable; :func:`next_batch` is pure.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

from sync_pipeline.webhooks.inbox import InboxEvent

FIRST_RETRY_PAUSE_SECONDS = 60.0
MAX_RETRY_PAUSE_SECONDS = 3600.0


def retry_pause_seconds(failed_attempts: int) -> float:
    """60 s after the first failure, doubling up to an hour: a batch that keeps failing
    (a guard refusal, Clerk down) is retried without hammering anything."""
    return min(FIRST_RETRY_PAUSE_SECONDS * 2 ** (max(failed_attempts, 1) - 1), MAX_RETRY_PAUSE_SECONDS)


FIRST_SPLIT_PAUSE_SECONDS = 60.0
MAX_SPLIT_PAUSE_SECONDS = 300.0


def split_pause_seconds(failed_in_row: int) -> float:
    """How long to wait after the ``failed_in_row``-th run in a row failed before the next launch.

    None after the first (one failure says nothing about the rest of the queue); then 60 s,
    doubling, at most 5 minutes: a poison event deep in a batch is still isolated within
    about 20 minutes, and a systemic failure launches about 12 runs an hour.
    """
    if failed_in_row <= 1:
        return 0.0
    return min(FIRST_SPLIT_PAUSE_SECONDS * 2 ** (failed_in_row - 2), MAX_SPLIT_PAUSE_SECONDS)


def batch_digest(svix_ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(svix_ids)).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class BatchState:
    """What is remembered between launches."""

    batch: str = ""
    """Digest of the last batch launched."""
    size: int = 0
    """How many events it had."""
    attempt: int = 0
    """How many times in a row a batch of these events failed (1 at the first launch)."""
    launched_at: float = 0.0
    held: dict[str, float] = field(default_factory=dict)
    """Events that failed alone: svix id -> when they may be tried (alone) again."""
    held_failures: dict[str, int] = field(default_factory=dict)
    last: tuple[str, ...] = ()
    """The svix ids of the last batch launched."""
    suspects: tuple[str, ...] = ()
    """While splitting: the failed batch's events not yet answered (one of them fails)."""
    failed_in_row: int = 0
    """How many runs in a row failed before the one launched last (0 after a success)."""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict | None) -> BatchState:
        value = value or {}
        known = {name: value[name] for name in cls.__dataclass_fields__ if name in value}
        for name in ("last", "suspects"):
            known[name] = tuple(known.get(name, ()))
        return cls(**known)


@dataclass(frozen=True)
class Decision:
    events: list[InboxEvent]
    """What to launch now; empty when nothing is to be launched."""
    state: BatchState
    reason: str
    wait_until: float | None = None
    """When nothing is launched because runs keep failing: when the next launch may be."""


def next_batch(
    pending: Sequence[InboxEvent],
    state: BatchState,
    *,
    batch_size: int,
    now: float,
    pause: Callable[[int], float] = retry_pause_seconds,
    split_pause: Callable[[int], float] = split_pause_seconds,
) -> Decision:
    """The next batch to launch, given the oldest pending events, when no run is in flight.

    ``pending`` should hold at least ``batch_size + len(state.held)`` of the oldest
    pending events, so that held events do not shrink the batch.
    """
    by_id = {event.svix_id: event for event in pending}
    if state.batch and state.size and not state.last:  # a cursor from before `last` was kept: the oldest `size` then
        head = [e.svix_id for e in pending if e.svix_id not in state.held][: state.size]
        if batch_digest(head) == state.batch:
            state = replace(state, last=tuple(head))
    held = {i: t for i, t in state.held.items() if i in by_id}
    held_failures = {i: n for i, n in state.held_failures.items() if i in by_id}
    suspects = [i for i in state.suspects if i in by_id and i not in held]
    size = len(state.last)
    last_failed = bool(state.last) and all(i in by_id for i in state.last)
    failed_in_row = state.failed_in_row + 1 if last_failed else 0
    wait_until = state.launched_at + split_pause(failed_in_row) if last_failed else now
    if now < wait_until:
        # The state is kept as it is: the next tick judges the same failure and waits the same.
        return Decision(
            [], state, f"{failed_in_row} runs in a row failed; the next launch in {wait_until - now:.0f}s", wait_until
        )

    def launch(batch: list[str], attempt: int, reason: str, suspects: list[str]) -> Decision:
        after = BatchState(
            batch_digest(batch), len(batch), attempt, now, held, held_failures, tuple(batch), tuple(suspects), failed_in_row
        )
        return Decision([by_id[i] for i in batch], after, reason)

    # Still pending with nothing in flight: the last batch's run failed.
    if last_failed:
        if len(state.last) > 1:
            suspects = list(state.last)
            size = math.ceil(len(state.last) / 2)
            return launch(suspects[:size], 1, f"the run for {len(suspects)} event(s) failed: {size} of them now, "
                          "to find the one that fails", suspects)
        # It failed alone: hold it (retried alone, paced) and go on with the others.
        (failed,) = state.last
        held_failures[failed] = held_failures.get(failed, 0) + 1
        held[failed] = state.launched_at + pause(held_failures[failed])
        suspects = [i for i in suspects if i != failed]

    if suspects:  # still narrowing down: the next part of the failed batch, at the same size
        batch = suspects[: max(size, 1)]
        return launch(batch, 1, f"{len(batch)} of {len(suspects)} event(s) left of a failed batch", suspects)
    ready = [e.svix_id for e in pending if e.svix_id not in held]
    if ready:
        note = f"; {len(held)} held after failing alone" if held else ""
        return launch(ready[:batch_size], 1, f"{min(len(ready), batch_size)} event(s){note}", [])
    due = sorted((t, i) for i, t in held.items() if t <= now)
    if due:
        svix_id = due[0][1]
        held.pop(svix_id)
        failures = held_failures.get(svix_id, 0)
        return launch([svix_id], failures + 1, f"retrying alone an event whose run failed {failures}x", [])
    if held:
        return Decision(
            [],
            # The failure is accounted for in `held`: nothing launched is left to judge.
            BatchState(held=held, held_failures=held_failures, failed_in_row=failed_in_row),
            f"the last run for {len(held)} event(s) failed ({max(held_failures.values())}x); "
            f"retrying in {min(held.values()) - now:.0f}s",
        )
    return Decision([], BatchState(), "no pending webhook events")
