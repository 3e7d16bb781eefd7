"""Runs with no process behind them: found, failed in Dagster, so their events are retried.

A process killed with SIGKILL (the OOM killer, ``kill -9``, a host lost) cannot tell
Dagster its run ended, so the run stays STARTED, and the webhook sensor, which launches
one partial sync at a time, would wait for it forever while events pile up. Its apply
never committed, so its events are still pending: failing the run is all it takes.

How a run's process is known: runs started in process by this package
(``sync-pipeline sync``, ``webhooks process``) carry a :data:`PROCESS_TAG` naming the
host, the pid and the process's start time (so a reused pid is not taken for the run's).
On that host, a run whose process is gone is failed. Runs without the tag (launched by
the daemon's run launcher) are left to Dagster's run monitoring (``run_monitoring`` in
deploy/dagster.yaml): it fails a run that never started within its start timeout, but the
default launcher cannot see a worker die mid-run, so such a run is failed only when it
outlives ``max_runtime_seconds``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

logger = logging.getLogger(__name__)

PROCESS_TAG = "sync_pipeline/process"
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # The command name (field 2) may hold spaces and parentheses: count from the last ')'.
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass(frozen=True)
class RunProcess:
    host: str
    pid: int
    started: str

    def tag(self) -> str:
        return f"{self.host}|{self.pid}|{self.started}"

    @classmethod
    def parse(cls, tag: str) -> RunProcess | None:
        host, _, rest = tag.rpartition("|")
        host, _, pid = host.rpartition("|")
        if not host or not pid.isdigit():
            return None
        return cls(host, int(pid), rest)

    @classmethod
    def current(cls) -> RunProcess:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _start_time(pid) or "")

    def is_gone(self) -> bool | None:
        """True when this process no longer runs, False when it does, None when this host cannot tell."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # it exists, under another user
        if self.started and _start_time(self.pid) not in (None, self.started):
            return True  # the pid was reused by a newer process
        return False


def process_tags() -> dict[str, str]:
    """The tags an in-process run carries so that its death can be noticed."""
    return {PROCESS_TAG: RunProcess.current().tag()}


def orphaned(runs: Iterable[DagsterRun]) -> list[DagsterRun]:
    """The runs among ``runs`` whose process is known to be gone."""
    found = []
    for run in runs:
        process = RunProcess.parse(run.tags.get(PROCESS_TAG, ""))
        if process is not None and process.is_gone():
            found.append(run)
    return found


def fail_orphaned_runs(instance: DagsterInstance, job_name: str) -> list[str]:
    """Mark failed every in-flight run of ``job_name`` whose process is gone; returns their ids."""
    runs = instance.get_runs(filters=RunsFilter(job_name=job_name, statuses=IN_FLIGHT))
    failed = []
    for run in orphaned(runs):
        process = RunProcess.parse(run.tags[PROCESS_TAG])
        message = (
            f"the process running this run ({process.host} pid {process.pid}) is gone without ending it "
            "(killed?): marked failed so that its webhook events, still pending, are retried"
        )
        instance.report_run_failed(run, message=message)
        logger.warning("run %s: %s", run.run_id, message)
        failed.append(run.run_id)
    return failed
