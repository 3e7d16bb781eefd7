"""The ``mirror_snapshot`` step in a process of its own, running beside the fetch.

Under Dagster's multiprocess executor (the default, on two cores two steps at a time)
``clerk_snapshot`` and ``mirror_snapshot`` both wait only on ``sync_scope``, so each runs
in its own process at the same time, and the plan step loads the mirror's frames from
the IO manager's file. The benchmark does the same: a process started (and its imports
paid, as Dagster's step launch is not measured either) before the sync, told to read
when the fetch starts; it writes the snapshot with the frame IO manager's format and
exits, and the main process maps the file back.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sync_pipeline.model import SyncScope


def _step(conn: Connection, database_url: str, schema: str, scope: SyncScope, path: str) -> None:  # in the child
    from sync_pipeline.frame_files import dump_object
    from sync_pipeline.mirror.database import create_mirror_engine
    from sync_pipeline.mirror.snapshot import read_mirror

    engine = create_mirror_engine(database_url)
    conn.send("ready")
    if conn.recv() != "read":
        return
    try:
        started = time.perf_counter()
        state = read_mirror(engine, schema, scope)
        read_seconds = time.perf_counter() - started
        dump_object(state, Path(path))
        conn.send({"read_seconds": read_seconds, "store_seconds": time.perf_counter() - started - read_seconds})
    except BaseException as error:  # the parent re-raises it
        conn.send({"error": f"{type(error).__name__}: {error}"})
    finally:
        engine.dispose()


class MirrorSnapshotStep:
    """``with MirrorSnapshotStep(...) as step: step.start(); …; state = step.result()``."""

    def __init__(self, database_url: str, schema: str, scope: SyncScope) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="bench-mirror-step-", dir=os.environ.get("BENCH_TMPDIR"))
        self._path = str(Path(self._directory.name) / "mirror_snapshot")
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_step, args=(child, database_url, schema, scope, self._path), name="mirror-snapshot-step", daemon=True
        )
        self.timings: dict[str, float] = {}

    def __enter__(self) -> "MirrorSnapshotStep":
        self._process.start()
        if not self._conn.poll(120) or self._conn.recv() != "ready":
            raise RuntimeError("the mirror snapshot step's process did not start within 120 s")
        return self

    def start(self) -> None:
        self._conn.send("read")

    def result(self) -> Any:
        from sync_pipeline.frame_files import load_object

        reply = self._conn.recv()
        self._process.join(60)
        if "error" in reply:
            raise RuntimeError(f"the mirror snapshot step failed: {reply['error']}")
        self.timings = {k: round(v, 3) for k, v in reply.items()}
        return load_object(Path(self._path))

    def __exit__(self, *exc: object) -> None:
        if self._process.is_alive():
            self._process.kill()
            self._process.join(10)
        self._conn.close()
        # The mapped file may still back frames the caller holds: unlinking keeps the pages.
        self._directory.cleanup()
