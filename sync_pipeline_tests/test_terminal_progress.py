"""The terminal's progress reporter, driven as the Clerk client drives it."""

from __future__ import annotations

import io
import re

from rich.console import Console

from sync_pipeline import progress
from sync_pipeline.terminal_progress import TerminalProgress, showing_progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_it_prints_a_plain_line_every_interval_with_an_estimate() -> None:
    out, clock = io.StringIO(), Clock()
    reporter = TerminalProgress(console=Console(file=out), interval=5.0, clock=clock)
    assert not reporter.is_live

    reporter.list_started("users", 1000)
    for second in range(11):  # a page of 50 rows a second: 550 of 1,000 after 10 s
        clock.now = 100.0 + second
        reporter.page_read("users", 50)
        if second == 7:
            reporter.rate(50.0, 3, 2.0)
    lines = out.getvalue().splitlines()
    # The first page starts the interval; then one line per interval, never one per page.
    assert lines == [
        "reading Clerk: users: 300 of 1,000 rows, 6 pages, about 12s left",
        "reading Clerk: users: 550 of 1,000 rows, 11 pages, about 8s left, 50 req/10s, 3 × 429 (waited 2s)",
    ]

    clock.now = 118.0
    reporter.list_finished("users")
    assert out.getvalue().splitlines()[-1].startswith("reading Clerk: users: 550 of 1,000 rows, 11 pages, done in 18s")


def test_a_short_read_prints_nothing_off_a_terminal() -> None:
    out, clock = io.StringIO(), Clock()
    reporter = TerminalProgress(console=Console(file=out), interval=5.0, clock=clock)
    reporter.list_started("organizations", None)
    reporter.page_read("organizations", 12)
    clock.now += 1
    reporter.list_finished("organizations")
    assert out.getvalue() == ""


def test_on_a_terminal_it_shows_each_list_with_rows_pages_rate_and_429s() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    with TerminalProgress(console=console) as reporter:
        assert reporter.is_live
        reporter.list_started("users", 1000)
        reporter.list_started("organizations", None)
        for _ in range(4):
            reporter.page_read("users", 250)
        reporter.page_read("organizations", 7)
        reporter.rate(48.0, 2, 1.5)
        reporter.list_finished("users")
        reporter.list_finished("organizations")
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    last = shown.splitlines()[-3:]
    assert any("users" in line and "1,000 / 1,000 rows, 4 page(s)" in line and "48 req/10s, 2 × 429" in line for line in last), last
    assert any("organizations" in line and "7 rows, 1 page(s)" in line for line in last), last


def test_the_cli_installs_it_for_the_command_and_removes_it_after() -> None:
    before = progress.current()
    with showing_progress(Console(file=io.StringIO())) as reporter:
        assert progress.current() is reporter
    assert progress.current() is before
