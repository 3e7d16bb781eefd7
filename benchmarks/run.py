"""The benchmarks. By default ``sync-pipeline sync`` measured from outside (benchmarks/sync_command.py):

    .venv/bin/python -m benchmarks.run [--users 100000 --latency-ms 20 --rate 1000 --profile --executors]

With ``--webhooks``, a webhook change to the mirror under the Dagster daemon, event by
event (benchmarks/webhook_latency.py):

    .venv/bin/python -m benchmarks.run --webhooks [--users 3000 --spaced 12 --spacing 7 --burst 10]

With ``--functions`` first, the older benchmark below: the sync's functions driven phase
by phase against the emulator (the Clerk stand-in computing every page):

    .venv/bin/python -m benchmarks.run --functions [--users N --orgs M --latency-ms 50 --rate 1000]

Runs the Clerk emulator in a process of its own (N users, M organizations, about one
membership per user, ``--latency-ms`` on every answer, ``--rate`` requests per 10 s for
the key), a Postgres (``BENCH_DATABASE_URL``, else the embedded one) in a fresh schema,
and the sync through the same functions the Dagster assets call, in their order (see
``benchmarks/pipeline.py``), for these cases:

- ``first``: the first sync into an empty mirror;
- ``noop``: the same again, Clerk unchanged: nothing may be written;
- ``changed``: 1% of users, organizations and memberships changed in Clerk;
- ``partial``: 100 users changed in Clerk, synced by id (a webhook batch's partial sync);
- ``apply_users``: every mirrored user made stale (in the mirror, untimed, then
  vacuumed), so the sync's apply rewrites all N users.

and the floors in the same run (``benchmarks/floors.py``), then the same first sync at
smaller scales in fresh processes to show how memory grows. It prints one table and
writes it as JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from sync_pipeline.clerk.client import ClerkClient
from sync_pipeline.clerk.rate import DEFAULT_RATE_SHARE
from sync_pipeline.defs.resources import MirrorDatabase
from sync_pipeline.mirror.database import create_mirror_engine, safe_url
from sync_pipeline.model import ENTITIES, USERS, SyncScope

from benchmarks import floors
from benchmarks.emulator_process import BENCH_SECRET_KEY, EmulatorProcess
from benchmarks.measure import MB, Case, Recorder, max_rss_ever
from benchmarks.pipeline import run_sync
from benchmarks.sync_command import log

RESULTS_DIR = Path(__file__).parent / "results"
ALL_CASES = ("first", "noop", "changed", "partial", "apply_users")
CLIENT_SHARE_OF_RATE = DEFAULT_RATE_SHARE  # the client's default share of the instance's limit
PARTIAL_USERS = 100


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """A benchmark's arguments: the webhook one's after ``--webhooks``, the function-driven one's after
    ``--functions``, else the default's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--webhooks" in argv:
        from benchmarks import webhook_latency

        argv.remove("--webhooks")
        return webhook_latency._parse(argv)
    if "--functions" not in argv:
        from benchmarks import sync_command

        return sync_command._parse(argv)
    argv.remove("--functions")
    return _parse_function_args(argv)


def _parse_function_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run --functions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--orgs", type=int, default=None, help="default: users / 10")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="delay of every emulator answer")
    parser.add_argument("--rate", type=int, default=1000, help="requests per 10 s the emulator allows the key")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database-url", default=None, help="default: BENCH_DATABASE_URL, else the embedded Postgres")
    parser.add_argument("--cases", default=",".join(ALL_CASES), help=f"comma-separated, of {', '.join(ALL_CASES)}")
    parser.add_argument("--changed-share", type=float, default=0.01, help="share changed in the 'changed' case")
    parser.add_argument("--naive-sample", type=int, default=2000, help="rows upserted one by one for the reference")
    parser.add_argument(
        "--memory-scales",
        default="0.1,0.3",
        help="fractions of --users whose first sync runs in fresh processes for the memory curve ('' for none)",
    )
    parser.add_argument("--no-floors", action="store_true", help="skip the floors and the naive reference")
    parser.add_argument("--handoff", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the IO managers' handoff of the frames between steps")
    parser.add_argument("--json", dest="json_path", default=None, help="where to write the results")
    parser.add_argument("--keep-schema", action="store_true", help="leave the benchmark's schema in the database")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    args.orgs = args.orgs if args.orgs is not None else max(1, args.users // 10)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(args.cases) - set(ALL_CASES)
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}")
    return args


def _database_url(args: argparse.Namespace) -> str:
    url = args.database_url or os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url
    from sync_pipeline.embedded import start_embedded_postgres, state_dir

    return start_embedded_postgres(state_dir() / "bench-pgdata")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _written_since(engine: sa.Engine, schema: str, since: datetime) -> dict[str, int]:
    """Mirror rows whose synced_at moved since ``since``: the database's own word on what was written."""
    with engine.connect() as connection:
        return {
            entity: connection.execute(
                sa.text(f'SELECT count(*) FROM "{schema}".{entity} WHERE synced_at >= :since'), {"since": since}
            ).scalar_one()
            for entity in ENTITIES
        }


def _checkpoint(engine: sa.Engine) -> None:
    """Flush what earlier cases wrote, so one case's writes are not paid by the next (untimed)."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("CHECKPOINT"))
    except sa.exc.DBAPIError:
        pass  # not a superuser: the checkpointer catches up on its own


def _make_users_stale(engine: sa.Engine, schema: str) -> int:
    """Every mirrored user differs from Clerk (first_name and raw_digest); vacuumed, untimed."""
    with engine.begin() as connection:
        count = connection.execute(
            sa.text(
                f"UPDATE \"{schema}\".users SET first_name = coalesce(first_name, '') || '~', raw_digest = 'stale' "
                "WHERE deleted_at IS NULL"
            )
        ).rowcount
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'VACUUM ANALYZE "{schema}".users'))
    return count


def _handoff(recorder: Recorder, case: Case, objects: dict[str, Any]) -> None:
    """What handing these step outputs to the next step costs: Dagster's default pickling
    filesystem IO manager against ``sync_pipeline.defs.io_managers``'s Arrow one."""
    import pickle

    from dagster._utils import PICKLE_PROTOCOL

    from sync_pipeline.defs.io_managers import dump_object, load_object

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMPDIR")) as directory:
        def pickle_dump(obj: Any, path: Path) -> None:  # what Dagster's FilesystemIOManager does
            with path.open("wb") as file:
                pickle.dump(obj, file, PICKLE_PROTOCOL)

        def pickle_load(path: Path) -> Any:
            with path.open("rb") as file:
                return pickle.load(file)

        for label, dump, load in (("pickle", pickle_dump, pickle_load), ("arrow", dump_object, load_object)):
            for name, obj in objects.items():
                path = Path(directory) / f"{label}-{name}"
                with recorder.phase(case, f"handoff:{label}:{name}:store") as phase:
                    dump(obj, path)
                    phase.extra["bytes"] = path.stat().st_size
                with recorder.phase(case, f"handoff:{label}:{name}:load") as phase:
                    loaded = load(path)
                    del loaded
                path.unlink()


def run(args: argparse.Namespace) -> dict[str, Any]:
    url = _database_url(args)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_mirror_engine(url)
    mirror_db = MirrorDatabase(database_url=url, db_schema=schema)
    recorder = Recorder()
    cases: dict[str, Case] = {}
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "users": args.users,
            "orgs": args.orgs,
            "latency_ms": args.latency_ms,
            "rate_per_10s": args.rate,
            "client_rate_per_10s": int(args.rate * CLIENT_SHARE_OF_RATE),
            "database": safe_url(url),
            "schema": schema,
            "driven": "the functions the assets call, in their order (benchmarks/pipeline.py)",
        },
    }
    with engine.connect() as connection:
        results["machine"]["postgres"] = connection.execute(sa.text("SHOW server_version")).scalar_one()
    log(args, f"emulator: {args.users} users, {args.orgs} organizations, {args.latency_ms:g} ms, {args.rate}/10 s")
    started = time.perf_counter()
    try:
        with EmulatorProcess(args.users, args.orgs, args.latency_ms, args.rate, seed=args.seed) as emulator:
            recorder.sampler.excluded_pids.add(emulator.pid)  # Clerk's memory is not the sync's
            results["emulator"] = {"pid": emulator.pid, "counts": emulator.counts(), "started_in_s": round(time.perf_counter() - started, 2)}
            client = ClerkClient(
                secret_key=BENCH_SECRET_KEY,
                api_url=emulator.base_url,
                requests_per_10s=int(args.rate * CLIENT_SHARE_OF_RATE),
            )
            results["settings"]["client_max_concurrency"] = client.max_concurrency
            _run_cases(args, recorder, cases, results, engine, schema, mirror_db, client, emulator)
    finally:
        recorder.close()
        mirror_db.teardown_after_execution(None)
        if not args.keep_schema:
            with engine.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
    results["cases"] = {name: case.as_dict() for name, case in cases.items()}
    results["process_max_rss_mb"] = round(max_rss_ever() / MB, 1)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    return results


def _run_cases(args, recorder, cases, results, engine, schema, mirror_db, client, emulator) -> None:  # noqa: ANN001
    full = SyncScope()
    floor_info: dict[str, Any] = {}
    results["floors"] = floor_info

    if "first" in args.cases:
        log(args, "case first: the first sync into an empty mirror")
        case = cases["first"] = Case("first", "first sync into an empty mirror")
        since = datetime.now(timezone.utc)
        outcome = run_sync(recorder, case, clerk=client, mirror_db=mirror_db, scope=full, emulator=emulator, keep_plan=args.handoff)
        case.facts.update(_facts(outcome, engine, schema, since))
        if args.handoff:
            log(args, "handoff of the first sync's frames (pickle vs arrow)")
            handoff = Case("handoff_first", "IO manager handoff of the first sync's clerk_snapshot and sync_plan")
            _handoff(recorder, handoff, {"clerk_snapshot": outcome.clerk, "sync_plan": outcome.plan})
            cases["handoff_first"] = handoff
        needed = floors.needed_requests(outcome.fetch_stats)
        floor_info["needed_requests"] = needed
        del outcome
        gc.collect()
        if not args.no_floors:
            _floors(args, floor_info, engine, schema, client, emulator, needed)
        _checkpoint(engine)

    if "noop" in args.cases:
        log(args, "case noop: Clerk unchanged")
        case = cases["noop"] = Case("noop", "no-op sync: Clerk unchanged")
        since = datetime.now(timezone.utc)
        outcome = run_sync(recorder, case, clerk=client, mirror_db=mirror_db, scope=full, emulator=emulator, keep_plan=args.handoff)
        case.facts.update(_facts(outcome, engine, schema, since))
        if args.handoff:
            from sync_pipeline.mirror.snapshot import read_mirror

            state = read_mirror(engine, schema, full)
            handoff = Case("handoff_noop", "IO manager handoff of a no-op sync's clerk_snapshot, mirror_snapshot, sync_plan")
            _handoff(recorder, handoff, {"clerk_snapshot": outcome.clerk, "mirror_snapshot": state, "sync_plan": outcome.plan})
            cases["handoff_noop"] = handoff
            del state
        del outcome
        gc.collect()

    if "changed" in args.cases:
        share = args.changed_share
        log(args, f"case changed: {share:.0%} of users, organizations and memberships changed in Clerk")
        changed = emulator.change(tag="changed", users=share, organizations=share, memberships=share)
        case = cases["changed"] = Case("changed", f"{share:.0%} of users, organizations, memberships changed")
        case.facts["changed_in_clerk"] = {k: len(v) for k, v in changed.items()}
        since = datetime.now(timezone.utc)
        outcome = run_sync(recorder, case, clerk=client, mirror_db=mirror_db, scope=full, emulator=emulator)
        case.facts.update(_facts(outcome, engine, schema, since))
        del outcome
        gc.collect()
        _checkpoint(engine)

    if "partial" in args.cases:
        log(args, f"case partial: {PARTIAL_USERS} users changed in Clerk, synced by id")
        changed = emulator.change(tag="partial", user_limit=PARTIAL_USERS)
        case = cases["partial"] = Case("partial", f"partial sync of {PARTIAL_USERS} changed users, by id")
        scope = SyncScope(user_ids=tuple(changed["users"]))
        since = datetime.now(timezone.utc)
        outcome = run_sync(recorder, case, clerk=client, mirror_db=mirror_db, scope=scope, emulator=emulator)
        case.facts.update(_facts(outcome, engine, schema, since))
        del outcome

    if "apply_users" in args.cases:
        log(args, "case apply_users: every mirrored user stale, the apply rewrites them all")
        case = cases["apply_users"] = Case("apply_users", "every user changed: the apply rewrites all users")
        case.facts["made_stale"] = _make_users_stale(engine, schema)
        _checkpoint(engine)
        since = datetime.now(timezone.utc)
        outcome = run_sync(recorder, case, clerk=client, mirror_db=mirror_db, scope=full, emulator=emulator)
        case.facts.update(_facts(outcome, engine, schema, since))
        del outcome
        gc.collect()
        _checkpoint(engine)

    if not args.no_floors and args.naive_sample and any(c in cases for c in ("first", "apply_users")):
        log(args, f"naive reference: {args.naive_sample} row-by-row upserts")
        naive = floors.row_by_row_upserts(engine, schema, args.naive_sample)
        floor_info["naive_row_by_row"] = {"rows": naive.rows, "seconds": round(naive.seconds, 3), "rows_per_second": round(naive.rows_per_second, 1)}

    _attach_floors(cases, floor_info)


def _facts(outcome, engine: sa.Engine, schema: str, since: datetime) -> dict[str, Any]:  # noqa: ANN001
    return {
        "planned": outcome.plan_counts,
        "rows_written": outcome.rows_written,
        "total_written": outcome.total_written,
        "written_per_database": _written_since(engine, schema, since),
        "rows_still_differing_after": outcome.leftover_changes,
    }


def _floors(args, floor_info, engine, schema, client, emulator, needed) -> None:  # noqa: ANN001
    requests = sum(needed.values())
    floor_info["rate_floor_seconds"] = round(floors.rate_floor_seconds(requests, args.rate), 3)
    log(args, f"fetch floor: bare download of the same {requests} pages (rate limit lifted)")
    emulator.set_rate(0)
    try:
        download = floors.bare_download(emulator.base_url, BENCH_SECRET_KEY, needed, client.max_concurrency)
    finally:
        emulator.set_rate(args.rate)
    floor_info["bare_download"] = {
        "seconds": round(download.seconds, 3),
        "requests": download.requests,
        "megabytes": round(download.bytes / MB, 1),
        "statuses": download.statuses,
    }
    floor_info["fetch_floor_seconds"] = round(max(floor_info["rate_floor_seconds"], download.seconds), 3)
    log(args, "load floor: plain COPY of the mirror's rows into unindexed tables")
    load = floors.copy_floor(engine, schema)
    floor_info["load_floor"] = {
        "seconds": {k: round(v, 3) for k, v in load.seconds.items()},
        "rows": load.rows,
        "megabytes": {k: round(v / MB, 1) for k, v in load.bytes.items()},
        "total_seconds": round(load.total_seconds, 3),
    }


def _attach_floors(cases: dict[str, Case], floor_info: dict[str, Any]) -> None:
    """Write each phase's floor beside it."""
    fetch_floor = floor_info.get("fetch_floor_seconds")
    load = floor_info.get("load_floor", {})
    for case in cases.values():
        fetch = case.phase("fetch")
        if fetch and fetch_floor and case.name in ("first", "noop", "changed"):
            fetch.floor_name, fetch.floor_seconds = "fetch floor", fetch_floor
        apply = case.phase("apply")
        if apply and load:
            if case.name == "first":
                apply.floor_name, apply.floor_seconds = "COPY floor (all rows)", load["total_seconds"]
            elif case.name == "apply_users":
                apply.floor_name, apply.floor_seconds = "COPY floor (users)", load["seconds"].get(USERS)


# ------------------------------------------------------------------------ memory scales


def _memory_scales(args: argparse.Namespace) -> list[dict[str, Any]]:
    fractions = [float(x) for x in args.memory_scales.split(",") if x.strip()]
    out = []
    for fraction in fractions:
        users = max(1, int(args.users * fraction))
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            path = handle.name
        command = [
            sys.executable, "-m", "benchmarks.run", "--functions", "--users", str(users), "--orgs", str(max(1, int(args.orgs * fraction))),
            "--latency-ms", str(args.latency_ms), "--rate", str(args.rate), "--seed", str(args.seed),
            "--cases", "first", "--no-floors", "--no-handoff", "--memory-scales", "", "--json", path, "--quiet",
        ]
        if args.database_url:
            command += ["--database-url", args.database_url]
        log(args, f"memory curve: first sync of {users} users in a fresh process")
        subprocess.run(command, check=True, cwd=Path(__file__).resolve().parent.parent)
        data = json.loads(Path(path).read_text())
        os.unlink(path)
        out.append(_scale_point(users, data))
    return out


def _scale_point(users: int, data: dict[str, Any]) -> dict[str, Any]:
    first = data["cases"]["first"]
    rows = sum(first["facts"]["rows_written"][e]["insert"] for e in ENTITIES)
    return {"users": users, "rows": rows, "first_sync_peak_rss_mb": first["peak_rss_mb"],
            "first_sync_peak_anon_mb": first["peak_anon_mb"], "seconds": first["seconds"]}


# ------------------------------------------------------------------------------- targets


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    cases = results.get("cases", {})
    floor_info = results.get("floors", {})
    out: list[dict[str, Any]] = []

    def add(name: str, figure: str, limit: str, held: bool | None, note: str = "") -> None:
        out.append({"target": name, "figure": figure, "limit": limit, "status": "n/a" if held is None else ("held" if held else "MISSED"), "note": note})

    first = cases.get("first")
    fetch_floor = floor_info.get("fetch_floor_seconds")
    load = floor_info.get("load_floor")
    if first and fetch_floor and load:
        budget = fetch_floor + load["total_seconds"]
        ratio = first["seconds"] / budget
        add("full first sync vs fetch floor + load floor", f"{ratio:.2f}× ({first['seconds']:.1f} s vs {budget:.1f} s)", "≤ 1.3×", ratio <= 1.3)
    apply_users = cases.get("apply_users")
    naive = floor_info.get("naive_row_by_row")
    if apply_users and load:
        apply = next(p for p in apply_users["phases"] if p["name"] == "apply")
        users_floor = load["seconds"][USERS]
        ratio = apply["seconds"] / users_floor
        add("apply of every user changed vs COPY floor", f"{ratio:.2f}× ({apply['seconds']:.1f} s vs {users_floor:.1f} s, {apply['rows']} rows)", "≤ 2×", ratio <= 2.0)
        if naive:
            naive_seconds = apply["rows"] / naive["rows_per_second"]
            speedup = naive_seconds / apply["seconds"]
            add("apply of every user changed vs row-by-row", f"{speedup:.0f}× faster ({naive['rows_per_second']:.0f} rows/s row by row → {naive_seconds:.0f} s)", "≥ 20×", speedup >= 20)
    noop = cases.get("noop")
    if noop:
        written = noop["facts"]["total_written"]
        by_database = sum(noop["facts"]["written_per_database"].values())
        add("no-op sync writes nothing", f"{written} rows written ({by_database} by synced_at)", "0", written == 0 and by_database == 0)
        fetch = next(p for p in noop["phases"] if p["name"] == "fetch")
        outside = (noop["seconds"] - fetch["seconds"]) / noop["seconds"]
        verify = next(p for p in noop["phases"] if p["name"] == "verify")
        without = (noop["seconds"] - fetch["seconds"] - verify["seconds"]) / (noop["seconds"] - verify["seconds"])
        add("no-op sync: time outside fetching", f"{outside:.1%} ({noop['seconds'] - fetch['seconds']:.1f} s of {noop['seconds']:.1f} s)",
            "≤ 10%", outside <= 0.10,
            f"{without:.1%} without the read-back check" if verify["seconds"] >= 0.05 else "")
    syncs = [c for n, c in cases.items() if not n.startswith("handoff")]
    if syncs:
        peak = max(c["peak_rss_mb"] for c in syncs)
        anon = max(c["peak_anon_mb"] for c in syncs)
        users = results["settings"]["users"]
        add(f"peak memory (RSS) at {users:,} users", f"{peak:,.0f} MB RSS, of which {anon:,.0f} MB anonymous",
            "< 2,560 MB (2.5 GB)", peak < 2560 if users >= 1_000_000 else None,
            "" if users >= 1_000_000 else "the target is for the default scale")
    curve = results.get("memory_curve") or []
    if len(curve) >= 3:
        slopes = [
            (b["first_sync_peak_rss_mb"] - a["first_sync_peak_rss_mb"]) / ((b["rows"] - a["rows"]) / 100_000)
            for a, b in zip(curve, curve[1:])
        ]
        points = ", ".join(f"{p['users']:,}: {p['first_sync_peak_rss_mb']:,.0f} MB ({p['first_sync_peak_anon_mb']:,.0f} anon)" for p in curve)
        add("memory grows linearly with rows", f"{points}; MB per 100k rows: {', '.join(f'{s:.0f}' for s in slopes)}",
            "last slope ≤ 1.25× the first", slopes[-1] <= 1.25 * slopes[0])
    partial = cases.get("partial")
    if partial:
        fetch = next((p for p in partial["phases"] if p["name"] == "fetch"), None)
        fetch_s = fetch["seconds"] if fetch else 0.0
        rest = partial["seconds"] - fetch_s
        add(f"partial sync of {PARTIAL_USERS} users, outside its Clerk requests",
            f"{rest:.2f} s (+ {fetch_s:.2f} s fetching, {fetch['requests'] if fetch else 0} requests)", "< 2 s", rest < 2.0)
    return out


# ---------------------------------------------------------------------------------- table


def _fmt(value: float | int | None, pattern: str) -> str:
    return "" if value is None else format(value, pattern)


def render(results: dict[str, Any]) -> str:
    settings = results["settings"]
    m = results["machine"]
    lines = [
        f"sync_pipeline benchmark, {results['date']} — {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
        f"Python {m['python']}, PostgreSQL {m.get('postgres', '?')}",
        f"{settings['users']:,} users, {settings['orgs']:,} organizations, "
        f"{results.get('emulator', {}).get('counts', {}).get('organization_memberships', 0):,} memberships; "
        f"{settings['latency_ms']:g} ms latency; {settings['rate_per_10s']} requests/10 s allowed, "
        f"client at {settings['client_rate_per_10s']}; driven: {settings['driven']}",
        "",
        "| case | phase | wall s | rows | rows/s | requests | 429s | peak RSS MB (anon) | CPU s | vs floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for case in results["cases"].values():
        for phase in case["phases"]:
            if phase["name"] == "scope" and phase["seconds"] < 0.05:
                pass
            floor = ""
            if phase.get("floor_seconds"):
                floor = f"{phase['ratio_to_floor']:.2f}× {phase['floor_name']} ({phase['floor_seconds']:.1f} s)"
            lines.append(
                f"| {case['name']} | {phase['name']} | {phase['seconds']:.2f} | {_fmt(phase['rows'] or None, ',')} | "
                f"{_fmt(phase['rows_per_second'], ',.0f')} | {_fmt(phase['requests'], ',')} | {_fmt(phase['responses_429'], ',')} | "
                f"{phase['peak_rss_mb']:,.0f} ({phase['peak_anon_mb']:,.0f}) | {phase['cpu_seconds']:.1f} | {floor} |"
            )
        if not case["name"].startswith("handoff"):
            load = "/".join(f"{x:.1f}" for x in case.get("load_average", [])[:1])
            lines.append(
                f"| **{case['name']}** | **total** | **{case['seconds']:.2f}** | | | | | "
                f"**{case['peak_rss_mb']:,.0f} ({case['peak_anon_mb']:,.0f})** | | load {load} |"
            )
    floor_info = results.get("floors", {})
    if floor_info.get("fetch_floor_seconds"):
        bare = floor_info["bare_download"]
        load = floor_info["load_floor"]
        lines += [
            "",
            "Floors (same run): "
            f"fetch floor {floor_info['fetch_floor_seconds']:.1f} s = max(rate {floor_info['rate_floor_seconds']:.1f} s for "
            f"{sum(floor_info['needed_requests'].values()):,} requests, bare download {bare['seconds']:.1f} s for "
            f"{bare['megabytes']:,.0f} MB); load floor (COPY) {load['total_seconds']:.1f} s = "
            + ", ".join(f"{e} {load['seconds'][e]:.1f} s ({load['rows'][e]:,} rows)" for e in load["seconds"]),
        ]
    if floor_info.get("naive_row_by_row"):
        naive = floor_info["naive_row_by_row"]
        lines.append(f"Naive reference: {naive['rows']:,} row-by-row upserts (one commit each) in {naive['seconds']:.1f} s = {naive['rows_per_second']:,.0f} rows/s")
    if results.get("memory_curve"):
        lines.append("Memory curve (first sync, fresh process): " + ", ".join(
            f"{p['users']:,} users → {p['first_sync_peak_rss_mb']:,.0f} MB ({p['first_sync_peak_anon_mb']:,.0f} anon)"
            for p in results["memory_curve"]))
    lines += ["", "| target | figure | limit | status |", "|---|---|---|---|"]
    for t in results.get("targets", []):
        lines.append(f"| {t['target']} | {t['figure']} | {t['limit']} | {t['status']}{' — ' + t['note'] if t['note'] else ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--webhooks" in argv:  # a webhook change to the mirror under the daemon (benchmarks/webhook_latency.py)
        from benchmarks import webhook_latency

        argv.remove("--webhooks")
        return webhook_latency.main(argv)
    if "--functions" not in argv:
        from benchmarks import sync_command

        return sync_command.main(argv)
    argv.remove("--functions")
    args = _parse_function_args(argv)
    results = run(args)
    if args.memory_scales.strip():
        curve = _memory_scales(args)
        if "first" in results["cases"]:
            curve.append(_scale_point(args.users, results))
        results["memory_curve"] = sorted(curve, key=lambda p: p["users"])
    results["targets"] = targets(results)
    table = render(results)
    path = Path(args.json_path) if args.json_path else RESULTS_DIR / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{args.users}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    results["table"] = table
    path.write_text(json.dumps(results, indent=2, default=str))
    if not args.quiet:
        print(table)
        print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
