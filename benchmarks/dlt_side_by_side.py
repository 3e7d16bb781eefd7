"""dlt beside ``sync-pipeline sync``, in the same run, against the same stand-in and data (``--dlt``).

    .venv/bin/pip install -e '.[bench-dlt]'
    .venv/bin/python -m benchmarks.run --users 100000 --dlt

dlt's REST API source as PostHog configures its Clerk source (:mod:`benchmarks.dlt_clerk_source`:
100 a page by offset, full replace) loads the three lists into the benchmark's PostgreSQL,
in a schema of its own (dropped after), in a child process measured as our syncs are: wall
time from spawn to exit, the CPU and peak RSS of every process, the Postgres backends' CPU.

The stand-in serves only what was recorded, and dlt asks for other pages than our sync
(100 a page by offset, against 500 a page by cursor window): so after our syncs it records
once more, with dlt's own requests (the lists walked, no pipeline), then serves dlt's
pages like ours: from memory, at the same latency, under the same rate limit (429 with
``Retry-After`` past it). A page it did not record fails the comparison.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

NOT_INSTALLED = "benchmarks: --dlt needs dlt beside this Python: pip install -e '.[bench-dlt]'"
TABLES = ("users", "organizations", "organization_memberships")  # dlt_clerk_source.ENDPOINTS, without importing dlt


def dlt_installed() -> bool:
    return importlib.util.find_spec("dlt") is not None


VARIANTS = {
    "dlt": ("dlt (PostHog's Clerk source)",
            "the three lists read in parallel, nested values as JSON columns (max_table_nesting=0)"),
    "dlt_defaults": ("dlt (PostHog's Clerk source, dlt's defaults)",
                     "the lists one after another in one pipeline, nested lists into child tables (dlt's defaults)"),
}


def _child(env: dict[str, str], base_url: str, database_url: str, dataset: str, *, record: bool = False,
           dlt_defaults: bool = False) -> tuple[subprocess.Popen, Path]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    command = [sys.executable, "-m", "benchmarks.dlt_clerk_source", "--base-url", base_url,
               "--database-url", database_url.replace("postgresql+psycopg://", "postgresql://"),
               "--dataset", dataset, "--out", str(out)]
    if record:
        command.append("--record")
    if dlt_defaults:
        command.append("--dlt-defaults")
    from benchmarks.sync_command import REPOSITORY

    process = subprocess.Popen(command, cwd=REPOSITORY, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, out


def _report(process: subprocess.Popen, out: Path, what: str) -> dict[str, Any]:
    _, stderr = process.communicate()
    try:
        if process.returncode != 0:
            raise ValueError
        return json.loads(out.read_text())
    except (OSError, ValueError):
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {process.returncode}"
        raise RuntimeError(f"dlt's {what} failed: {last}") from None
    finally:
        out.unlink(missing_ok=True)


def run(clerk: Any, env: dict[str, str], database_url: str, dataset: str, engine: Any, rate_per_10s: int,
        log: Callable[[str], None], variants: tuple[str, ...] = ("dlt",)) -> dict[str, dict[str, Any]]:
    """Record dlt's pages once, then one measured run per variant (of :data:`VARIANTS`), each
    into an empty dataset; the dataset is dropped whatever happens."""
    log("dlt: record the pages dlt asks for (its lists walked through the emulator, deep offsets allowed)")
    clerk.record(deep_offsets=True)
    recording_started = time.perf_counter()
    try:
        recorded = _report(*_child(env, clerk.base_url, database_url, dataset, record=True), "record pass")
    finally:
        frozen = clerk.freeze()
    record_seconds = time.perf_counter() - recording_started
    log(f"dlt: {sum(recorded['rows_read'].values()):,} rows recorded in {record_seconds:.1f} s")
    out = {}
    for variant in variants:
        log(f"{variant}: {VARIANTS[variant][0]}, {VARIANTS[variant][1]}")
        out[variant] = _measured(clerk, env, database_url, dataset, engine, rate_per_10s, variant)
        out[variant].update(record_seconds=round(record_seconds, 2), pages_recorded_in_all=frozen["pages"])
        log(f"{variant}: {out[variant]['wall_seconds']:.1f} s, loaded {sum(out[variant]['rows_loaded'].values()):,} rows")
    return out


def _measured(clerk: Any, env: dict[str, str], database_url: str, dataset: str, engine: Any, rate_per_10s: int,
              variant: str) -> dict[str, Any]:
    import sqlalchemy as sa

    from benchmarks.sync_command import Sampler

    try:
        clerk.reset_stats()
        started = time.perf_counter()
        process, out = _child(env, clerk.base_url, database_url, dataset, dlt_defaults=variant == "dlt_defaults")
        sampler = Sampler({"dlt": process.pid, "clerk stand-in": clerk.pid}, database_url, dataset)
        try:
            report = _report(process, out, "run")
        finally:
            wall = time.perf_counter() - started
            sampled = sampler.close()
        server = clerk.stats()
        if server["misses"]:
            raise RuntimeError(f"dlt asked for {server['misses']} pages that were not recorded, e.g. {server['missed'][:3]}")
        with engine.connect() as connection:
            tables = connection.execute(sa.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :schema "
                "AND table_name NOT LIKE '\\_dlt\\_%' ORDER BY table_name"), {"schema": dataset}).scalars().all()
            counts = {table: connection.execute(sa.text(f'SELECT count(*) FROM "{dataset}"."{table}"')).scalar_one()
                      for table in tables}
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{dataset}" CASCADE'))
    pages = server["requests"] - server["responses_429"]
    label, choices = VARIANTS[variant]
    return {
        "label": label,
        "dlt_version": report.get("dlt_version"),
        "configuration": "rest_api source, 100 a page by offset until a short page, write_disposition replace, "
                         f"primary key id, {choices}, dlt's postgres destination (insert_values)",
        "stand_in": "pre-rendered: dlt's own URLs recorded after our syncs, served from memory at the same latency and rate",
        "wall_seconds": round(wall, 3),
        "imports_seconds": round(report["imports_seconds"], 3),
        "phases_seconds": {k: round(v, 3) for k, v in report["phases_seconds"].items()},
        "rows_loaded": {table: counts[table] for table in TABLES if table in counts},
        "child_table_rows": {table: n for table, n in counts.items() if table not in TABLES},
        "rows_normalized": report["rows_normalized"],
        "requests": server["requests"],
        "responses_429": server["responses_429"],
        "pages": pages,
        "rate_floor_seconds": round(pages / (rate_per_10s / 10.0), 3),
        "memory_mb": {k: round(v) for k, v in sampled["rss_mb"].items()},
        "cpu_seconds": {k: round(v, 2) for k, v in sampled["cpu_seconds"].items()},
        "postgres_cpu_seconds": round(sampled["postgres_cpu_seconds"], 2),
        "max_rss_mb_reported": round(report["max_rss_mb_self"]),
    }


TARGET_TIMES_SLOWER = 6.0  # issue 13: we are at least 6× faster than dlt at 100,000 users


def render_rows(results: dict[str, Any]) -> list[str]:
    """The table's dlt rows: its phases, then its wall time beside our first sync's and the floor."""
    lines: list[str] = []
    for variant, side in results.get("dlt", {}).items():
        floor = results["floors"]["floor_seconds"]
        first = results["runs"].get("first")
        lines.append(f"| {variant} | start-up: imports | {side['imports_seconds']:.2f} | | | |")
        lines += [f"| {variant} | {name} | {seconds:.2f} | | | |" for name, seconds in side["phases_seconds"].items()]
        memory = ", ".join(f"{k} {v:,}" for k, v in side["memory_mb"].items())
        ours = ""
        if first:
            times = side["wall_seconds"] / first["wall_seconds"]
            verdict = "held" if times >= TARGET_TIMES_SLOWER else "MISSED"
            ours = f"; {times:.2f}× our first sync's {first['wall_seconds']:.2f} s (target ≥ {TARGET_TIMES_SLOWER:g}×: {verdict})"
        rows = sum(side["rows_loaded"].values())
        child_rows = sum(side["child_table_rows"].values())
        children = f" + {child_rows:,} in child tables" if child_rows else ""
        lines.append(
            f"| **{side['label']}** | **process wall, spawn → exit** ({rows:,} rows loaded{children}, {side['requests']:,} "
            f"requests, {side['responses_429']} 429s; its own rate floor {side['rate_floor_seconds']:.2f} s for "
            f"{side['pages']:,} pages) | **{side['wall_seconds']:.2f}** | {floor:.2f} | "
            f"**{side['wall_seconds'] / floor:.2f}**{ours} | {memory} |")
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in side["cpu_seconds"].items())
        lines.append(f"| {variant} | CPU seconds: {cpu}; Postgres backends {side['postgres_cpu_seconds']:.1f} | | | | |")
    return lines


def render_note(results: dict[str, Any]) -> list[str]:
    lines = []
    for side in results.get("dlt", {}).values():
        loaded = ", ".join(f"{k} {v:,}" for k, v in {**side["rows_loaded"], **side["child_table_rows"]}.items())
        lines += ["", f"{side['label']}: dlt {side['dlt_version']}, {side['configuration']}. Rows loaded: {loaded}. "
                      f"Clerk stand-in: {side['stand_in']} (recorded in {side['record_seconds']:.1f} s, untimed)."]
    return lines
