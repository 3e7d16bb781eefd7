"""Faults the emulator can inject into its answers, to test how a client copes.

Tests and benchmarks arm them from Python::

    server.faults.add(FaultKind.SERVER_ERROR, path_prefix="/v1/users", times=2, status=503)
    server.faults.add(FaultKind.RATE_LIMITED, retry_after_s=2, probability=0.1, seed=7, times=None)
    server.faults.clear()
    server.faults.add(FaultKind.CALLBACK, path_prefix="/v1/users", skip=2, action=lambda: store.delete_user(uid))

A fault matches requests whose path starts with ``path_prefix``; it lets the first
``skip`` matching requests through, then fires on each later one with ``probability``
(drawn from its own seeded generator, so runs repeat), ``times`` times in all (``None``:
until removed). When several faults match, the first added fires.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class FaultKind(str, Enum):
    SERVER_ERROR = "server_error"  # a 5xx (``status``) with a Clerk error body
    RATE_LIMITED = "rate_limited"  # a 429 with ``Retry-After: retry_after_s``
    SLOW = "slow"  # the real answer, but only after ``delay_s`` (make it longer than the client's timeout)
    DROPPED_CONNECTION = "dropped_connection"  # headers promise the whole body, half is sent, the connection closes
    TRUNCATED_BODY = "truncated_body"  # a 200 whose JSON stops halfway (Content-Length matches what is sent)
    NON_JSON = "non_json"  # an HTML page (``status``, 200 by default), as a proxy in the way might send
    UNAUTHORIZED = "unauthorized"  # a 401, as if the secret key had been revoked
    SHORT_PAGE = "short_page"  # a list page missing ``missing_rows`` rows, total_count unchanged (lists only)
    CALLBACK = "callback"  # run ``action()`` (change the data, revoke the key...), then answer as usual


@dataclass
class Fault:
    kind: FaultKind
    path_prefix: str = "/v1/"
    times: int | None = 1
    probability: float = 1.0
    skip: int = 0
    seed: int = 0
    status: int | None = None  # SERVER_ERROR: default 500; NON_JSON: default 200
    retry_after_s: int = 1
    delay_s: float = 30.0
    missing_rows: int = 1
    action: Callable[[], object] | None = None  # CALLBACK: what to do before answering
    fired: int = 0  # how many requests it has hit so far
    _seen: int = field(default=0, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        if self.kind is FaultKind.CALLBACK and self.action is None:
            raise ValueError("a CALLBACK fault needs an action")
        self._random = random.Random(self.seed)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def _fires_on(self, path: str) -> bool:
        if self.exhausted or not path.startswith(self.path_prefix):
            return False
        self._seen += 1
        if self._seen <= self.skip:
            return False
        if self.probability < 1.0 and self._random.random() >= self.probability:
            return False
        self.fired += 1
        return True


class FaultInjector:
    """The armed faults of one emulator; safe to use from the test thread while it serves."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.fired: Counter[FaultKind] = Counter()  # all faults ever fired, by kind

    def add(
        self,
        kind: FaultKind | str,
        *,
        path_prefix: str = "/v1/",
        times: int | None = 1,
        probability: float = 1.0,
        skip: int = 0,
        seed: int = 0,
        status: int | None = None,
        retry_after_s: int = 1,
        delay_s: float = 30.0,
        missing_rows: int = 1,
        action: Callable[[], object] | None = None,
    ) -> Fault:
        """Arm a fault; keep the returned object to watch ``fired`` or to :meth:`remove` it."""
        fault = Fault(
            kind=FaultKind(kind), path_prefix=path_prefix, times=times, probability=probability, skip=skip,
            seed=seed, status=status, retry_after_s=retry_after_s, delay_s=delay_s, missing_rows=missing_rows,
            action=action,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults = [armed for armed in self._faults if armed is not fault]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def armed(self) -> list[Fault]:
        with self._lock:
            return [fault for fault in self._faults if not fault.exhausted]

    def take(self, path: str) -> Fault | None:
        """The fault to inject into this request, if any (it counts as fired)."""
        with self._lock:
            for fault in self._faults:
                if fault._fires_on(path):
                    self.fired[fault.kind] += 1
                    return fault
            return None
