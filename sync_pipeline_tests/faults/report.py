"""What the fault suite did, added up over the session and printed at the end of the run.

Every test of ``sync_pipeline_tests/faults`` reports into one :class:`FaultReport` (the
session fixture ``fault_report``): the faults it injected, the inputs it tried, the
deliveries it replayed, and what it found lost or wrongly stored. ``pytest_terminal_summary``
in ``conftest.py`` prints it; the README keeps a copy of a run's figures.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class FaultReport:
    faults_injected: Counter[str] = field(default_factory=Counter)
    inputs_tried: Counter[str] = field(default_factory=Counter)
    deliveries_replayed: int = 0
    dagster_runs: int = 0
    rows_lost: int = 0
    """Rows Clerk holds that a passing case found missing from the mirror (or changed by a failed run)."""
    unsigned_events_stored: int = 0
    receiver_load: dict[str, float] = field(default_factory=dict)
    webhook_convergence: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fault(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self.faults_injected[kind] += count

    def tried(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self.inputs_tried[kind] += count

    def replayed(self, count: int) -> None:
        with self._lock:
            self.deliveries_replayed += count

    def ran(self, count: int = 1) -> None:
        with self._lock:
            self.dagster_runs += count

    def lost(self, count: int) -> None:
        with self._lock:
            self.rows_lost += count

    def unsigned_stored(self, count: int) -> None:
        with self._lock:
            self.unsigned_events_stored += count

    @property
    def empty(self) -> bool:
        return not (self.faults_injected or self.inputs_tried or self.deliveries_replayed or self.dagster_runs)

    def lines(self) -> list[str]:
        faults = sum(self.faults_injected.values())
        inputs = sum(self.inputs_tried.values())
        lines = [
            f"faults injected:        {faults}  ({_breakdown(self.faults_injected)})",
            f"inputs tried:           {inputs}  ({_breakdown(self.inputs_tried)})",
            f"deliveries replayed:    {self.deliveries_replayed}",
            f"Dagster runs:           {self.dagster_runs}",
            f"rows lost:              {self.rows_lost}",
            f"unsigned events stored: {self.unsigned_events_stored}",
        ]
        if self.receiver_load:
            load = self.receiver_load
            lines.append(
                f"receiver under load:    {load['requests']:.0f} requests in {load['seconds']:.1f} s = "
                f"{load['rps']:.0f} req/s, p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, "
                f"{load['errors']:.0f} errors; sensor drained {load['drained']:.0f} events in {load['runs']:.0f} run(s)"
            )
        if self.webhook_convergence:
            conv = self.webhook_convergence
            lines.append(
                f"webhook convergence:    {conv['deliveries']:.0f} deliveries ({conv['duplicates']:.0f} duplicates, "
                f"shuffled) of {conv['events']:.0f} events sent in {conv['send_seconds']:.1f} s "
                f"({conv['rps']:.0f} req/s), the rest drained {conv['drain_seconds']:.1f} s after the last: the mirror of one full sync"
            )
        return lines


def _breakdown(counts: Counter[str]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items())) or "none"
