"""The code location loads as Dagster loads it: jobs, schedule, assets, checks, validation."""

from __future__ import annotations

import os
import subprocess
import sys

from dagster import AssetKey, DefaultScheduleStatus

from sync_pipeline.definitions import defs


def test_the_full_sync_job_and_its_daily_schedule_are_defined() -> None:
    job = defs.resolve_job_def("full_sync_job")
    schedule = defs.resolve_schedule_def("daily_full_sync")

    assert schedule.job_name == job.name
    assert schedule.cron_schedule == "0 3 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING


def test_the_asset_graph_runs_from_snapshots_to_the_mirror_tables() -> None:
    graph = defs.resolve_asset_graph()
    keys = set(graph.get_all_asset_keys())
    mirror = {AssetKey(["clerk_mirror", t]) for t in ("users", "organizations", "organization_memberships")}

    assert {AssetKey("clerk_snapshot"), AssetKey("mirror_snapshot"), AssetKey("sync_plan")} | mirror <= keys
    # sync_scope's value carries the run's options (dry_run, the guard, the kinds) besides the scope.
    assert graph.get(AssetKey("sync_plan")).parent_keys == {
        AssetKey("sync_scope"), AssetKey("clerk_snapshot"), AssetKey("mirror_snapshot")
    }
    for key in mirror:
        assert {AssetKey("sync_scope"), AssetKey("sync_plan")} <= graph.get(key).parent_keys


def test_steps_hand_frames_over_as_memory_mapped_arrow_not_pickles() -> None:
    from sync_pipeline.defs.io_managers import FrameFilesystemIOManager

    assert isinstance(defs.resources["io_manager"], FrameFilesystemIOManager)


def test_the_guard_blocks_and_the_integrity_checks_sit_beside_their_tables() -> None:
    checks = {(key.asset_key.to_user_string(), key.name) for key in defs.resolve_asset_graph().asset_check_keys}

    assert ("sync_plan", "delete_guard") in checks
    assert ("clerk_mirror/organization_memberships", "no_duplicate_live_memberships") in checks
    assert ("clerk_mirror/organization_memberships", "memberships_point_at_live_rows") in checks
    for table in ("users", "organizations", "organization_memberships"):
        assert (f"clerk_mirror/{table}", "matches_clerk") in checks
    guard_key = next(k for k in defs.resolve_asset_graph().asset_check_keys if k.name == "delete_guard")
    assert defs.get_asset_checks_def(guard_key).get_spec_for_check_key(guard_key).blocking


def test_dagster_definitions_validate_passes_without_any_environment(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLERK_", "DATABASE_URL", "SYNC_", "DAGSTER_HOME"))}
    env["DAGSTER_HOME"] = str(tmp_path)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "sync_pipeline.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_with_no_application_tables_declared_their_asset_is_plainly_off_and_outside_the_jobs(monkeypatch) -> None:
    from sync_pipeline.definitions import APP_TABLES_OFF_GROUP, build_definitions, build_resources

    monkeypatch.delenv("SYNC_APP_TABLES", raising=False)
    off = build_definitions(build_resources())
    spec = off.resolve_assets_def(AssetKey("app_tables")).specs_by_key[AssetKey("app_tables")]
    assert spec.group_name == APP_TABLES_OFF_GROUP and spec.description.startswith("Off: SYNC_APP_TABLES is not set")
    graph = off.resolve_asset_graph()
    for table in ("users", "organizations", "organization_memberships"):  # written by the same step: untouched
        assert graph.get(AssetKey(["clerk_mirror", table])).group_name == "clerk_mirror"
        assert not (graph.get(AssetKey(["clerk_mirror", table])).description or "").startswith("Off")
    selected = off.resolve_job_def("full_sync_job").asset_layer.selected_asset_keys
    assert AssetKey("app_tables") not in selected and AssetKey(["clerk_mirror", "users"]) in selected

    monkeypatch.setenv("SYNC_APP_TABLES", "examples/app_tables.yaml")
    on = build_definitions(build_resources())
    assert on.resolve_assets_def(AssetKey("app_tables")).specs_by_key[AssetKey("app_tables")].group_name == "clerk_sync"
    assert AssetKey("app_tables") in on.resolve_job_def("full_sync_job").asset_layer.selected_asset_keys


def test_dagster_and_dg_load_the_code_location_from_the_repository_root_with_no_environment() -> None:
    """What a newcomer types first in a clean clone: the root dagster.yaml must need nothing set."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLERK_", "DATABASE_URL", "SYNC_", "DAGSTER_"))}
    bin_dir = Path(sys.executable).parent
    for command in (
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "sync_pipeline.definitions"],
        [str(bin_dir / "dg"), "check", "defs"],
    ):
        completed = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=180)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert "Traceback" not in completed.stdout + completed.stderr


def test_a_runs_options_are_one_config_schema_for_the_launchpad_the_schedule_and_the_cli(monkeypatch) -> None:  # noqa: ANN001
    import pytest
    import yaml
    from dagster import DagsterInvalidConfigError, build_schedule_context, validate_run_config

    from sync_pipeline.defs.run_config import SyncRunConfig, sync_run_config

    launchpad = yaml.safe_load(
        "ops:\n  sync_scope:\n    config:\n      dry_run: true\n      user_ids: [user_2nQ7zXc3PqLm9RtY6uVb1WsKdHe]\n"
    )
    cli = sync_run_config(SyncRunConfig(dry_run=True, user_ids=["user_2nQ7zXc3PqLm9RtY6uVb1WsKdHe"]))
    # Validating resolves the resources' EnvVars too; nothing connects.
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    monkeypatch.setenv("CLERK_SECRET_KEY", "sk_test_validation_only")
    assert cli == launchpad
    for job_name in ("full_sync_job", "partial_sync_job"):
        job = defs.resolve_job_def(job_name)
        resolved = validate_run_config(job, launchpad)
        assert resolved["ops"]["sync_scope"]["config"]["max_delete_share"] == 0.1  # the defaults filled in
        assert "sync_options" not in resolved.get("resources", {})
        with pytest.raises(DagsterInvalidConfigError):
            validate_run_config(job, {"resources": {"sync_options": {"config": {"dry_run": True}}}})

    schedule = defs.resolve_schedule_def("daily_full_sync")
    [request] = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=None)).run_requests
    assert request.run_config == {"ops": {"sync_scope": {"config": {}}}}
    validate_run_config(defs.resolve_job_def("full_sync_job"), request.run_config)
