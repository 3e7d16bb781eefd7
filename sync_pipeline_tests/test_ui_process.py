"""``sync-pipeline ui`` under a process supervisor: SIGTERM stops everything it started.

A real ``sync-pipeline ui`` (dg dev: webserver, daemon, code servers; the emulator; the
embedded PostgreSQL) on a free port. Once the webserver answers, SIGTERM goes to the CLI
alone, as ``docker stop`` or systemd send it, and every process it started, the
PostgreSQL server included, must be gone within UI_STOP_BOUND_SECONDS.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

# dg dev gives its processes a few seconds; `ui` kills what remains after 10 s.
UI_STOP_BOUND_SECONDS = 30
UI_START_BOUND_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sigterm_to_ui_stops_every_process_it_started() -> None:
    home = Path(tempfile.mkdtemp(prefix="sp-ui-", dir="/tmp"))  # short: pgserver's socket lives in it
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DAGSTER_HOME", "CLERK_SECRET_KEY", "CLERK_API_URL")}
    env["SYNC_PIPELINE_HOME"] = str(home)
    port = free_port()
    log = (home / "ui.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "sync_pipeline.cli", "ui", "--port", str(port), "--users", "30", "--orgs", "3"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + UI_START_BOUND_SECONDS
        while True:
            assert process.poll() is None, (home / "ui.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the UI did not answer within {UI_START_BOUND_SECONDS} s"
            time.sleep(1)

        started = psutil.Process(process.pid).children(recursive=True)
        postgres = psutil.Process(int((home / "pgdata" / "postmaster.pid").read_text().splitlines()[0]))
        names = " ".join(" ".join(p.cmdline()) for p in started)
        assert "dagster_webserver" in names and "_daemon" in names, names  # what there is to stop

        process.send_signal(signal.SIGTERM)  # to the CLI only, not its group
        signalled = time.monotonic()
        assert process.wait(timeout=UI_STOP_BOUND_SECONDS) == 0
        left = max(0.0, UI_STOP_BOUND_SECONDS - (time.monotonic() - signalled))
        _gone, alive = psutil.wait_procs([*started, postgres], timeout=left)
        assert not alive, f"still running {UI_STOP_BOUND_SECONDS} s after SIGTERM: {[p.pid for p in alive]}"
        output = (home / "ui.log").read_text()
        assert "Dagster UI stopped." in output
        assert "SupersessionWarning" not in output and "Traceback" not in output, output[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for leftover in psutil.process_iter(["cmdline"]):  # never leave a server behind, even on failure
            if str(home) in " ".join(leftover.info["cmdline"] or []):
                leftover.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)
