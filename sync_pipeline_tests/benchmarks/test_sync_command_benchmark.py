"""The outside-in benchmark (``python -m benchmarks.run``) runs end to end at a tiny scale.

Not a timed test: it asserts what the run did (pages recorded and served, rows written,
floors measured, the table printed), never how fast. And the pre-rendered stand-in
refuses, by a 404 that says so, a page it never rendered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from benchmarks.prerendered import PrerenderedClerk, bare_download

REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_stand_in_serves_what_it_recorded_and_refuses_the_rest() -> None:
    with PrerenderedClerk(users=50, orgs=5, latency_ms=0, requests_per_10s=3) as clerk:
        headers = {"Authorization": f"Bearer {clerk.secret_key}"}
        recorded = httpx.get(f"{clerk.base_url}/users?limit=10&offset=0", headers=headers)
        assert recorded.status_code == 200 and len(recorded.json()) == 10
        frozen = clerk.freeze()
        assert frozen["pages"] == 1 and frozen["statuses"] == {"200": 1}

        served = httpx.get(f"{clerk.base_url}/users?limit=10&offset=0", headers=headers)
        assert served.content == recorded.content
        missed = httpx.get(f"{clerk.base_url}/users?limit=10&offset=10", headers=headers)
        assert missed.status_code == 404
        assert "was not pre-rendered" in missed.json()["errors"][0]["message"]
        # Clerk's rate: 3 per 10 s here, the fourth request is a 429 with Retry-After.
        assert httpx.get(f"{clerk.base_url}/users?limit=10&offset=0", headers=headers).status_code == 200
        limited = httpx.get(f"{clerk.base_url}/users?limit=10&offset=0", headers=headers)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        stats = clerk.stats()
        assert (stats["requests"], stats["misses"], stats["responses_429"]) == (4, 1, 1)

        floor = bare_download(clerk, clerk.keys(), concurrency=2)  # the limit lifted for the floor
        assert floor.statuses == {200: 1} and floor.bytes == len(recorded.content)


def test_the_benchmark_measures_a_first_sync_and_a_noop_against_pre_rendered_pages(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "benchmarks.run", "--users", "300", "--orgs", "30", "--latency-ms", "0",
               "--rate", "100000", "--database-url", database_url, "--json", str(out)]
    completed = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out.read_text())

    counts = results["counts"]
    first, noop = results["runs"]["first"], results["runs"]["noop"]
    assert first["rows_written"] == sum(counts.values())
    assert noop["rows_written"] == 0
    assert first["requests"] == noop["requests"] == results["pages"]["pages"]  # every page served, none missed
    assert {"sync_scope", "clerk_snapshot", "mirror_snapshot", "sync_plan", "mirror_tables"} <= {s["step"] for s in first["steps"]}
    assert first["memory_mb"]["sync"] > 0 and first["memory_mb"]["clerk stand-in"] > 0
    floors = results["floors"]
    assert floors["download_statuses"] == {"200": results["pages"]["pages"]}
    assert floors["bound"] in ("Clerk's rate", "the download")
    assert "| **first** | **process wall, spawn → exit**" in completed.stdout
