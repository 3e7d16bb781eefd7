"""The frame IO manager: step outputs round-trip exactly, text columns load without a copy."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize

from sync_pipeline import model
from sync_pipeline.clerk.normalize import normalize
from sync_pipeline.defs.io_managers import FrameFilesystemIOManager, dump_object, load_object, stored_frames
from sync_pipeline.diff.rules import plan_sync
from sync_pipeline.mirror.snapshot import MirrorState
from sync_pipeline.model import Snapshot, SyncScope
from sync_pipeline_tests import fixtures as fx


def _snapshot(users: int = 50) -> Snapshot:
    return Snapshot(
        scope=SyncScope(user_ids=("user_1",), event_ids=("msg_1",)),
        users=normalize(model.USERS, [fx.user(f"user_{i}", f"u{i}@example.com", public_metadata={"n": i}) for i in range(users)]),
        organizations=normalize(model.ORGANIZATIONS, [fx.load("organization")]),
        organization_memberships=normalize(model.MEMBERSHIPS, [fx.load("organization_membership")]),
    )


def _assert_snapshots_equal(a: Snapshot, b: Snapshot) -> None:
    assert a.scope == b.scope
    for entity in model.ENTITIES:
        pd.testing.assert_frame_equal(a.frame(entity), b.frame(entity))


def test_a_snapshot_round_trips_with_its_dtypes(tmp_path: Path) -> None:
    snapshot = _snapshot()
    dump_object(snapshot, tmp_path / "clerk_snapshot")
    loaded = load_object(tmp_path / "clerk_snapshot")
    _assert_snapshots_equal(snapshot, loaded)
    assert loaded.users["raw"].dtype == snapshot.users["raw"].dtype
    assert loaded.users["created_at"].dtype == "Int64"
    assert len(list(stored_frames(tmp_path / "clerk_snapshot"))) == len(model.ENTITIES)  # one frame per entity


def test_a_plan_with_list_columns_and_the_mirror_state_round_trip(tmp_path: Path) -> None:
    clerk = _snapshot()
    mirror = Snapshot(scope=clerk.scope, **{e: model.empty_frame(e, mirror=True) for e in model.ENTITIES})
    state = MirrorState(snapshot=mirror, live_rows=dict.fromkeys(model.ENTITIES, 0))
    plan = plan_sync(clerk, mirror, live_rows_before=state.live_rows)
    dump_object({"plan": plan, "state": state}, tmp_path / "out")
    loaded = load_object(tmp_path / "out")
    for entity in model.ENTITIES:
        pd.testing.assert_frame_equal(plan.entity(entity).upserts, loaded["plan"].entity(entity).upserts)
        pd.testing.assert_frame_equal(plan.entity(entity).deletes, loaded["plan"].entity(entity).deletes)
        pd.testing.assert_frame_equal(state.snapshot.frame(entity), loaded["state"].snapshot.frame(entity))
    assert loaded["plan"].entity(model.USERS).upserts["changed_columns"].tolist()[0] == []
    assert loaded["plan"].counts() == plan.counts()
    assert loaded["state"].live_rows == state.live_rows


def test_odd_frames_round_trip_too(tmp_path: Path) -> None:
    frames = {
        "numpy": pd.DataFrame({"i": np.arange(5), "f": np.linspace(0, 1, 5), "b": np.array([True, False] * 2 + [True])}),
        "nullable": pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int32"), "b": pd.array([True, None, False], dtype="boolean")}),
        "arrow": pd.DataFrame({"s": pd.array(["a", None, "ü"], dtype=pd.ArrowDtype(pa.string()))}),
        "objects": pd.DataFrame({"lists": [[1], [], ["x"]], "dates": pd.to_datetime(["2024-01-01", None, "2025-06-01"])}),
        "empty": model.empty_frame(model.USERS),
        "indexed": pd.DataFrame({"a": [1, 2]}, index=["x", "y"]),
        "duplicate_names": pd.DataFrame([[1, 2]], columns=["a", "a"]),
        "python_strings": pd.DataFrame({"s": pd.array(["a", None], dtype=pd.StringDtype("python"))}),
    }
    frames["numpy"].attrs["source"] = "test"
    dump_object(frames, tmp_path / "odd")
    loaded = load_object(tmp_path / "odd")
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(frame, loaded[name], check_index_type=True)
    assert loaded["numpy"].attrs == {"source": "test"}
    loaded["numpy"].loc[0, "i"] = 42  # numbers come back writable


def test_one_frame_reached_twice_is_stored_once_and_loaded_as_one(tmp_path: Path) -> None:
    frame = _snapshot().users
    dump_object({"a": frame, "b": frame}, tmp_path / "shared")
    loaded = load_object(tmp_path / "shared")
    assert loaded["a"] is loaded["b"]
    assert len(list(stored_frames(tmp_path / "shared"))) == 1


def test_text_columns_load_in_place_without_a_copy(tmp_path: Path) -> None:
    raw = pd.array(["x" * 1000 + str(i) for i in range(20_000)], dtype="string")  # 20 MB of text
    frame = pd.DataFrame({"id": pd.array([str(i) for i in range(20_000)], dtype="string"), "raw": raw})
    dump_object(frame, tmp_path / "big")
    before = pa.total_allocated_bytes()
    loaded = load_object(tmp_path / "big")
    assert pa.total_allocated_bytes() - before < 1_000_000
    assert loaded["raw"].iloc[19_999] == "x" * 1000 + "19999"


def test_a_reader_keeps_its_data_when_the_output_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "asset"
    dump_object(pd.DataFrame({"s": pd.array(["first"] * 3, dtype="string")}), path)
    first = load_object(path)
    dump_object(pd.DataFrame({"s": pd.array(["second"] * 3, dtype="string")}), path)
    assert first["s"].tolist() == ["first"] * 3
    assert load_object(path)["s"].tolist() == ["second"] * 3
    assert [p.name for p in tmp_path.iterdir()] == ["asset"]  # no temporary file left behind


def test_a_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pickle").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a file written by"):
        load_object(tmp_path / "pickle")


def test_dagster_steps_hand_a_snapshot_over_through_it(tmp_path: Path) -> None:
    @asset
    def clerk_snapshot() -> Snapshot:
        return _snapshot(users=200)

    @asset
    def counted(clerk_snapshot: Snapshot) -> dict:
        _assert_snapshots_equal(clerk_snapshot, _snapshot(users=200))
        return clerk_snapshot.row_counts()

    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [clerk_snapshot, counted],
            resources={"io_manager": FrameFilesystemIOManager(base_dir=str(tmp_path))},
            instance=instance,
        )
    assert result.success
    assert result.output_for_node("counted") == {
        **dict.fromkeys(model.ENTITIES, 0), model.USERS: 200, model.ORGANIZATIONS: 1, model.MEMBERSHIPS: 1
    }
    stored = tmp_path / "clerk_snapshot.frames"
    assert stored.exists()
    _assert_snapshots_equal(load_object(stored), _snapshot(users=200))
    assert AssetKey("counted")  # the downstream output is stored the same way
    assert (tmp_path / "counted.frames").exists()


def test_a_remote_base_dir_is_refused() -> None:
    manager = FrameFilesystemIOManager(base_dir="s3://bucket/prefix")
    with pytest.raises(Exception, match="local directory"):
        manager.create_io_manager(None)  # type: ignore[arg-type]


def test_the_sync_job_runs_with_it(harness, tmp_path: Path) -> None:  # noqa: ANN001 - the conftest fixture
    from sync_pipeline.definitions import build_definitions

    defs = build_definitions({**harness.resources(), "io_manager": FrameFilesystemIOManager(base_dir=str(tmp_path))})
    for _ in range(2):  # the first sync writes everything, the second nothing
        result = defs.resolve_job_def("full_sync_job").execute_in_process(
            run_config={"ops": {"sync_scope": {"config": {}}}}, instance=harness.instance, raise_on_error=False
        )
        assert result.success
    assert (tmp_path / "clerk_snapshot.frames").exists()
    assert harness.live_ids(model.USERS) == {u["id"] for u in harness.emulator.store.iter_users()}
