"""next_batch, pure: a failed batch is split until the event that fails alone is held, and the rest go on."""

from __future__ import annotations

from datetime import datetime, timezone

from sync_pipeline.webhooks.batches import BatchState, batch_digest, next_batch
from sync_pipeline.webhooks.inbox import InboxEvent

NOW = 1_000_000.0


def events(n: int) -> list[InboxEvent]:
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    return [InboxEvent(f"msg_{i:02d}", "user.updated", "user", f"user_{i}", f"user_{i}", None, at, None, "pending") for i in range(n)]


def ids(batch) -> list[str]:  # noqa: ANN001
    return [e.svix_id for e in batch]


def simulate(pending: list[InboxEvent], poison: set[str], *, batch_size: int, max_runs: int = 50) -> tuple[list[list[str]], BatchState]:
    """Launch what next_batch says (waiting when it says to); a run succeeds unless it holds a poison event.
    Returns the runs launched."""
    state, runs, now = BatchState(), [], NOW
    for _ in range(max_runs):
        decision = next_batch(pending, state, batch_size=batch_size, now=now)
        if decision.wait_until is not None:
            now = decision.wait_until
            continue
        if not decision.events:
            return runs, decision.state
        state = decision.state
        runs.append(ids(decision.events))
        if not poison & set(runs[-1]):
            pending = [e for e in pending if e.svix_id not in runs[-1]]
        now += 1
    raise AssertionError(f"no end after {max_runs} runs: {runs}")


def test_a_batch_that_succeeds_is_followed_by_a_full_one() -> None:
    runs, state = simulate(events(7), set(), batch_size=3)
    assert runs == [["msg_00", "msg_01", "msg_02"], ["msg_03", "msg_04", "msg_05"], ["msg_06"]]
    assert not state.held


def test_one_poison_event_is_isolated_and_held_while_every_other_event_is_processed() -> None:
    runs, state = simulate(events(10), {"msg_05"}, batch_size=8)

    processed = {i for run in runs for i in run} - {"msg_05"}
    assert processed == {f"msg_{i:02d}" for i in range(10)} - {"msg_05"}
    assert list(state.held) == ["msg_05"] and state.held_failures == {"msg_05": 1}
    # 8 fail; 4 pass; the other 4 fail; 2 fail; 1 passes, 1 fails alone and is held; then the other 4 together.
    assert [len(run) for run in runs] == [8, 4, 4, 2, 1, 1, 4]


def test_runs_that_fail_one_after_another_slow_the_splitting_to_a_dozen_runs_an_hour() -> None:
    # Clerk is down: every run fails, whatever it holds. Splitting must not launch a run per event.
    pending, state, now, launches = events(99), BatchState(), NOW, []
    while now < NOW + 3600:
        decision = next_batch(pending, state, batch_size=50, now=now)
        if decision.events:
            launches.append(now)
            state = decision.state
        now += 5  # the sensor's tick
    assert 8 <= len(launches) <= 16, launches
    assert launches[1] - launches[0] == 5  # the first failure splits at once
    gaps = [b - a for a, b in zip(launches[1:], launches[2:])]
    assert max(gaps) <= 300 + 5 and gaps[-1] >= 300


def test_a_success_resets_the_pace() -> None:
    first = next_batch(events(4), BatchState(), batch_size=4, now=NOW)
    failed_twice = BatchState(**{**first.state.to_json(), "failed_in_row": 1, "last": tuple(first.state.last)})
    waiting = next_batch(events(4), failed_twice, batch_size=4, now=NOW + 5)
    assert not waiting.events and waiting.wait_until == NOW + 60 and "2 runs in a row failed" in waiting.reason
    answered = next_batch(events(6)[4:], failed_twice, batch_size=4, now=NOW + 5)  # the batch was answered
    assert ids(answered.events) == ["msg_04", "msg_05"] and answered.state.failed_in_row == 0


def test_a_held_event_is_retried_alone_after_its_pause_with_a_new_attempt() -> None:
    pending = events(1)
    # As an older cursor has it (no `last`): the digest of the batch launched.
    failed = BatchState(batch=batch_digest(["msg_00"]), size=1, attempt=1, launched_at=NOW)

    early = next_batch(pending, failed, batch_size=10, now=NOW + 10)
    assert not early.events and "retrying in 50s" in early.reason

    later = next_batch(pending, early.state, batch_size=10, now=NOW + 61)
    assert ids(later.events) == ["msg_00"] and later.state.attempt == 2 and not later.state.held

    # It fails again: held for twice as long.
    again = next_batch(pending, later.state, batch_size=10, now=NOW + 62)
    assert not again.events and again.state.held == {"msg_00": NOW + 61 + 120}


def test_the_state_survives_a_round_trip_through_json() -> None:
    state = BatchState("abc", 3, 2, NOW, {"msg_1": NOW + 60}, {"msg_1": 1}, failed_in_row=2)
    assert BatchState.from_json(state.to_json()) == state
    assert BatchState.from_json(None) == BatchState()
    assert BatchState.from_json({"batch": "x", "attempt": 1, "launched_at": 5.0}).batch == "x"  # an older cursor
