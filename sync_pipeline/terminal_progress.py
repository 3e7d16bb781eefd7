"""Progress of long reads on the user's terminal: what ``sync_pipeline.progress`` reports, shown.

On a terminal, a ``rich`` progress display: a line per list with the rows read (against
what Clerk announced), the pages, the request rate held and the 429s met, and an estimate
of the time left. When stdout is not a terminal (a CI log, ``docker logs``, a pipe), plain
lines instead, at most one every ``interval`` seconds, and one when a list that took that
long ends: a short run prints nothing. Nothing goes to Dagster's logs.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from sync_pipeline import progress

PLAIN_INTERVAL_SECONDS = 5.0


@dataclass
class ListProgress:
    """One list being read: the figures both displays show."""

    name: str
    expected_rows: int | None
    started_at: float
    rows: int = 0
    pages: int = 0
    finished: bool = False


@dataclass
class RateState:
    requests_per_10s: float = 0.0
    responses_429: int = 0
    waiting_seconds: float = 0.0

    def describe(self) -> str:
        if not self.requests_per_10s and not self.responses_429:
            return ""
        text = f"{self.requests_per_10s:.0f} req/10s"
        if self.responses_429:
            text += f", {self.responses_429} × 429"
            if self.waiting_seconds >= 1:
                text += f" (waited {self.waiting_seconds:.0f}s)"
        return text


def seconds_left(item: ListProgress, now: float) -> float | None:
    """The time the rest of a list should take at the pace so far; ``None`` when unknowable."""
    if not item.expected_rows or not item.rows:
        return None
    elapsed = now - item.started_at
    remaining = max(item.expected_rows - item.rows, 0)
    return elapsed / item.rows * remaining


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def plain_line(item: ListProgress, rate: RateState, now: float) -> str:
    """One list's progress as a line of text."""
    read = f"{item.rows:,}" + (f" of {item.expected_rows:,}" if item.expected_rows else "") + " rows"
    parts = [f"{item.name}: {read}", f"{item.pages} page{'s' if item.pages != 1 else ''}"]
    if item.finished:
        parts.append(f"done in {_duration(now - item.started_at)}")
    else:
        left = seconds_left(item, now)
        if left is not None:
            parts.append(f"about {_duration(left)} left")
    described = rate.describe()
    if described:
        parts.append(described)
    return "reading Clerk: " + ", ".join(parts)


@dataclass
class TerminalProgress:
    """A :class:`sync_pipeline.progress.ProgressReporter` for the CLI; use as a context manager."""

    console: Console = field(default_factory=Console)
    interval: float = PLAIN_INTERVAL_SECONDS
    clock: Callable[[], float] = time.monotonic
    plain_output: TextIO | None = None  # default: the console's file

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._lists: dict[str, ListProgress] = {}
        self._rate = RateState()
        self._last_plain = float("-inf")
        self._live: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    @property
    def is_live(self) -> bool:
        return self.console.is_terminal

    # The reporter protocol. -------------------------------------------------------------
    def list_started(self, name: str, expected_rows: int | None) -> None:
        with self._lock:
            if all(item.finished for item in self._lists.values()):
                self._last_plain = float("-inf")  # a new read: its first page starts the interval afresh
            self._lists[name] = ListProgress(name, expected_rows, started_at=self.clock())
            if self.is_live:
                display = self._display()
                of = f" / {expected_rows:,}" if expected_rows else ""
                self._tasks[name] = display.add_task(name, total=expected_rows, pages=0, of=of, rate=self._rate.describe())

    def page_read(self, name: str, rows: int) -> None:
        with self._lock:
            item = self._lists.get(name)
            if item is None:  # a page of a list nobody announced: show it all the same
                self.list_started(name, None)
                item = self._lists[name]
            item.rows += rows
            item.pages += 1
            if self.is_live:
                self._display().update(self._tasks[name], completed=item.rows, pages=item.pages, rate=self._rate.describe())
            else:
                self._maybe_plain()

    def rate(self, requests_per_10s: float, responses_429: int, waiting_seconds: float) -> None:
        with self._lock:
            self._rate = RateState(requests_per_10s, responses_429, waiting_seconds)
            if self.is_live and self._live is not None:
                for name, task in self._tasks.items():
                    if not self._lists[name].finished:
                        self._live.update(task, rate=self._rate.describe())

    def list_finished(self, name: str) -> None:
        with self._lock:
            item = self._lists.get(name)
            if item is None:
                return
            item.finished = True
            if self.is_live:
                task = self._tasks[name]
                self._display().update(task, completed=item.rows, total=item.rows or 1, rate=self._rate.describe())
                if all(i.finished for i in self._lists.values()):
                    self._stop_display()
            elif self.clock() - item.started_at >= self.interval:
                self._write(plain_line(item, self._rate, self.clock()))

    # The two displays. -----------------------------------------------------------------------
    def _display(self) -> Progress:
        if self._live is None:
            self._live = Progress(
                TextColumn("reading Clerk: [bold]{task.description}[/]"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}{task.fields[of]} rows, {task.fields[pages]} page(s)"),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._live.start()
        return self._live

    def _stop_display(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
            self._tasks.clear()
            self._lists = {n: i for n, i in self._lists.items() if not i.finished}

    def _maybe_plain(self) -> None:
        now = self.clock()
        if now - self._last_plain < self.interval:
            return
        if self._last_plain == float("-inf"):
            # The first page starts the clock: a list that ends within the interval prints nothing.
            self._last_plain = now
            return
        self._last_plain = now
        for item in self._lists.values():
            if not item.finished:
                self._write(plain_line(item, self._rate, now))

    def _write(self, line: str) -> None:
        output = self.plain_output or self.console.file
        print(line, file=output, flush=True)

    def close(self) -> None:
        with self._lock:
            self._stop_display()

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@contextmanager
def showing_progress(console: Console | None = None) -> Iterator[TerminalProgress]:
    """Long reads report to the terminal (stdout) until the block ends.

    The display writes to a duplicate of stdout's file descriptor taken now: while a step
    runs, Dagster points fd 1 at a pipe that copies it into the step's captured logs
    (so the terminal would look like none, and progress would land in Dagster's logs).
    """
    with ExitStack() as stack:
        if console is None:
            console = Console(file=stack.enter_context(_stdout_as_it_is_now()))
        reporter = stack.enter_context(TerminalProgress(console=console))
        stack.enter_context(progress.reporting(reporter))
        yield reporter


@contextmanager
def _stdout_as_it_is_now() -> Iterator[TextIO]:
    try:
        descriptor = os.dup(sys.stdout.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):  # stdout replaced in process (pytest's capsys)
        yield sys.stdout
        return
    stream = os.fdopen(descriptor, "w", buffering=1, encoding=sys.stdout.encoding or "utf-8", errors="replace")
    try:
        yield stream
    finally:
        stream.close()
