"""The benchmark command runs end to end at a tiny scale, so it cannot rot (issue 5).

A smoke test, not a timed one: it asserts what the run did (rows, writes, the table),
never how fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_every_case_and_writes_its_table(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    command = [
        sys.executable, "-m", "benchmarks.run", "--functions",
        "--users", "2000", "--orgs", "200", "--latency-ms", "0", "--rate", "100000",
        "--naive-sample", "50", "--memory-scales", "0.5",
        "--database-url", database_url, "--json", str(out),
    ]
    completed = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out.read_text())

    cases = results["cases"]
    assert {"first", "noop", "changed", "apply_users", "partial", "handoff_first", "handoff_noop"} <= set(cases)
    for name in ("first", "noop", "changed", "apply_users", "partial"):
        phases = [p["name"] for p in cases[name]["phases"]]
        assert phases[-4:] == ["snapshot", "diff", "apply", "verify"], (name, phases)
        assert cases[name]["facts"]["rows_still_differing_after"] == 0, name

    # The mirror is read in a step process of its own beside the fetch, as Dagster runs it.
    noop_snapshot = next(p for p in cases["noop"]["phases"] if p["name"] == "snapshot")
    assert noop_snapshot["extra"]["rows"] == sum(results["emulator"]["counts"].values())
    assert noop_snapshot["extra"]["mirror_step"]["read_seconds"] > 0

    first = cases["first"]["facts"]
    assert first["rows_written"]["users"]["insert"] == 2000
    assert sum(first["written_per_database"].values()) == first["total_written"]
    assert cases["noop"]["facts"]["total_written"] == 0
    assert sum(cases["noop"]["facts"]["written_per_database"].values()) == 0
    assert cases["changed"]["facts"]["rows_written"]["users"]["update"] == 20  # 1% of 2000
    assert cases["apply_users"]["facts"]["rows_written"]["users"]["update"] == 2000
    assert cases["partial"]["facts"]["rows_written"]["users"]["update"] == 100

    floors = results["floors"]
    assert floors["bare_download"]["statuses"] == {"200": floors["bare_download"]["requests"]}
    assert floors["load_floor"]["rows"]["users"] == 2000
    assert floors["naive_row_by_row"]["rows"] == 50
    assert [p["users"] for p in results["memory_curve"]] == [1000, 2000]

    targets = {t["target"]: t for t in results["targets"]}
    assert any(name.startswith("full first sync") for name in targets)
    assert targets["no-op sync writes nothing"]["status"] == "held"
    assert "| target | figure | limit | status |" in results["table"]
    assert "| first | fetch |" in completed.stdout
