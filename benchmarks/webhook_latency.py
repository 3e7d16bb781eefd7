"""A webhook change to the mirror under the Dagster daemon: Clerk's event → the mirror row committed.

    .venv/bin/python -m benchmarks.webhook_latency [--users 3000 --spaced 12 --spacing 7 --burst 10]
    .venv/bin/python -m benchmarks.run --webhooks [same options]

Every part is the deployed one, each in its own process: the Clerk emulator delivering
Svix-signed webhooks (``sync-pipeline emulator --webhook-url``), the receiver
(``sync-pipeline webhooks serve``) writing the inbox, and ``dagster-daemon run -w
workspace.yaml`` over a temporary ``DAGSTER_HOME`` holding the repository's
``dagster.yaml`` (its QueuedRunCoordinator, SQLite storage), so the webhook sensor
launches each partial run through the queue, the code server and a run worker
(``dagster api execute_run``), as in production. The mirror is a fresh schema on
``--database-url`` (else BENCH_DATABASE_URL, else TEST_DATABASE_URL), filled by a first
``sync-pipeline sync``, and dropped at the end.

Then users are changed through the emulator's admin API, ``--spaced`` of them one at a
time ``--spacing`` seconds apart, and ``--burst`` of them at once; each change sets a
``public_metadata`` tag of its own. Per event:

- *emitted*: Clerk's ``timestamp`` in the payload (the inbox's ``clerk_timestamp``);
- *received*: the inbox row's ``received_at`` (the receiver's insert);
- *committed*: when the changed row is first visible in the mirror to a watcher polling
  every ``POLL_SECONDS`` (an upper bound on the commit, by at most that much: the mirror's
  own ``synced_at`` is ``now()``, the apply transaction's start, not its commit);

and where the time between went, from the sensor tick, the run record and the run's
event log: the sensor's wait (the tick that launched the run, less the event's arrival:
the daemon's sensor loop and the sensor's interval, or a run still in flight), the tick
itself, the queue (enqueued → RUN_STARTING: the run coordinator's dequeue interval), the
run worker's spawn (a fresh Python importing Dagster), its loading of the code location
(→ RUN_START), the steps before the apply, and the apply step's start → committed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.sync_command import log

REPOSITORY = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BENCH_SECRET_KEY = "sk_live_benchmark"
WEBHOOK_SECRET = "whsec_" + "YmVuY2htYXJrLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM="  # a benchmark's, not a real endpoint's
POLL_SECONDS = 0.02
POLL_WORKER_SECONDS = 0.2
APPLY_STEP = "mirror_tables"  # the multi-asset whose one transaction writes the mirror and marks the events


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhook_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--orgs", type=int, default=None, help="default: users / 10")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="delay of every emulator answer")
    parser.add_argument("--spaced", type=int, default=12, help="changes made one at a time")
    parser.add_argument("--spacing", type=float, default=7.0, help="seconds between the spaced changes")
    parser.add_argument("--burst", type=int, default=10, help="changes made at once, after the spaced ones")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds an event may take before the run is called failed")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--worker", choices=("daemon", "in-process"), default="daemon",
                        help="daemon: dagster-daemon launches each run (the deployment); in-process: for comparison, one "
                        "long-lived process runs `webhooks process` every POLL_WORKER_SECONDS (no sensor loop, queue or "
                        "process per run)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and DAGSTER_HOME (printed)")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    args.orgs = args.orgs if args.orgs is not None else max(1, args.users // 10)
    return args


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------- the processes


class Processes:
    """The processes the benchmark starts, each in a session of its own so that its children
    (the daemon's code server, its run workers) are stopped with it; logs kept in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.directory / f"{name}.log").open("w")
        process = subprocess.Popen(command, cwd=REPOSITORY, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.started[name] = process
        return process

    def log_tail(self, name: str, characters: int = 3000) -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace")[-characters:] if path.exists() else ""

    def check_alive(self) -> None:
        for name, process in self.started.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}):\n{self.log_tail(name)}")

    def stop_all(self) -> None:
        for name, process in reversed(list(self.started.items())):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for name, process in reversed(list(self.started.items())):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
            try:  # anything its session left behind (a run worker mid-run)
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait_http(url: str, *, headers: dict[str, str] | None = None, timeout: float = 120.0, processes: Processes) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


# ------------------------------------------------------------------------------ the watcher


@dataclass
class Change:
    """One change made in Clerk, and when its row was first seen committed in the mirror."""

    user_id: str
    tag: str
    scenario: str
    requested_at: float  # the admin call's start (time.time())
    committed_at: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)


class CommitWatcher:
    """Polls the mirror every ``POLL_SECONDS`` for the changes still outstanding, on one connection."""

    def __init__(self, url: str, schema: str) -> None:
        import psycopg

        self._connection = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        self._schema = schema
        self._outstanding: dict[str, Change] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watcher", daemon=True)
        self._thread.start()

    def expect(self, change: Change) -> None:
        with self._lock:
            self._outstanding[change.user_id] = change

    def outstanding(self) -> int:
        with self._lock:
            return len(self._outstanding)

    def _run(self) -> None:
        query = f"SELECT id, public_metadata->>'bench' FROM \"{self._schema}\".users WHERE id = ANY(%s)"
        while not self._stop.wait(POLL_SECONDS):
            with self._lock:
                ids = list(self._outstanding)
            if not ids:
                continue
            rows = self._connection.execute(query, (ids,)).fetchall()
            seen = time.time()
            with self._lock:
                for user_id, tag in rows:
                    change = self._outstanding.get(user_id)
                    if change is not None and tag == change.tag:
                        change.committed_at = seen
                        del self._outstanding[user_id]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._connection.close()


# --------------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    import sqlalchemy as sa

    from benchmarks.run import machine
    from sync_pipeline.mirror.database import create_mirror_engine, safe_url

    url = args.database_url or os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        raise SystemExit("benchmarks.webhook_latency: set --database-url, BENCH_DATABASE_URL or TEST_DATABASE_URL")
    schema = f"hookbench_{uuid.uuid4().hex[:8]}"
    emulator_port, receiver_port = _free_port(), _free_port()
    work = Path(tempfile.mkdtemp(prefix="webhook-latency-"))
    dagster_home = work / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPOSITORY / "dagster.yaml", dagster_home / "dagster.yaml")  # the instance settings as shipped
    env = {**os.environ, "DATABASE_URL": url, "SYNC_SCHEMA": schema, "CLERK_SECRET_KEY": BENCH_SECRET_KEY,
           "CLERK_API_URL": f"http://127.0.0.1:{emulator_port}/v1", "CLERK_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "DAGSTER_HOME": str(dagster_home), "PYTHONUNBUFFERED": "1"}
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "settings": {"users": args.users, "orgs": args.orgs, "latency_ms": args.latency_ms, "spaced": args.spaced,
                     "spacing_seconds": args.spacing, "burst": args.burst, "database": safe_url(url), "schema": schema,
                     "poll_seconds": POLL_SECONDS, "worker": args.worker,
                     "instance": (REPOSITORY / "dagster.yaml").read_text(),
                     "sensor_interval_seconds": env.get("SYNC_WEBHOOK_SENSOR_INTERVAL_SECONDS", "default")},
    }
    engine = create_mirror_engine(url)
    processes = Processes(work)
    watcher: CommitWatcher | None = None
    try:
        log(args, f"emulator: {args.users:,} users, {args.orgs:,} organizations, webhooks to the receiver")
        processes.start("emulator", [str(BIN / "sync-pipeline"), "emulator", "--host", "127.0.0.1",
                                     "--port", str(emulator_port), "--users", str(args.users), "--orgs", str(args.orgs),
                                     "--secret-key", BENCH_SECRET_KEY, "--latency-ms", str(args.latency_ms),
                                     "--webhook-url", f"http://127.0.0.1:{receiver_port}/webhooks/clerk",
                                     "--webhook-secret", WEBHOOK_SECRET], env)
        auth = {"Authorization": f"Bearer {BENCH_SECRET_KEY}"}
        _wait_http(f"http://127.0.0.1:{emulator_port}/v1/users/count", headers=auth, processes=processes)

        log(args, "first sync: sync-pipeline sync")
        started = time.perf_counter()
        without_home = {k: v for k, v in env.items() if k != "DAGSTER_HOME"}  # the CLI's own ephemeral instance
        first = subprocess.run([str(BIN / "sync-pipeline"), "sync"], cwd=REPOSITORY, env=without_home,
                               capture_output=True, text=True)
        if first.returncode != 0:
            raise RuntimeError(f"the first sync failed: {first.stderr[-2000:]}")
        results["first_sync_seconds"] = round(time.perf_counter() - started, 2)

        processes.start("receiver", [str(BIN / "sync-pipeline"), "webhooks", "serve", "--host", "127.0.0.1",
                                     "--port", str(receiver_port)], env)
        _wait_http(f"http://127.0.0.1:{receiver_port}/healthz", processes=processes)
        if args.worker == "daemon":
            log(args, "dagster-daemon run -w workspace.yaml")
            processes.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env)
        else:
            log(args, f"in-process worker: `webhooks process` every {POLL_WORKER_SECONDS:g} s in one process")
            processes.start("daemon", [sys.executable, "-m", "benchmarks.webhook_latency", "in-process-worker"], env)

        with engine.connect() as connection:
            user_ids = connection.execute(sa.text(f'SELECT id FROM "{schema}".users WHERE deleted_at IS NULL ORDER BY id')).scalars().all()
        wanted = 1 + args.spaced + args.burst
        if len(user_ids) < wanted:
            raise RuntimeError(f"{wanted} users to change, the mirror holds {len(user_ids)}")
        chosen = iter(user_ids[:: max(1, len(user_ids) // wanted)])
        watcher = CommitWatcher(url, schema)
        client = httpx.Client(base_url=f"http://127.0.0.1:{emulator_port}/_emulator", headers=auth, timeout=10)

        def change(scenario: str, index: int) -> Change:
            user_id = next(chosen)
            tag = f"{scenario}-{index}-{uuid.uuid4().hex[:6]}"
            made = Change(user_id, tag, scenario, time.time())
            watcher.expect(made)
            client.patch(f"/users/{user_id}", json={"public_metadata": {"bench": tag}}).raise_for_status()
            return made

        def wait_for(changes: list[Change]) -> None:
            deadline = time.monotonic() + args.timeout
            while any(c.committed_at is None for c in changes):
                processes.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{sum(c.committed_at is None for c in changes)} change(s) not in the mirror "
                                       f"after {args.timeout:.0f} s:\n{processes.log_tail('daemon')}")
                time.sleep(0.05)

        # The first run after the daemon starts also pays for the code server's start: left out.
        log(args, "warm-up: one change, until the daemon's run has committed it")
        warm = [change("warmup", 0)]
        wait_for(warm)
        changes: list[Change] = []
        log(args, f"spaced: {args.spaced} changes, {args.spacing:g} s apart")
        for index in range(args.spaced):
            changes.append(change("spaced", index))
            time.sleep(args.spacing)
        wait_for(changes)
        if args.burst:
            time.sleep(args.spacing)
            log(args, f"burst: {args.burst} changes at once")
            changes += [change("burst", index) for index in range(args.burst)]
            wait_for(changes)
        watcher.close()
        watcher = None
        time.sleep(2)  # the last run's remaining steps, so its event log is complete
        ticks = _explain(changes + warm, engine, schema, dagster_home)
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        results["sensor_ticks"] = {"ticks": len(ticks), "gap_seconds_median": round(statistics.median(gaps), 2) if gaps else None,
                                   "gap_seconds_min": round(min(gaps), 2) if gaps else None,
                                   "gap_seconds_max": round(max(gaps), 2) if gaps else None}
        results["events"] = [_as_dict(c) for c in changes]
        results["warmup"] = [_as_dict(c) for c in warm]
        results["runs"] = _runs(changes, dagster_home)
        results["summary"] = summarize(changes)
        results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if watcher is not None:
            watcher.close()
        processes.stop_all()
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
        if args.keep_logs:
            log(args, f"logs and DAGSTER_HOME kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


# --------------------------------------------------------------------------- the breakdown


def _explain(changes: list[Change], engine: Any, schema: str, dagster_home: Path) -> list[float]:
    """Each change's inbox row (emitted, received, run) and its run's timeline from the Dagster instance;
    returns the sensor's tick times."""
    import sqlalchemy as sa
    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.storage.tags import TICK_ID_TAG

    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            f"""SELECT user_id, payload->'data'->'public_metadata'->>'bench' AS tag,
                       extract(epoch FROM clerk_timestamp) AS emitted, extract(epoch FROM received_at) AS received,
                       processed_run_id FROM "{schema}".webhook_events WHERE event_type = 'user.updated'""")).all()
    by_tag = {row.tag: row for row in rows}
    timelines: dict[str, dict[str, Any]] = {}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for change in changes:
            row = by_tag.get(change.tag)
            if row is None:
                continue
            change.facts.update(emitted=float(row.emitted), received=float(row.received), run_id=row.processed_run_id)
            if row.processed_run_id not in timelines:
                timelines[row.processed_run_id] = _timeline(instance, row.processed_run_id, DagsterEventType, TICK_ID_TAG)
            change.facts["run"] = timelines[row.processed_run_id]
        return _sensor_ticks(instance)


def _sensor_ticks(instance: Any) -> list[float]:
    """When the webhook sensor's ticks started, oldest first: how often the daemon evaluates it."""
    from dagster._core.scheduler.instigation import InstigatorType

    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == "clerk_webhook_sensor":
            return sorted(tick.timestamp for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id))
    return []


def _timeline(instance: Any, run_id: str, types: Any, tick_tag: str) -> dict[str, Any]:
    record = instance.get_run_record_by_id(run_id)
    out: dict[str, Any] = {"run_id": run_id, "created": record.create_timestamp.timestamp(), "steps": {},
                           "events": len(record.dagster_run.run_config["ops"]["sync_scope"]["config"]["webhook_event_ids"])}
    tick_id = record.dagster_run.tags.get(tick_tag)
    if tick_id:
        try:
            tick = instance.schedule_storage.get_tick(int(tick_id))
            out["tick_start"], out["tick_end"] = tick.timestamp, tick.end_timestamp
        except Exception:  # a storage without get_tick: the run's creation stands in for the tick
            pass
    # RUN_STARTING: the daemon hands the run to the code server, which spawns the run worker
    # (multiprocessing's spawn: a fresh Python). The worker's first event, "Started process for
    # run", comes once it has imported Dagster and opened the instance; RUN_START once it has
    # loaded the code location and planned the job.
    marks = {types.RUN_ENQUEUED: "enqueued", types.RUN_STARTING: "starting", types.RUN_START: "start",
             types.RUN_SUCCESS: "end", types.RUN_FAILURE: "end"}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == types.ENGINE_EVENT and (entry.message or "").startswith("Started process for run"):
            out.setdefault("worker_started", entry.timestamp)
        elif event.event_type in marks:
            out.setdefault(marks[event.event_type], entry.timestamp)
        elif event.event_type == types.STEP_START:
            out["steps"].setdefault(event.step_key, {})["start"] = entry.timestamp
        elif event.event_type in (types.STEP_SUCCESS, types.STEP_FAILURE):
            out["steps"].setdefault(event.step_key, {})["end"] = entry.timestamp
    return out


SEGMENTS = ("emitted → received", "sensor wait", "sensor tick", "queue", "worker spawn + import dagster",
            "worker loads the code location", "steps before the apply", "apply step → committed")


def segments(change: Change) -> dict[str, float]:
    """Where one event's time went, in seconds; the segments add up to emitted → committed.

    The sensor's wait runs from the event's arrival to the start of the tick that launched
    its run (the daemon's sensor loop, the sensor's interval, or a run still in flight);
    the tick, from its start to the run's enqueueing; the queue, to RUN_STARTING.
    """
    f, run = change.facts, change.facts.get("run", {})
    apply_start = run.get("steps", {}).get(APPLY_STEP, {}).get("start")
    if "enqueued" not in run:  # the in-process worker: no tick, queue nor run worker
        points = [f.get("emitted"), f.get("received"), run.get("start"), apply_start, change.committed_at]
        if any(p is None for p in points):
            return {}
        names = ("emitted → received", "worker's poll + run start", "steps before the apply", "apply step → committed")
        return {name: b - a for name, a, b in zip(names, points, points[1:])}
    tick_start = run.get("tick_start", run.get("created"))
    points = [f.get("emitted"), f.get("received"), max(tick_start, f["received"]) if tick_start else None,
              run.get("enqueued"), run.get("starting"), run.get("worker_started"), run.get("start"), apply_start,
              change.committed_at]
    if any(p is None for p in points):
        return {}
    return {name: b - a for name, a, b in zip(SEGMENTS, points, points[1:])}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(share * 100) - 1]


def summarize(changes: list[Change]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    groups = {"all": changes, **{s: [c for c in changes if c.scenario == s] for s in ("spaced", "burst")}}
    for name, group in groups.items():
        measured = [c for c in group if c.committed_at is not None and "received" in c.facts]
        if not measured:
            continue
        received = [c.committed_at - c.facts["received"] for c in measured]
        emitted = [c.committed_at - c.facts["emitted"] for c in measured]
        parts = [segments(c) for c in measured]
        parts = [p for p in parts if p]
        out[name] = {
            "events": len(measured),
            "received_to_committed": {"p50": round(_percentile(received, 0.5), 2), "p95": round(_percentile(received, 0.95), 2),
                                      "max": round(max(received), 2)},
            "emitted_to_committed": {"p50": round(_percentile(emitted, 0.5), 2), "p95": round(_percentile(emitted, 0.95), 2),
                                     "max": round(max(emitted), 2)},
            "segments_median": {s: round(statistics.median(p[s] for p in parts), 3) for s in parts[0]} if parts else {},
            "segments_max": {s: round(max(p[s] for p in parts), 3) for s in parts[0]} if parts else {},
            "runs": len({c.facts.get("run_id") for c in measured}),
        }
    return out


def _runs(changes: list[Change], dagster_home: Path) -> list[dict[str, Any]]:
    """Each run once: its event count and the seconds of its phases and steps."""
    seen: dict[str, dict[str, Any]] = {}
    for change in changes:
        run = change.facts.get("run")
        if not run or run["run_id"] in seen:
            continue
        steps = {k: round(v["end"] - v["start"], 3) for k, v in run["steps"].items() if "start" in v and "end" in v}
        seen[run["run_id"]] = {
            "run_id": run["run_id"], "events": run["events"],
            "tick_seconds": round(run["tick_end"] - run["tick_start"], 3) if run.get("tick_end") else None,
            "queue_seconds": round(run["starting"] - run["enqueued"], 3) if "starting" in run else None,
            "worker_spawn_seconds": round(run["worker_started"] - run["starting"], 3) if "worker_started" in run else None,
            "worker_load_seconds": round(run["start"] - run["worker_started"], 3) if "worker_started" in run else None,
            "run_seconds": round(run["end"] - run["start"], 3) if "end" in run else None,
            "steps": dict(sorted(steps.items(), key=lambda kv: run["steps"][kv[0]]["start"])),
        }
    return list(seen.values())


def _as_dict(change: Change) -> dict[str, Any]:
    f = change.facts
    return {"scenario": change.scenario, "user_id": change.user_id, "run_id": f.get("run_id"),
            "received_to_committed": round(change.committed_at - f["received"], 3) if "received" in f else None,
            "emitted_to_committed": round(change.committed_at - f["emitted"], 3) if "emitted" in f else None,
            "segments": {k: round(v, 3) for k, v in segments(change).items()}}


def render(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    lines = [
        f"Webhook change → mirror row committed, runs launched by {s['worker']}, {results['date']} — {m['cpu']}, {m['cores']} cores; "
        f"load average at start {m['load_average_at_start'][0]}, at the end {results.get('load_average_at_end', ['?'])[0]}",
        f"{s['users']:,} users, {s['orgs']:,} organizations; emulator latency {s['latency_ms']:g} ms; sensor interval "
        f"{s['sensor_interval_seconds']}; {s['spaced']} changes {s['spacing_seconds']:g} s apart, then {s['burst']} at once; "
        f"commits seen by polling every {s['poll_seconds'] * 1000:.0f} ms",
        "",
        "| events | n | runs | received → committed p50 / p95 / max s | emitted → committed p50 / p95 / max s |",
        "|---|---:|---:|---|---|",
    ]
    for name, g in results["summary"].items():
        r, e = g["received_to_committed"], g["emitted_to_committed"]
        lines.append(f"| {name} | {g['events']} | {g['runs']} | {r['p50']:.2f} / {r['p95']:.2f} / {r['max']:.2f} | "
                     f"{e['p50']:.2f} / {e['p95']:.2f} / {e['max']:.2f} |")
    ticks = results.get("sensor_ticks") or {}
    if ticks.get("gap_seconds_median") is not None:
        lines += ["", f"The webhook sensor ticked {ticks['ticks']} times, {ticks['gap_seconds_median']:.2f} s apart "
                      f"(median; {ticks['gap_seconds_min']:.2f}-{ticks['gap_seconds_max']:.2f} s)."]
    every = results["summary"].get("all", {})
    if every.get("segments_median"):
        lines += ["", "Where an event's time goes (all events; seconds):", "", "| segment | median | max |", "|---|---:|---:|"]
        lines += [f"| {name} | {every['segments_median'][name]:.3f} | {every['segments_max'][name]:.3f} |" for name in every["segments_median"]]
    if results.get("runs"):
        step_names = list(dict.fromkeys(k for r in results["runs"] for k in r["steps"]))
        lines += ["", "Per run, medians over the runs (seconds):", "", "| phase | median | max |", "|---|---:|---:|"]
        for label, key in (("sensor tick", "tick_seconds"), ("queue: enqueued → RUN_STARTING", "queue_seconds"),
                           ("run worker: spawn, import dagster, open the instance", "worker_spawn_seconds"),
                           ("run worker: load the code location, plan the job", "worker_load_seconds"),
                           ("run: RUN_START → RUN_SUCCESS", "run_seconds")):
            values = [r[key] for r in results["runs"] if r.get(key) is not None]
            if values:
                lines.append(f"| {label} | {statistics.median(values):.3f} | {max(values):.3f} |")
        for step in step_names:
            values = [r["steps"][step] for r in results["runs"] if step in r["steps"]]
            lines.append(f"| step {step} | {statistics.median(values):.3f} | {max(values):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    results = run(args)
    results["table"] = render(results)
    path = Path(args.json_path) if args.json_path else REPOSITORY / "benchmarks" / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}-webhooks.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    if not args.quiet:
        print(results["table"])
        print(f"\nwritten to {path}")
    return 0


def in_process_worker() -> int:
    """The comparison's worker: what the sensor would launch, run in this process, as soon as it is pending."""
    from sync_pipeline.runner import process_pending_webhooks

    while True:
        process_pending_webhooks()
        time.sleep(POLL_WORKER_SECONDS)


if __name__ == "__main__":
    if sys.argv[1:] == ["in-process-worker"]:
        sys.exit(in_process_worker())
    sys.exit(main(sys.argv[1:]))
