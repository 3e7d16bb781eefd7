"""What a run's steps produce reads as that run's work: a partial run does not pass for the full picture."""

from __future__ import annotations

from dagster import AssetKey

from sync_pipeline.defs.metadata import table_counts
from sync_pipeline_tests.harness import SyncHarness

CLERK_SNAPSHOT = AssetKey("clerk_snapshot")


def test_a_partial_read_is_tagged_as_such_and_carries_the_last_full_read_forward(harness: SyncHarness) -> None:
    full = harness.run()
    assert full.success
    full_read = harness.instance.get_latest_materialization_event(CLERK_SNAPSHOT).asset_materialization
    assert full_read.tags["sync_pipeline/scope"] == "full" and full_read.tags["sync_pipeline/dry_run"] == "false"
    users_in_clerk = sum(1 for _user in harness.emulator.store.iter_users())
    assert table_counts(full_read.metadata["rows_read"])["users"]["rows"] == users_in_clerk

    user_id = next(iter(harness.emulator.store.iter_users()))["id"]
    for _ in range(2):  # the second partial run finds a partial run latest: it carries the same full read on
        partial = harness.run(user_ids=[user_id], dry_run=True)
        assert partial.success
        latest = harness.instance.get_latest_materialization_event(CLERK_SNAPSHOT)
        read = latest.asset_materialization
        assert latest.run_id == partial.run_id
        assert read.tags["sync_pipeline/scope"] == "partial" and read.tags["sync_pipeline/dry_run"] == "true"
        assert read.metadata["scope"].value.startswith("scoped: 1 user(s)")
        assert table_counts(read.metadata["rows_read"])["users"]["rows"] == 1  # this run's work
        assert read.metadata["last_full_read_run"].value == full.run_id  # and the whole instance, as last read
        assert read.metadata["last_full_read_rows"] == full_read.metadata["rows_read"]

    # Every step of the partial run tags what it produced the same way.
    for key in (AssetKey("sync_scope"), AssetKey("mirror_snapshot"), AssetKey("sync_plan")):
        assert harness.instance.get_latest_materialization_event(key).asset_materialization.tags["sync_pipeline/scope"] == "partial"
