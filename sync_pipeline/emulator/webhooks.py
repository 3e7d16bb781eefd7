"""Clerk's webhooks as Svix delivers them: signed POSTs of every store event to a URL.

A :class:`WebhookDispatcher` subscribes to a :class:`ClerkStore`; each event the store
emits becomes a *message*: the envelope serialised once (compact JSON, Unicode kept, as
Clerk's) and a message id ``msg_`` + 27 base62 characters (a KSUID, like Svix's). Each
*delivery* of a message is a ``POST`` of those exact bytes with the headers

- ``svix-id``: the message id, the same on every retry and duplicate;
- ``svix-timestamp``: Unix seconds at the time of that attempt;
- ``svix-signature``: ``v1,<base64>``, from ``svix.webhooks.Webhook(secret).sign``;
- ``content-type: application/json``.

Like Svix, it delivers at least once and in best-effort order, and can be made worse on
purpose (decided by a seeded ``random.Random``, so runs repeat):

- ``drop_rate``: the probability a message is never delivered at all;
- ``duplicate_rate``: the probability a message is delivered once more, and then once
  more again with that probability, up to ``max_copies`` deliveries in all;
- ``reorder_window``: messages are grouped in windows of k consecutive messages (by
  arrival) and each window's deliveries, duplicates included, are shuffled;
- ``retry_delays``: an answer other than 2xx (a 3xx included, as at Svix), a timeout or
  a connection error is retried after each of these delays in turn, then given up
  (``failed``). Svix's own schedule is :data:`SVIX_RETRY_SCHEDULE_S`; the default here is
  short. A retry waits without holding up other messages, so it may be overtaken.

Two ways to run it:

- manual (the default): events queue up; :meth:`WebhookDispatcher.flush` sends all that
  is queued, synchronously, retries included; deterministic for tests;
- background: :meth:`WebhookDispatcher.start` runs a daemon thread that sends as events
  arrive (with a reorder window, it waits up to ``reorder_linger_s`` for a window to fill).

:attr:`WebhookDispatcher.stats` counts what happened. :meth:`WebhookDispatcher.close`
stops it. The secret is never logged nor shown in a repr.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
from svix.webhooks import Webhook

from sync_pipeline.emulator.ids import BASE62_ALPHABET
from sync_pipeline.emulator.objects import to_json

if TYPE_CHECKING:
    from sync_pipeline.emulator.store import ClerkStore

logger = logging.getLogger(__name__)

# Svix's retry schedule after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
SVIX_RETRY_SCHEDULE_S: tuple[float, ...] = (5, 300, 1_800, 7_200, 18_000, 36_000, 36_000)
DEFAULT_RETRY_DELAYS_S: tuple[float, ...] = (0.05, 0.2, 0.5)
DEFAULT_TIMEOUT_S = 15.0  # Svix gives an endpoint about 15 s to answer
DEFAULT_MAX_COPIES = 3
DEFAULT_REORDER_LINGER_S = 0.1
_KSUID_EPOCH_S = 1_400_000_000
_MESSAGE_ID_LENGTH = 27


def new_message_id() -> str:
    """``msg_`` and a KSUID in base62: 4 bytes of seconds since 2014-05-13, 16 random bytes."""
    value = int.from_bytes(
        (max(int(time.time()) - _KSUID_EPOCH_S, 0)).to_bytes(4, "big") + os.urandom(16), "big"
    )
    digits = []
    for _ in range(_MESSAGE_ID_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(BASE62_ALPHABET[digit])
    return "msg_" + "".join(reversed(digits))


@dataclass(frozen=True)
class WebhookMessage:
    """One event to deliver: its id, its type and the exact text that is sent and signed."""

    id: str
    event_type: str
    body: str
    sequence: int  # arrival order, from 0
    copies: int  # deliveries planned: 0 when dropped, more than 1 when duplicated


@dataclass
class _Delivery:
    message: WebhookMessage
    attempts: int = 0


@dataclass
class WebhookStats:
    """What a dispatcher has done. Counts are of deliveries (duplicates each count) unless noted.

    ``messages``: events received. ``dropped``: messages never delivered on purpose.
    ``duplicates``: extra deliveries planned beyond a message's first. ``sent``: deliveries
    answered 2xx. ``failed``: deliveries given up after the last retry. ``retried``: retry
    attempts made. ``attempts``: every POST tried. ``by_status``: attempts by HTTP status
    (connection errors and timeouts are in ``connection_errors`` instead). ``abandoned``:
    deliveries still pending when the dispatcher was closed.
    """

    messages: int = 0
    dropped: int = 0
    duplicates: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    attempts: int = 0
    connection_errors: int = 0
    abandoned: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)

    def record_status(self, status: int) -> None:
        with self._lock:
            self.attempts += 1
            self.by_status[status] += 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "messages": self.messages, "dropped": self.dropped, "duplicates": self.duplicates,
                "sent": self.sent, "failed": self.failed, "retried": self.retried, "attempts": self.attempts,
                "connection_errors": self.connection_errors, "abandoned": self.abandoned,
                "by_status": dict(self.by_status),
            }


class WebhookDispatcher:
    """Delivers a store's events to ``url`` as Svix-signed webhooks.

    ::

        dispatcher = WebhookDispatcher("http://127.0.0.1:9000/webhooks", "whsec_...", store=store,
                                       duplicate_rate=0.2, reorder_window=5, seed=1)
        store.create_user(email_addresses=["a@example.com"])
        dispatcher.flush()            # manual mode: send what is queued, now
        dispatcher.stats.sent

    Parameters: ``url`` receives the POSTs; ``secret`` (``whsec_`` + base64) signs them;
    ``store``, if given, is subscribed to (else feed events with :meth:`submit`);
    ``duplicate_rate``, ``drop_rate``, ``max_copies``, ``reorder_window`` and
    ``retry_delays`` (seconds) as in the module docstring; ``seed`` makes those choices
    repeatable (None: random); ``timeout`` (seconds) for each POST; ``reorder_linger_s``:
    in background mode, how long a partly filled reorder window waits for more messages;
    ``background=True`` starts the sending thread at once (same as calling :meth:`start`).
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        store: ClerkStore | None = None,
        duplicate_rate: float = 0.0,
        drop_rate: float = 0.0,
        max_copies: int = DEFAULT_MAX_COPIES,
        reorder_window: int = 1,
        reorder_linger_s: float = DEFAULT_REORDER_LINGER_S,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS_S,
        timeout: float = DEFAULT_TIMEOUT_S,
        seed: int | None = None,
        background: bool = False,
    ) -> None:
        for name, rate in (("duplicate_rate", duplicate_rate), ("drop_rate", drop_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        if max_copies < 1:
            raise ValueError("max_copies must be at least 1")
        if reorder_window < 0:
            raise ValueError("reorder_window must be 0 or more (0 and 1: no reordering)")
        if any(delay < 0 for delay in retry_delays):
            raise ValueError("retry_delays must not be negative")
        if not secret.startswith("whsec_"):
            raise ValueError("the webhook secret must start with whsec_")
        if not url.startswith(("http://", "https://")):
            raise ValueError("the webhook url must be http:// or https://")
        self._signer = Webhook(secret)  # raises on a secret that is not base64; keeps no copy here
        self._url = url
        self.duplicate_rate = duplicate_rate
        self.drop_rate = drop_rate
        self.max_copies = max_copies
        self.reorder_window = reorder_window
        self.reorder_linger_s = reorder_linger_s
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self.stats = WebhookStats()
        self._random = random.Random(seed)
        self._condition = threading.Condition()
        self._incoming: deque[tuple[float, WebhookMessage]] = deque()  # (arrived at, message)
        self._retries: list[tuple[float, int, _Delivery]] = []  # heap of (due at, tiebreak, delivery)
        self._retry_serial = 0
        self._sequence = 0
        self._in_flight = 0
        self._closed = False
        self._send_lock = threading.Lock()  # one POST at a time, whoever sends
        self._client: httpx.Client | None = None  # made on the first POST
        self._thread: threading.Thread | None = None
        if store is not None:
            store.subscribe(self.submit)
        if background:
            self.start()

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        mode = "background" if self._thread is not None else "manual"
        return f"WebhookDispatcher(url={self._url!r}, {mode}, closed={self._closed})"

    # -- taking events ---------------------------------------------------------------------

    def submit(self, event: Mapping[str, Any]) -> WebhookMessage | None:
        """Queue an event envelope for delivery; return its message (None once closed).

        This is the store's listener: it runs under the store's lock, so it only queues.
        """
        body = to_json(event)
        with self._condition:
            if self._closed:
                return None
            copies = self._plan_copies()
            message = WebhookMessage(new_message_id(), str(event.get("type", "")), body, self._sequence, copies)
            self._sequence += 1
            self._incoming.append((time.monotonic(), message))
            self._condition.notify_all()
        self.stats.add(messages=1, dropped=int(copies == 0), duplicates=max(copies - 1, 0))
        return message

    def _plan_copies(self) -> int:
        if self.drop_rate and self._random.random() < self.drop_rate:
            return 0
        copies = 1
        while copies < self.max_copies and self.duplicate_rate and self._random.random() < self.duplicate_rate:
            copies += 1
        return copies

    # -- manual mode -----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued, waiting out retries, until nothing is left; True if so.

        Gives up (False) after ``timeout`` seconds if given. Works in background mode too
        (then it shares the work with the thread and waits for it).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._condition:
                batch = self._take(whole_queue=True)
                if not batch:
                    if self._idle_locked():
                        return True
                    wait = self._seconds_to_next_retry()
                    if deadline is not None:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        wait = remaining if wait is None else min(wait, remaining)
                    self._condition.wait(wait)
                    continue
                self._in_flight += len(batch)
            self._send_all(batch)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait, without sending, until nothing is queued, in flight or awaiting a retry."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not self._idle_locked():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    @property
    def pending(self) -> int:
        """Messages queued plus deliveries in flight or awaiting a retry."""
        with self._condition:
            return len(self._incoming) + len(self._retries) + self._in_flight

    # -- background mode -------------------------------------------------------------------

    def start(self) -> WebhookDispatcher:
        """Send from a daemon thread as events arrive."""
        with self._condition:
            if self._closed:
                raise RuntimeError("the dispatcher is closed")
            if self._thread is not None:
                return self
            self._thread = threading.Thread(target=self._run, name="clerk-emulator-webhooks", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    if self._closed:
                        return
                    batch = self._take(whole_queue=False)
                    if batch:
                        self._in_flight += len(batch)
                        break
                    self._condition.wait(self._seconds_to_next_work())
            try:
                self._send_all(batch)
            except Exception:  # never let the thread die on a surprise: log and go on
                logger.exception("webhooks: sending a batch failed")

    # -- closing ---------------------------------------------------------------------------

    def close(self, *, drain: bool = False, timeout: float = 5.0) -> None:
        """Stop: take no more events, stop the thread, close the HTTP client.

        With ``drain`` it first tries to deliver what is pending (up to ``timeout`` s);
        whatever is still pending then is abandoned (``stats.abandoned``).
        """
        if drain and not self._closed:
            self.flush(timeout=timeout)
        with self._condition:
            if self._closed:
                return
            self._closed = True
            abandoned = sum(message.copies for _, message in self._incoming) + len(self._retries)
            self._incoming.clear()
            self._retries.clear()
            self._condition.notify_all()
        self.stats.add(abandoned=abandoned)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout + self.timeout)
        with self._send_lock:
            if self._client is not None:
                self._client.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> WebhookDispatcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- the work, under self._condition -----------------------------------------------------

    def _idle_locked(self) -> bool:
        return not self._incoming and not self._retries and self._in_flight == 0

    def _seconds_to_next_retry(self) -> float | None:
        return max(self._retries[0][0] - time.monotonic(), 0.0) if self._retries else None

    def _seconds_to_next_work(self) -> float | None:
        """How long the thread may sleep: until the next retry or a lingering window's end."""
        waits = [w for w in (self._seconds_to_next_retry(),) if w is not None]
        if self._incoming and self.reorder_window > 1:
            waits.append(max(self._incoming[0][0] + self.reorder_linger_s - time.monotonic(), 0.0))
        return min(waits) if waits else None

    def _take(self, *, whole_queue: bool) -> list[_Delivery]:
        """The deliveries to make now: due retries, then new messages window by window.

        ``whole_queue`` takes every queued message (flush); otherwise (the thread) a
        reorder window is taken once full or once its first message has lingered enough.
        """
        now = time.monotonic()
        batch: list[_Delivery] = []
        while self._retries and self._retries[0][0] <= now:
            batch.append(heapq.heappop(self._retries)[2])
        window = max(self.reorder_window, 1)
        while self._incoming:
            first_arrived, first = self._incoming[0]
            window_end = (first.sequence // window + 1) * window  # the sequence after this window's last
            group = list(itertools.takewhile(lambda item: item[1].sequence < window_end, self._incoming))
            complete = group[-1][1].sequence == window_end - 1  # sequences are contiguous
            if not (whole_queue or complete or now - first_arrived >= self.reorder_linger_s):
                break
            for _ in group:
                self._incoming.popleft()
            deliveries = [_Delivery(message) for _, message in group for _ in range(message.copies)]
            if window > 1:
                self._random.shuffle(deliveries)
            batch.extend(deliveries)
        return batch

    # -- sending ---------------------------------------------------------------------------

    def _send_all(self, batch: list[_Delivery]) -> None:
        try:
            for done, delivery in enumerate(batch):
                with self._send_lock:
                    if self._closed:
                        self.stats.add(abandoned=len(batch) - done)
                        break
                    ok = self._attempt(delivery)
                self._settle(delivery, ok)
        finally:
            with self._condition:
                self._in_flight -= len(batch)
                self._condition.notify_all()

    def _attempt(self, delivery: _Delivery) -> bool:
        """One POST of the delivery, signed now; True on a 2xx answer."""
        message = delivery.message
        delivery.attempts += 1
        if delivery.attempts > 1:
            self.stats.add(retried=1)
        timestamp = int(time.time())
        signature = self._signer.sign(message.id, datetime.fromtimestamp(timestamp, tz=timezone.utc), message.body)
        headers = {
            "svix-id": message.id,
            "svix-timestamp": str(timestamp),
            "svix-signature": signature,
            "content-type": "application/json",
        }
        if self._client is None:
            # Redirects are not followed (a 3xx is a failure, as at Svix), so a plain-http
            # client never reaches TLS: skip building a certificate store it would not use.
            plain_http = self._url.startswith("http://")
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False, verify=not plain_http)
        try:
            response = self._client.post(self._url, content=message.body.encode("utf-8"), headers=headers)
        except httpx.HTTPError as error:
            self.stats.add(attempts=1, connection_errors=1)
            logger.info("webhooks: %s %s to %s: %s", message.event_type, message.id, self._url, type(error).__name__)
            return False
        self.stats.record_status(response.status_code)
        if 200 <= response.status_code < 300:
            return True
        logger.info("webhooks: %s %s to %s: HTTP %d", message.event_type, message.id, self._url, response.status_code)
        return False

    def _settle(self, delivery: _Delivery, ok: bool) -> None:
        if ok:
            self.stats.add(sent=1)
            return
        if delivery.attempts > len(self.retry_delays):
            self.stats.add(failed=1)
            logger.warning("webhooks: gave up on %s after %d attempts", delivery.message.id, delivery.attempts)
            return
        due = time.monotonic() + self.retry_delays[delivery.attempts - 1]
        with self._condition:
            if self._closed:
                self.stats.add(abandoned=1)
                return
            self._retry_serial += 1
            heapq.heappush(self._retries, (due, self._retry_serial, delivery))
            self._condition.notify_all()
