"""Timing phases and sampling the process's memory while they run."""

from __future__ import annotations

import gc
import os
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import psutil

MB = 1024 * 1024


class RssSampler:
    """Samples this process's memory every ``interval`` seconds on a daemon thread.

    Two figures: the resident set size (RSS: anonymous memory plus mapped file pages
    that are resident), and its anonymous part (RSS minus file-backed and shared pages:
    what the process cannot give back without swapping). ``peak()`` gives the highest of
    each since ``reset()``, summed over this process and its helper processes (the second
    scan process), but not the emulator's; the sampler reads /proc every 20 ms.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self._process = psutil.Process()
        self.excluded_pids: set[int] = set()  # children that are not the sync (the emulator's process)
        self._verdicts: dict[int, bool] = {}
        self._interval = interval
        self._lock = threading.Lock()
        self._peak = self.sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _counts(self, process: psutil.Process) -> bool:
        """Whether a child is part of the sync: a Python worker of ours, not Clerk's emulator,
        multiprocessing's resource tracker or a database server."""
        if process.pid in self.excluded_pids:
            return False
        if process.pid not in self._verdicts:
            try:
                command = " ".join(process.cmdline())
            except psutil.Error:
                return False
            self._verdicts[process.pid] = (
                "python" in command and "resource_tracker" not in command
            )
        return self._verdicts[process.pid]

    def sample(self) -> tuple[int, int]:
        """This process's memory plus its helper processes' (the second scan process)."""
        rss = anon = 0
        try:
            children = [c for c in self._process.children(recursive=True) if self._counts(c)]
        except psutil.Error:
            children = []
        for process in (self._process, *children):
            try:
                info = process.memory_info()
            except psutil.Error:  # it ended meanwhile
                continue
            rss += info.rss
            anon += info.rss - getattr(info, "shared", 0)
        return rss, anon

    def _take(self) -> tuple[int, int]:
        rss, anon = self.sample()
        with self._lock:
            self._peak = (max(self._peak[0], rss), max(self._peak[1], anon))
            return self._peak

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._take()

    def reset(self) -> None:
        with self._lock:
            self._peak = self.sample()

    def peak(self) -> tuple[int, int]:
        return self._take()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


def max_rss_ever() -> int:
    """The kernel's high-water mark of this process's RSS (bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    rows: int = 0
    requests: int | None = None
    responses_429: int | None = None
    peak_rss_mb: float = 0.0
    peak_anon_mb: float = 0.0  # the anonymous part of RSS (no mapped file pages)
    cpu_seconds: float = 0.0  # user+system CPU during the phase, this process's and its scan helper's
    floor_name: str | None = None
    floor_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.rows and self.seconds > 0 else None

    @property
    def ratio(self) -> float | None:
        return self.seconds / self.floor_seconds if self.floor_seconds else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows_per_second"] = round(self.rows_per_second, 1) if self.rows_per_second else None
        out["ratio_to_floor"] = round(self.ratio, 3) if self.ratio else None
        out["seconds"] = round(self.seconds, 3)
        out["cpu_seconds"] = round(self.cpu_seconds, 3)
        out["peak_rss_mb"] = round(self.peak_rss_mb, 1)
        out["peak_anon_mb"] = round(self.peak_anon_mb, 1)
        return out


@dataclass
class Case:
    name: str
    description: str
    phases: list[Phase] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    load_average: tuple[float, ...] = ()  # the machine's, when the case ended: others share the CPU

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    @property
    def peak_rss_mb(self) -> float:
        return max((p.peak_rss_mb for p in self.phases), default=0.0)

    @property
    def peak_anon_mb(self) -> float:
        return max((p.peak_anon_mb for p in self.phases), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "seconds": round(self.seconds, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "peak_anon_mb": round(self.peak_anon_mb, 1),
            "load_average": [round(x, 2) for x in self.load_average],
            "phases": [p.as_dict() for p in self.phases],
            "facts": self.facts,
        }


class Recorder:
    """``with recorder.phase(case, "fetch") as phase: ...; phase.rows = n``."""

    def __init__(self) -> None:
        self.sampler = RssSampler()
        self._process = psutil.Process()

    def _cpu(self) -> float:
        # Children's times count once they have ended and been waited for: the second scan
        # process, within its phase (the emulator's only when it stops, after every case).
        times = self._process.cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    @contextmanager
    def phase(self, case: Case, name: str) -> Iterator[Phase]:
        gc.collect()  # start every phase from the same footing
        phase = Phase(name)
        self.sampler.reset()
        cpu = self._cpu()
        started = time.perf_counter()
        try:
            yield phase
        finally:
            phase.seconds = time.perf_counter() - started
            phase.cpu_seconds = self._cpu() - cpu
            rss, anon = self.sampler.peak()
            phase.peak_rss_mb, phase.peak_anon_mb = rss / MB, anon / MB
            case.load_average = os.getloadavg()
            case.phases.append(phase)

    def close(self) -> None:
        self.sampler.stop()
