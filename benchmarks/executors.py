"""What a run launched the way the daemon launches it costs, per Dagster executor.

The CLI (``sync-pipeline sync``) executes the job in its own process. A run the daemon
launches (the schedule's, or the webhook sensor's partial runs) goes through a run
worker and the job's executor: with the multiprocess executor every step is a fresh
Python process that imports Dagster and the code location again. ``dagster job
execute`` does the same (code loaded from ``sync_pipeline.definitions``, a persistent
instance in ``DAGSTER_HOME``, the job's executor), so it is what is timed here, with
the executor named in run config (``execution.config.in_process`` or
``multiprocess``) to compare both in the same run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPOSITORY = Path(__file__).resolve().parent.parent


_PIN_CLOCK = """\
import os
if os.environ.get("BENCH_PIN_SCAN_CLOCK_MS"):  # every process of the run, step processes too
    from benchmarks.prerendered import pin_scan_clock
    pin_scan_clock(int(os.environ["BENCH_PIN_SCAN_CLOCK_MS"]))
"""


def pinned_env(env: dict[str, str], pin_ms: int, directory: Path) -> dict[str, str]:
    """``env`` for a run whose every Python process pins the users scan's clock (a ``sitecustomize``)."""
    (directory / "sitecustomize.py").write_text(_PIN_CLOCK)
    path = os.pathsep.join(p for p in (str(directory), str(REPOSITORY), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "BENCH_PIN_SCAN_CLOCK_MS": str(pin_ms)}


def launch(env: dict[str, str], job: str, sync_options: dict[str, Any], *, executor: str | None,
           dagster_home: Path) -> dict[str, Any]:
    """One run through ``dagster job execute``; its wall time, its run's and steps' times."""
    from dagster import DagsterInstance

    from sync_pipeline.defs.run_config import sync_run_config

    config: dict[str, Any] = sync_run_config(sync_options)
    if executor is not None:
        config["execution"] = {"config": {executor: {}}}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle)
        config_path = handle.name
    command = [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "sync_pipeline.definitions",
               "-j", job, "-c", config_path]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPOSITORY, env={**env, "DAGSTER_HOME": str(dagster_home)},
                               capture_output=True, text=True)
    wall = time.perf_counter() - started
    os.unlink(config_path)
    if completed.returncode != 0:
        raise RuntimeError(f"dagster job execute {job} ({executor}) failed: {completed.stderr[-3000:]}")
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    try:
        with DagsterInstance.get() as instance:
            run = instance.get_runs(limit=1)[0]
            stats = instance.get_run_stats(run.run_id)
            steps = instance.get_run_step_stats(run.run_id)
            run_seconds = (stats.end_time or 0) - (stats.start_time or 0)
            step_seconds = sum((s.end_time or 0) - (s.start_time or 0) for s in steps)
            return {"wall_seconds": wall, "run_seconds": run_seconds, "steps": len(steps),
                    "step_seconds_sum": step_seconds, "status": str(run.status)}
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def compare(env: dict[str, str], job: str, sync_options: dict[str, Any], executors: tuple[str | None, ...],
            repeats: int) -> dict[str, Any]:
    """``repeats`` runs per executor, interleaved (so the machine's load falls on both alike); medians."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as home:
        Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        samples: dict[str, list[dict[str, Any]]] = {str(e): [] for e in executors}
        for _ in range(repeats):
            for executor in executors:
                samples[str(executor)].append(launch(env, job, sync_options, executor=executor, dagster_home=Path(home)))
        for executor, runs in samples.items():
            out[executor] = {
                "runs": len(runs),
                "wall_seconds_median": round(statistics.median(r["wall_seconds"] for r in runs), 2),
                "run_seconds_median": round(statistics.median(r["run_seconds"] for r in runs), 2),
                "step_seconds_sum_median": round(statistics.median(r["step_seconds_sum"] for r in runs), 2),
                "steps": runs[0]["steps"],
                "wall_seconds": [round(r["wall_seconds"], 2) for r in runs],
                "run_seconds": [round(r["run_seconds"], 2) for r in runs],
            }
    return out
