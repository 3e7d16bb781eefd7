"""The Dagster UI as an engineer uses it, in a real headless Chromium.

Starts Dagster the way ``sync-pipeline ui`` does (``dg dev``: webserver + daemon) over a
private database and emulator, opens the asset graph, launches full_sync_job from the
Launchpad, waits for it to succeed and checks that the plan's counts are one table on
sync_plan's page. Screenshots are kept in
``test-artifacts/ui/`` (or $SYNC_TEST_ARTIFACTS).

Needs Debian's ``chromium`` (``apt-get install chromium``; .ci/run installs it). Without a
browser on the machine the test is skipped, saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from sync_pipeline.emulator import EmulatorServer

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("SYNC_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")) / "ui"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dagster_ui(tmp_path: Path, database_url: str, schema: str) -> Iterator[tuple[str, Path]]:
    """``sync-pipeline ui``'s Dagster command on a free port over this test's database and Clerk; yields
    (url, DAGSTER_HOME)."""
    from sync_pipeline.demo import LOCAL_INSTANCE_CONFIG, dagster_dev_command

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(LOCAL_INSTANCE_CONFIG)
    port = free_port()
    with EmulatorServer(users=200, orgs=20, seed=3, secret_key="sk_live_ui_test", requests_per_10s=0) as clerk:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DATABASE_URL": database_url,
            "SYNC_SCHEMA": schema,
            "CLERK_API_URL": clerk.base_url,
            "CLERK_SECRET_KEY": clerk.secret_key,
        }
        env.pop("SYNC_APP_TABLES", None)
        log = (tmp_path / "dagster-dev.log").open("w")
        process = subprocess.Popen(
            dagster_dev_command(port, tmp_path / "workspace.yaml"), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, (tmp_path / "dagster-dev.log").read_text()[-3000:]
                try:
                    if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "dagster dev did not start in 120 s"
                time.sleep(1)
            yield url, home
            console = (tmp_path / "dagster-dev.log").read_text()
            # Dagster's current command (no supersession warning), and no line per sensor tick.
            assert "SupersessionWarning" not in console and "clerk_webhook_sensor" not in console, console[-3000:]
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            log.close()


def dismiss_welcome(page) -> None:  # noqa: ANN001
    """Dagster greets a new browser with a community dialog; skip it when it shows."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=3000)
        skip.click()
    except Exception:  # noqa: BLE001 - no dialog this time
        pass


def wait_for_run(home: Path, run_id: str, timeout: float) -> DagsterRunStatus:
    deadline = time.monotonic() + timeout
    with DagsterInstance.from_config(str(home)) as instance:
        while True:
            run = instance.get_run_by_id(run_id)
            if run and run.is_finished:
                return run.status
            assert time.monotonic() < deadline, f"run {run_id} did not finish in {timeout} s"
            time.sleep(1)


def test_an_engineer_launches_the_full_sync_from_the_ui_and_reads_the_plan(dagster_ui: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, home = dagster_ui
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)

        page.goto(f"{url}/asset-groups", wait_until="networkidle")  # "Lineage": the global asset graph
        dismiss_welcome(page)
        page.get_by_text("clerk_mirror").first.wait_for()
        graph = page.inner_text("body")
        assert "clerk_sync" in graph
        # No application tables declared here: their asset sits apart and says it is off.
        assert "app_tables_off" in graph
        page.screenshot(path=str(ARTIFACTS / "1-asset-graph.png"))

        page.goto(f"{url}/locations/sync_pipeline/jobs/full_sync_job/playground", wait_until="networkidle")
        dismiss_welcome(page)
        page.get_by_role("button", name="Launch Run").click()
        page.wait_for_url("**/runs/**")
        run_id = page.url.rstrip("/").split("/runs/")[1].split("?")[0]
        status = wait_for_run(home, run_id, timeout=240)
        page.reload(wait_until="networkidle")
        page.screenshot(path=str(ARTIFACTS / "2-run.png"))
        assert status == DagsterRunStatus.SUCCESS

        page.goto(f"{url}/assets/sync_plan", wait_until="networkidle")
        dismiss_welcome(page)
        page.get_by_text("changes_total").first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "3-sync-plan-metadata.png"), full_page=True)
        text = page.inner_text("body")
        # The plan's counts are one table (no loose users.insert, users.update, … keys), and
        # this first sync inserts every one of the emulator's 200 users.
        assert "users.insert" not in text and "users.update" not in text
        assert re.search(r"\bchanges\b", text) and "sample: users upserts" in text, text[:3000]
        users_row = page.locator("tr:not(:has(tr))", has=page.get_by_role("cell", name="users", exact=True)).first  # the changes table
        assert users_row.inner_text().split()[:2] == ["users", "200"], users_row.inner_text()
        # The metadata panel scrolls inside the page: keep a picture of all of it.
        page.locator("table", has_text="changes_total").first.screenshot(path=str(ARTIFACTS / "3b-sync-plan-metadata-table.png"))

        page.goto(f"{url}/assets/app_tables", wait_until="networkidle")
        dismiss_welcome(page)
        page.get_by_text("Off: SYNC_APP_TABLES is not set").first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "4-app-tables-off.png"))
        browser.close()
