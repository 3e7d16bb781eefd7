"""Progress of long work, reported by the code doing it and shown by whoever listens.

The Clerk client (and any other long step) calls :func:`current` and reports to it; by
default nobody listens (:class:`NoProgress`), so Dagster's logs get nothing extra. The CLI
installs a reporter for the length of a command with :func:`reporting`.

A module-level reporter, not a context variable: ``execute_in_process`` runs the steps in
the CLI's own process, and the client runs its requests on an event loop in a thread it
starts, where a context variable set by the CLI would not always be visible.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Protocol


class ProgressReporter(Protocol):
    """What long work tells. ``name`` is a list's name (``users``, ``organizations``, …)."""

    def list_started(self, name: str, expected_rows: int | None) -> None: ...

    def page_read(self, name: str, rows: int) -> None: ...

    def rate(self, requests_per_10s: float, responses_429: int, waiting_seconds: float) -> None: ...

    def list_finished(self, name: str) -> None: ...


class NoProgress:
    """The default: nobody listens."""

    def list_started(self, name: str, expected_rows: int | None) -> None:
        pass

    def page_read(self, name: str, rows: int) -> None:
        pass

    def rate(self, requests_per_10s: float, responses_429: int, waiting_seconds: float) -> None:
        pass

    def list_finished(self, name: str) -> None:
        pass


_lock = threading.Lock()
_current: ProgressReporter = NoProgress()


def current() -> ProgressReporter:
    return _current


@contextlib.contextmanager
def reporting(reporter: ProgressReporter) -> Iterator[ProgressReporter]:
    """Send progress to ``reporter`` until the block ends."""
    global _current
    with _lock:
        previous, _current = _current, reporter
    try:
        yield reporter
    finally:
        with _lock:
            _current = previous
