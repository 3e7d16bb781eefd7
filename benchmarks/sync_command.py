"""``sync-pipeline sync`` measured from outside, against pre-rendered Clerk pages.

    .venv/bin/python -m benchmarks.run --users 100000           # first sync and no-op, ~3 min here
    .venv/bin/python -m benchmarks.run --users 100000 --profile # the same with py-spy on each sync
    .venv/bin/python -m benchmarks.run --users 100000 --dlt     # and dlt beside us (benchmarks/dlt_side_by_side.py)

Each sync is a fresh process (``python -m benchmarks.sync_command child``) that does what
the CLI does: ``runner.run_sync`` (settings check, migration, the ``full_sync_job`` in
process). The parent measures its wall time from spawn to exit, samples the RSS of every
process (the sync, its children, the Clerk stand-in) every 50 ms, and reads each Dagster
step's start and end from the run's event log. With ``--profile`` each sync runs under
``py-spy record`` a second time, and its samples are grouped into the phases of
:data:`PROFILE_PHASES`.

Clerk is :mod:`benchmarks.prerendered`: a dry run against an empty mirror records the pages
(the same URLs a first sync asks for); then the stand-in serves them from memory at a
fixed latency and Clerk's rate. The floors are measured in the same run: the rate floor
(pages ÷ the allowed rate) and a bare concurrent download of the same pages with httpx.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
PROFILE_HZ = 100
# "tuned": everything imported so far frozen out of the collector (gc.freeze) and a gen-0
# threshold of 100,000 allocations. Decoding 467 pages and keeping the rows triggers the
# cyclic collector thousands of times with Python's default (700, 10, 10); each full
# collection walks every live object. Measured here: 3.9-5.9 s to decode and keep 100k
# users' pages by default, 2.0 s tuned, 1.6-1.7 s with the collector off.
GC_MODES = ("default", "tuned")
TUNED_GC_THRESHOLD = (100_000, 50, 50)
CLIENT_SHARE = 0.95  # the client holds itself a little under the limit, so 429s do not halve its rate


# ------------------------------------------------------------------------- the sync, in a child


def _child(argv: list[str]) -> int:
    """One ``sync-pipeline sync``, as the CLI runs it; writes what it saw to ``--out``."""
    started = time.perf_counter()
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--pin-clock-ms", type=int, required=True)
    parser.add_argument("--gc", choices=GC_MODES, default="default")
    args = parser.parse_args(argv)

    from benchmarks.prerendered import pin_scan_clock

    pin_scan_clock(args.pin_clock_ms)
    from sync_pipeline.collector import no_collections_while_importing

    with no_collections_while_importing():  # as the CLI imports them (sync_pipeline.cli.main)
        import sync_pipeline.runner as runner
        from dagster import DagsterInstance
        from sync_pipeline.definitions import build_definitions, build_resources  # noqa: F401  (the import cost a sync pays)

    imported = time.perf_counter()
    instance = DagsterInstance.ephemeral()  # what the CLI uses without DAGSTER_HOME, kept so its event log can be read

    class _Kept:
        def __enter__(self) -> DagsterInstance:
            return instance

        def __exit__(self, *exc: object) -> None:
            return None

    runner._instance = _Kept  # type: ignore[assignment]
    if args.gc == "tuned":  # the experiment of --gc-experiment: what the sync would gain (see GC_MODES)
        import gc

        gc.freeze()
        gc.set_threshold(*TUNED_GC_THRESHOLD)
    from sync_pipeline.defs.run_config import SyncRunConfig

    outcome = runner.run_sync(SyncRunConfig(dry_run=args.dry_run))
    finished = time.perf_counter()
    steps = []
    for stat in instance.get_run_step_stats(outcome.run_id):
        steps.append({"step": stat.step_key, "start": stat.start_time, "end": stat.end_time,
                      "seconds": (stat.end_time or 0) - (stat.start_time or 0), "status": str(stat.status)})
    run = instance.get_run_stats(outcome.run_id)
    import resource

    from dagster import DagsterEventType

    apply_seconds = {}
    for record in instance.get_records_for_run(outcome.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records:
        materialization = record.event_log_entry.dagster_event.event_specific_data.materialization
        if "apply_seconds" in materialization.metadata:
            apply_seconds[materialization.asset_key.to_user_string()] = materialization.metadata["apply_seconds"].value

    Path(args.out).write_text(json.dumps({
        "exit_code": outcome.exit_code,
        "problem": outcome.problem,
        "summary": outcome.summary() if outcome.exit_code == 0 else outcome.problem,
        "rows_written": outcome.rows_written,
        "planned": outcome.plan.counts() if outcome.plan is not None else {},
        "imports_seconds": imported - started,
        "run_sync_seconds": finished - imported,
        "run_start": run.start_time,
        "run_end": run.end_time,
        "steps": steps,
        "apply_seconds": max(apply_seconds.values(), default=None),
        "max_rss_mb_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "max_rss_mb_children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))
    return outcome.exit_code


# ------------------------------------------------------------------------------ memory sampling


class Sampler:
    """Every 50 ms: the RSS of each process (the sync, any process it starts, the Clerk
    stand-in), their CPU time, and the CPU time of the Postgres backends running a
    statement on the benchmark's schema (found in ``pg_stat_activity``; other users of the
    same server are not counted)."""

    def __init__(self, roots: dict[str, int], database_url: str | None = None, schema: str | None = None) -> None:
        import psutil

        self._psutil = psutil
        self.roots = roots
        self.peaks: dict[str, float] = defaultdict(float)
        self.cpu: dict[tuple[str, int], float] = {}
        self.cpu_at_start: dict[tuple[str, int], float] = {}  # the stand-in's own start and recording are not this run's
        self.postgres_cpu: dict[int, float] = {}
        self._backends: set[int] = set()
        self._database_url, self._schema = database_url, schema
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        psutil = self._psutil
        connection = None
        if self._database_url and self._schema:
            import psycopg

            url = self._database_url.replace("postgresql+psycopg://", "postgresql://")
            connection = psycopg.connect(url, autocommit=True)
        try:
            while not self._stop.is_set():
                for label, pid in list(self.roots.items()):
                    try:
                        root = psutil.Process(pid)
                        processes = [(label, root)] + [(f"{label} child {p.name()}", p) for p in root.children(recursive=True)]
                        for name, process in processes:
                            self.peaks[name] = max(self.peaks[name], process.memory_info().rss / MB)
                            times = process.cpu_times()
                            self.cpu_at_start.setdefault((label, process.pid), times.user + times.system)
                            self.cpu[(label, process.pid)] = times.user + times.system
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                if connection is not None:
                    rows = connection.execute(
                        "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND position(%s in query) > 0",
                        (self._schema,),
                    ).fetchall()
                    self._backends.update(pid for (pid,) in rows)
                    for pid in list(self._backends):
                        try:
                            times = psutil.Process(pid).cpu_times()
                            self.postgres_cpu[pid] = times.user + times.system
                        except (psutil.NoSuchProcess, psutil.AccessDenied):
                            self._backends.discard(pid)
                self._stop.wait(0.05)
        finally:
            if connection is not None:
                connection.close()

    def close(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        cpu: dict[str, float] = defaultdict(float)
        for (label, pid), seconds in self.cpu.items():
            # CPU since the first sample: a process the run started was sampled within 50 ms of its start.
            cpu[label] += seconds - self.cpu_at_start[(label, pid)]
        return {"rss_mb": dict(self.peaks), "cpu_seconds": dict(cpu), "postgres_cpu_seconds": sum(self.postgres_cpu.values())}


@dataclass
class SyncRun:
    case: str
    wall_seconds: float
    report: dict[str, Any]
    memory_mb: dict[str, float]
    cpu_seconds: dict[str, float]
    postgres_cpu_seconds: float
    server: dict[str, Any]
    profile: dict[str, float] = field(default_factory=dict)
    profile_samples: int = 0


def run_sync_process(case: str, env: dict[str, str], pin_ms: int, clerk: Any, *, dry_run: bool = False,
                     profile_to: Path | None = None, gc_mode: str = "default") -> SyncRun:
    """One sync in a fresh process; what it did, and what it cost each process."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    command = [sys.executable, "-m", "benchmarks.sync_command", "child", "--out", str(out), "--pin-clock-ms", str(pin_ms)]
    if dry_run:
        command.append("--dry-run")
    command += ["--gc", gc_mode]
    if profile_to is not None:
        command = [str(_py_spy()), "record", "--nonblocking", "--gil", "-r", str(PROFILE_HZ), "-f", "raw", "-o", str(profile_to), "--subprocesses", "--", *command]
    clerk.reset_stats()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPOSITORY, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler({"sync": process.pid, "clerk stand-in": clerk.pid}, env["DATABASE_URL"], env["SYNC_SCHEMA"])
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    sampled = sampler.close()
    server = clerk.stats()
    try:
        report = json.loads(out.read_text())
    except (OSError, ValueError):
        raise RuntimeError(f"the {case} sync process failed (exit {process.returncode}): {stderr[-3000:]}") from None
    finally:
        out.unlink(missing_ok=True)
    if report["exit_code"] != 0:
        raise RuntimeError(f"the {case} sync failed: {report['problem']}")
    if server["misses"]:
        raise RuntimeError(f"the {case} sync asked for {server['misses']} pages that were not pre-rendered, e.g. {server['missed'][:3]}")
    return SyncRun(case, wall, report, sampled["rss_mb"], sampled["cpu_seconds"], sampled["postgres_cpu_seconds"], server)


# ------------------------------------------------------------------------------- the profile

def _py_spy() -> Path:
    return Path(sys.executable).with_name("py-spy")


# Phases a py-spy sample is charged to: the first rule (in this order) with a frame whose
# "function (file)" contains one of its needles. Samples matching none are "other".
PROFILE_PHASES: list[tuple[str, tuple[str, ...]]] = [
    ("imports and start-up", ("_find_and_load",)),
    ("canonical JSON and digests", ("canonical_json", "digest (sync_pipeline/model.py", "_canonical_json_column")),
    ("Arrow / frame files", ("frame_files.py", "pyarrow/", "io_managers.py")),
    ("mirror read (SQL and decode of mirror rows)", ("mirror/snapshot.py",)),
    ("mirror apply (staging COPY, audit, upsert)", ("mirror/apply.py", "mirror/staging.py", "mirror/changes.py")),
    ("other SQL (psycopg, SQLAlchemy, Alembic)", ("psycopg/", "sqlalchemy/", "alembic/")),
    ("normalization", ("clerk/normalize.py", "model.py")),
    ("HTTP + JSON decode (client)", ("httpx/", "httpcore/", "h11/", "anyio/", "clerk/call.py", "clerk/paging.py", "clerk/rate.py", "clerk/client.py", "orjson")),
    ("diff (plan)", ("diff/",)),
    ("Dagster machinery (steps, events, IO manager)", ("dagster/",)),
]


def classify_profile(raw_path: Path) -> tuple[dict[str, float], int]:
    """py-spy's raw (collapsed) stacks → the share of samples per phase, and the sample count."""
    counts: dict[str, int] = defaultdict(int)
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        n = int(number)
        total += n
        frames = stack.split(";")
        counts[_phase_of(frames)] += n
    return ({name: count / total for name, count in counts.items()} if total else {}), total


def _phase_of(frames: list[str]) -> str:
    for name, needles in PROFILE_PHASES:
        for frame in frames:
            if any(needle in frame for needle in needles):
                return name
    return "other"


# ---------------------------------------------------------------------------------- the run


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--orgs", type=int, default=None, help="default: users / 10")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=1000, help="requests per 10 s the stand-in allows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database-url", default=None,
                        help="default: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the embedded Postgres")
    parser.add_argument("--profile", action="store_true", help="run each sync once more under py-spy and group its samples")
    parser.add_argument("--executors", action="store_true",
                        help="also time the jobs as the daemon launches them (dagster job execute), in_process against multiprocess")
    parser.add_argument("--gc-experiment", action="store_true",
                        help="also run first and no-op with the collector tuned in the sync process (interleaved with the default)")
    parser.add_argument("--dlt", action="store_true",
                        help="also run dlt's REST API source as PostHog configures it, against the same stand-in "
                             "(benchmarks/dlt_side_by_side.py; pip install -e '.[bench-dlt]')")
    parser.add_argument("--dlt-defaults", action="store_true",
                        help="also run it with dlt's defaults where PostHog's configuration says nothing "
                             "(lists one after another, nested lists into child tables)")
    parser.add_argument("--partial-repeats", type=int, default=3)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--keep-schema", action="store_true", help="leave the mirror the no-op synced, to look at in psql")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    args.orgs = args.orgs if args.orgs is not None else max(1, args.users // 10)
    return args


def log(args: argparse.Namespace, message: str) -> None:
    """A progress line with the time, unless ``--quiet`` (every benchmark's)."""
    if not args.quiet:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _database_url(args: argparse.Namespace) -> str:
    url = args.database_url or os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    from sync_pipeline.embedded import start_embedded_postgres, state_dir

    return start_embedded_postgres(state_dir() / "bench-pgdata")


def main(argv: list[str] | None = None) -> int:
    import sqlalchemy as sa

    from benchmarks import dlt_side_by_side, floors
    from benchmarks.prerendered import PrerenderedClerk, bare_download
    from benchmarks.run import machine
    from sync_pipeline.clerk.client import ClerkClient
    from sync_pipeline.mirror.database import create_mirror_engine, safe_url

    args = _parse(argv)
    if args.profile and not _py_spy().exists():
        print(f"benchmarks: --profile needs py-spy beside this Python ({_py_spy()}): pip install -e '.[bench]'", file=sys.stderr)
        return 2
    if (args.dlt or args.dlt_defaults) and not dlt_side_by_side.dlt_installed():
        print(dlt_side_by_side.NOT_INSTALLED, file=sys.stderr)
        return 2
    url = _database_url(args)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    pin_ms = int(time.time() * 1000)
    client_rate = max(1, int(args.rate * CLIENT_SHARE))
    env = {**os.environ, "CLERK_SECRET_KEY": "", "CLERK_API_URL": "", "DATABASE_URL": url, "SYNC_SCHEMA": schema,
           "CLERK_REQUESTS_PER_10S": str(client_rate)}
    env.pop("DAGSTER_HOME", None)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "settings": {"users": args.users, "orgs": args.orgs, "latency_ms": args.latency_ms, "rate_per_10s": args.rate,
                     "client_rate_per_10s": client_rate, "database": safe_url(url), "schema": schema},
        "runs": {},
    }
    engine = create_mirror_engine(url)
    with engine.connect() as connection:
        results["machine"]["postgres"] = connection.execute(sa.text("SHOW server_version")).scalar_one()
    log(args, f"pre-rendered Clerk: {args.users:,} users, {args.orgs:,} organizations")
    try:
        with PrerenderedClerk(args.users, args.orgs, args.latency_ms, args.rate, seed=args.seed) as clerk:
            env["CLERK_SECRET_KEY"], env["CLERK_API_URL"] = clerk.secret_key, clerk.base_url
            results["counts"] = clerk.counts
            log(args, "record: a dry run into the empty mirror renders every page a first sync asks for")
            recording = run_sync_process("record", env, pin_ms, clerk, dry_run=True)
            results["record_seconds"] = round(recording.wall_seconds, 2)
            if args.executors:
                from benchmarks import executors

                pin_dir = Path(tempfile.mkdtemp(prefix="bench-pin-"))
                launched_env = executors.pinned_env(env, pin_ms, pin_dir)
                partial_options = {"user_ids": clerk.user_ids}
            frozen = clerk.freeze()
            results["pages"] = frozen
            log(args, f"serving {frozen['pages']} pages ({frozen['bytes'] / MB:,.0f} MB) from memory; {args.latency_ms:g} ms, {args.rate}/10 s")

            concurrency = ClerkClient(secret_key=clerk.secret_key, api_url=clerk.base_url, requests_per_10s=client_rate).max_concurrency
            download = bare_download(clerk, clerk.keys(), concurrency)
            rate_floor = floors.rate_floor_seconds(frozen["pages"], args.rate)
            results["floors"] = {
                "rate_seconds": round(rate_floor, 3),
                "download_seconds": round(download.seconds, 3),
                "download_statuses": {str(k): v for k, v in download.statuses.items()},
                "download_megabytes": round(download.bytes / MB, 1),
                "concurrency": concurrency,
                "floor_seconds": round(max(rate_floor, download.seconds), 3),
                "bound": "Clerk's rate" if rate_floor >= download.seconds else "the download",
            }
            log(args, f"floors: rate {rate_floor:.2f} s, bare download {download.seconds:.2f} s → bound by {results['floors']['bound']}")

            for case in ("first", "noop"):
                log(args, f"{case}: sync-pipeline sync")
                run = run_sync_process(case, env, pin_ms, clerk)
                results["runs"][case] = _as_dict(run)
                log(args, f"{case}: {run.wall_seconds:.1f} s, written {_written(run.report)}")
                if case == "first":
                    load = floors.copy_floor(engine, schema)
                    results["floors"]["copy"] = {"seconds": {k: round(v, 3) for k, v in load.seconds.items()},
                                                 "total_seconds": round(load.total_seconds, 3), "rows": load.rows}
            if args.dlt or args.dlt_defaults:
                variants = ("dlt",) * args.dlt + ("dlt_defaults",) * args.dlt_defaults
                results["dlt"] = dlt_side_by_side.run(clerk, env, url, f"{schema}_dlt", engine, args.rate,
                                                      lambda message: log(args, message), variants)
            if args.gc_experiment:
                _gc_experiment(args, results, env, pin_ms, clerk, engine, schema)
            if args.executors:
                # The partial run's pages, recorded against the mirror it will meet (the no-op's).
                log(args, f"record: a dry partial run of {len(clerk.user_ids)} users (dagster job execute)")
                clerk.record()
                executors.compare(launched_env, "partial_sync_job", {**partial_options, "dry_run": True}, ("in_process",), 1)
                clerk.freeze()
                clerk.reset_stats()
                try:
                    log(args, f"executors: partial_sync_job of {len(clerk.user_ids)} users, {args.partial_repeats}× each")
                    results["executors"] = {"partial_sync_job": executors.compare(
                        launched_env, "partial_sync_job", partial_options, ("in_process", "multiprocess"), args.partial_repeats)}
                    log(args, "executors: full_sync_job (a no-op), once each")
                    results["executors"]["full_sync_job"] = executors.compare(
                        launched_env, "full_sync_job", {}, ("in_process", "multiprocess"), 1)
                    if clerk.stats()["misses"]:
                        raise RuntimeError(f"the launched runs asked for pages not pre-rendered: {clerk.stats()['missed'][:3]}")
                except RuntimeError as error:
                    missed = clerk.stats()["missed"]
                    raise RuntimeError(f"{error}\npages not pre-rendered: {missed[:3]}" if missed else str(error)) from None
            if args.profile:
                _profile(args, results, env, pin_ms, clerk, engine, schema)
    finally:
        if args.keep_schema:
            print(f"kept the mirror: schema {schema}")
        else:
            with engine.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
    results["table"] = render(results)
    path = Path(args.json_path) if args.json_path else REPOSITORY / "benchmarks" / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}-sync-{args.users}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    if not args.quiet:
        print(results["table"])
        print(f"\nwritten to {path}")
    return 0


def _gc_experiment(args, results, env, pin_ms, clerk, engine, schema) -> None:  # noqa: ANN001
    """First and no-op again, default and tuned collector one after the other, each from an empty mirror."""
    import sqlalchemy as sa

    out: dict[str, dict[str, float]] = {}
    for gc_mode in ("tuned", "default"):
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        for case in ("first", "noop"):
            log(args, f"gc experiment: {case} with the {gc_mode} collector")
            run = run_sync_process(case, env, pin_ms, clerk, gc_mode=gc_mode)
            steps = {s["step"]: s["seconds"] for s in run.report["steps"]}
            out[f"{case} ({gc_mode})"] = {"wall_seconds": round(run.wall_seconds, 2),
                                          "clerk_snapshot_seconds": round(steps.get("clerk_snapshot", 0), 2),
                                          "cpu_seconds": round(sum(run.cpu_seconds.values()) - run.cpu_seconds.get("clerk stand-in", 0), 2),
                                          "peak_rss_mb": round(run.memory_mb.get("sync", 0))}
    results["gc_experiment"] = out


def _profile(args, results, env, pin_ms, clerk, engine, schema) -> None:  # noqa: ANN001
    import sqlalchemy as sa

    results["profiles"] = {}
    with engine.begin() as connection:  # the first sync again: an empty mirror
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    for case in ("first", "noop"):
        with tempfile.TemporaryDirectory() as directory:
            raw = Path(directory) / "profile.txt"
            log(args, f"{case}: sync-pipeline sync under py-spy")
            run = run_sync_process(case, env, pin_ms, clerk, profile_to=raw)
            shares, samples = classify_profile(raw)
            keep = REPOSITORY / "benchmarks" / "results" / f"profile-{case}-{args.users}.txt"
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.write_text(raw.read_text())
        results["profiles"][case] = {"wall_seconds": round(run.wall_seconds, 2), "samples": samples,
                                     "shares": {k: round(v, 4) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
                                     "steps": _steps(run.report), "raw": str(keep)}


def _written(report: dict[str, Any]) -> int:
    return sum(sum(kinds.values()) for kinds in report.get("rows_written", {}).values())


def _steps(report: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(({"step": s["step"], "seconds": round(s["seconds"], 3), "start": s["start"]} for s in report["steps"]),
                  key=lambda s: s["start"] or 0)


def _as_dict(run: SyncRun) -> dict[str, Any]:
    report = run.report
    run_seconds = (report["run_end"] or 0) - (report["run_start"] or 0)
    return {
        "wall_seconds": round(run.wall_seconds, 3),
        "imports_seconds": round(report["imports_seconds"], 3),
        "prepare_and_run_seconds": round(report["run_sync_seconds"], 3),
        "dagster_run_seconds": round(run_seconds, 3),
        "steps": _steps(report),
        "rows_written": _written(report),
        "planned": report["planned"],
        "apply_seconds": report.get("apply_seconds"),
        "memory_mb": {k: round(v) for k, v in run.memory_mb.items()},
        "cpu_seconds": {k: round(v, 2) for k, v in run.cpu_seconds.items()},
        "postgres_cpu_seconds": round(run.postgres_cpu_seconds, 2),
        "max_rss_mb_reported": {"self": round(report["max_rss_mb_self"]), "children": round(report["max_rss_mb_children"])},
        "requests": run.server["requests"],
        "responses_429": run.server["responses_429"],
    }


def render(results: dict[str, Any]) -> str:
    m, s, f = results["machine"], results["settings"], results["floors"]
    counts = results["counts"]
    lines = [
        f"sync-pipeline sync against pre-rendered Clerk pages, {results['date']} — {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gb']} GB, Python {m['python']}, PostgreSQL {m.get('postgres', '?')}; load average at start "
        f"{m['load_average_at_start'][0]}",
        f"{counts['users']:,} users, {counts['organizations']:,} organizations, {counts['organization_memberships']:,} memberships; "
        f"{results['pages']['pages']:,} pages, {results['pages']['bytes'] / MB:,.0f} MB; {s['latency_ms']:g} ms latency; "
        f"{s['rate_per_10s']:,} requests/10 s allowed, client at {s['client_rate_per_10s']:,}",
        "",
        f"Floor: {f['floor_seconds']:.2f} s, bound by {f['bound']} (rate: {results['pages']['pages']:,} pages ÷ "
        f"{s['rate_per_10s'] / 10:g}/s = {f['rate_seconds']:.2f} s; bare download with httpx, {f['concurrency']} at a time: "
        f"{f['download_seconds']:.2f} s)",
    ]
    if "copy" in f:
        lines.append(f"COPY floor (same rows into unindexed tables): {f['copy']['total_seconds']:.2f} s")
    lines += ["", "| case | phase | seconds | floor | × floor | peak RSS MB |", "|---|---|---:|---:|---:|---|"]
    targets = {"first": 2.0, "noop": 1.5}
    for case, run in results["runs"].items():
        memory = ", ".join(f"{k} {v:,}" for k, v in run["memory_mb"].items())
        lines.append(f"| {case} | start-up: imports | {run['imports_seconds']:.2f} | | | |")
        lines.append(f"| {case} | settings check + migration + job build | "
                     f"{run['prepare_and_run_seconds'] - run['dagster_run_seconds']:.2f} | | | |")
        for step in run["steps"]:
            floor = ""
            ratio = ""
            if step["step"] == "clerk_snapshot":
                floor, ratio = f"{f['floor_seconds']:.2f}", f"{step['seconds'] / f['floor_seconds']:.2f}"
            if step["step"] == "mirror_tables" and case == "first" and "copy" in f:
                floor, ratio = f"{f['copy']['total_seconds']:.2f}", f"{step['seconds'] / f['copy']['total_seconds']:.2f}"
            lines.append(f"| {case} | step {step['step']} | {step['seconds']:.2f} | {floor} | {ratio} | |")
            if step["step"] == "mirror_tables" and run.get("apply_seconds") is not None:
                lines.append(f"| {case} | … of which the apply (one transaction) | {run['apply_seconds']:.2f} | | | |")
        lines.append(f"| {case} | Dagster run (start → end) | {run['dagster_run_seconds']:.2f} | | | |")
        ratio = run["wall_seconds"] / f["floor_seconds"]
        verdict = "held" if ratio <= targets[case] else "MISSED"
        lines.append(f"| **{case}** | **process wall, spawn → exit** ({run['rows_written']:,} rows written, "
                     f"{run['requests']:,} requests, {run['responses_429']} 429s) | **{run['wall_seconds']:.2f}** | "
                     f"{f['floor_seconds']:.2f} | **{ratio:.2f}** (target ≤ {targets[case]}: {verdict}) | {memory} |")
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in run["cpu_seconds"].items())
        lines.append(f"| {case} | CPU seconds: {cpu}; Postgres backends {run['postgres_cpu_seconds']:.1f} | | | | |")
    from benchmarks import dlt_side_by_side

    lines += dlt_side_by_side.render_rows(results)
    lines += dlt_side_by_side.render_note(results)
    if results.get("gc_experiment"):
        lines += ["", f"The cyclic collector in the sync process (tuned: gc.freeze() and thresholds {TUNED_GC_THRESHOLD}):", "",
                  "| case | wall s | clerk_snapshot s | CPU s (sync processes) | peak RSS MB |", "|---|---:|---:|---:|---:|"]
        for name, f_ in results["gc_experiment"].items():
            lines.append(f"| {name} | {f_['wall_seconds']:.2f} | {f_['clerk_snapshot_seconds']:.2f} | {f_['cpu_seconds']:.2f} | {f_['peak_rss_mb']:,} |")
    if results.get("executors"):
        lines += ["", "Runs launched as the daemon launches them (`dagster job execute`, a persistent instance), medians:", "",
                  "| job | executor | runs | process wall s | Dagster run s | steps |", "|---|---|---:|---:|---:|---:|"]
        for job, by_executor in results["executors"].items():
            for executor, figures in by_executor.items():
                lines.append(f"| {job} | {executor} | {figures['runs']} | {figures['wall_seconds_median']:.2f} | "
                             f"{figures['run_seconds_median']:.2f} | {figures['steps']} |")
    for case, profile in results.get("profiles", {}).items():
        lines += ["", f"Profile of `{case}` (py-spy at {PROFILE_HZ} Hz, {profile['samples']:,} samples of the thread holding "
                      f"the GIL in the sync's processes, run took {profile['wall_seconds']:.1f} s under py-spy):", "",
                  "| phase | seconds holding the GIL | share |", "|---|---:|---:|"]
        lines += [f"| {name} | {share * profile['samples'] / PROFILE_HZ:.1f} | {share:.1%} |" for name, share in profile["shares"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(_child(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
