"""FrameBuilder's raw-text spill (a memory bound of issue 5): the frame is the same, spilled or not."""

from __future__ import annotations

import pandas as pd
import psutil
import pytest

from sync_pipeline import model
from sync_pipeline.clerk.normalize import FrameBuilder, release_spilled_pages
from sync_pipeline.defs.io_managers import dump_object, load_object
from sync_pipeline.mirror.staging import stage_table
from sync_pipeline_tests import fixtures as fx


def _pages(count: int, size: int, *, repeat_every: int = 0) -> list[list[dict]]:
    pages = []
    for p in range(count):
        page = [fx.user(f"user_{p}_{i}", f"u{p}.{i}@example.com", first_name="Zoë" * (i % 5), updated_at=1_700_000_000_000 + i)
                for i in range(size)]
        if repeat_every and p and p % repeat_every == 0:  # a row seen again on a later page, newer
            page.append(fx.user("user_0_0", "moved@example.com", updated_at=1_800_000_000_000))
        pages.append(page)
    return pages


def _build(pages: list[list[dict]], spill_after_bytes: int | None, *, frame_between: bool = False) -> tuple[pd.DataFrame, FrameBuilder]:
    builder = FrameBuilder(model.USERS, spill_after_bytes=spill_after_bytes)
    for number, page in enumerate(pages):
        builder.add_page(page)
        if frame_between and number == len(pages) // 2:
            builder.frame()
    return builder.frame(), builder


@pytest.mark.parametrize("frame_between", [False, True])
def test_a_spilled_frame_equals_the_in_memory_one(frame_between: bool) -> None:
    pages = _pages(6, 40, repeat_every=2)
    in_memory, kept = _build(pages, spill_after_bytes=10**12, frame_between=frame_between)
    spilled, builder = _build(pages, spill_after_bytes=20_000, frame_between=frame_between)
    assert kept.spilled_bytes == 0 and builder.spilled_bytes > 0
    pd.testing.assert_frame_equal(in_memory, spilled)
    assert builder.repeats_dropped == kept.repeats_dropped == 2
    assert builder.repeated_ids == kept.repeated_ids


def test_released_pages_read_back_the_same() -> None:
    frame, builder = _build(_pages(20, 100), spill_after_bytes=0)
    before = frame["raw"].tolist()
    assert release_spilled_pages(frame["raw"]) >= builder.spilled_bytes
    assert frame["raw"].tolist() == before
    assert release_spilled_pages(pd.array(["not spilled"], dtype="string")) == 0


def test_spilled_raw_leaves_the_process_memory_after_a_reader_releases_it() -> None:
    process = psutil.Process()
    frame, builder = _build(_pages(60, 500), spill_after_bytes=0)  # ~15 MB of raw text
    assert builder.spilled_bytes > 10_000_000
    table = stage_table(model.USERS, frame.assign(change_kind=pd.array(["insert"] * len(frame), dtype="string")))
    assert table.column("raw").to_pylist()[-1] == frame["raw"].iloc[-1]  # every page touched
    touched = process.memory_info().rss
    release_spilled_pages(frame["raw"])
    assert process.memory_info().rss < touched - builder.spilled_bytes // 2


def test_the_io_manager_stores_a_spilled_frame(tmp_path) -> None:  # noqa: ANN001
    frame, _ = _build(_pages(5, 50), spill_after_bytes=0)
    dump_object(frame, tmp_path / "users")
    pd.testing.assert_frame_equal(load_object(tmp_path / "users"), frame)
