"""Both sync jobs run their steps in one process unless a run asks for another executor.

A step per process costs a Python start and the code location's imports per step
(docs/performance.md measures it); the steps of a sync run one after the other anyway.
"""

from __future__ import annotations

import pytest
from dagster._core.system_config.objects import ResolvedRunConfig

from sync_pipeline.definitions import build_definitions, build_resources
from sync_pipeline.defs.run_config import OPTIONS_STEP, sync_run_config

SENSOR_LIKE = sync_run_config({"user_ids": ["user_1"], "webhook_event_ids": ["msg_1"]})


@pytest.fixture
def definitions(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CLERK_SECRET_KEY", "sk_test_executors")
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    return build_definitions(build_resources())


@pytest.mark.parametrize("job_name", ["full_sync_job", "partial_sync_job"])
def test_a_run_with_only_its_sync_options_runs_in_process(definitions, job_name: str) -> None:
    job = definitions.resolve_job_def(job_name)
    for run_config in ({}, SENSOR_LIKE):
        resolved = ResolvedRunConfig.build(job, run_config)
        assert list(resolved.execution.execution_engine_config) == ["in_process"], run_config
    assert ResolvedRunConfig.build(job, SENSOR_LIKE).ops[OPTIONS_STEP].config["user_ids"] == ["user_1"]


@pytest.mark.parametrize("job_name", ["full_sync_job", "partial_sync_job"])
def test_a_run_may_still_ask_for_a_process_per_step(definitions, job_name: str) -> None:
    job = definitions.resolve_job_def(job_name)
    resolved = ResolvedRunConfig.build(job, {**SENSOR_LIKE, "execution": {"config": {"multiprocess": {}}}})
    assert list(resolved.execution.execution_engine_config) == ["multiprocess"]
