"""Handing million-row frames between Dagster steps without pickling them.

Dagster's default IO manager (``FilesystemIOManager``) pickles every step output to a
file and unpickles it in the next step: for a first sync at a million users that is the
Clerk snapshot (gigabytes of ``raw`` JSON text) written, read back and held twice.

:class:`FrameFilesystemIOManager` stores the same outputs in the format of
:mod:`sync_pipeline.frame_files`: every DataFrame an Arrow section, memory-mapped back
in place. Paths are the ones ``FilesystemIOManager`` uses (an asset at ``<base_dir>/<asset
key path>``, an op output at ``<base_dir>/<run id>/<step>/<output>``). Only a local
filesystem can be memory-mapped: ``base_dir`` must be a local path (on Kubernetes, a
volume every step's pod mounts). The code location wires it as ``io_manager``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManagerFactory, InitResourceContext, InputContext, OutputContext, UPathIOManager
from pydantic import Field

from sync_pipeline.frame_files import dump_object, load_object, stored_frames

__all__ = ["FrameFileIOManager", "FrameFilesystemIOManager", "dump_object", "load_object", "stored_frames"]


# ------------------------------------------------------------------------------ Dagster


class FrameFileIOManager(UPathIOManager):
    """Stores each output with :func:`dump_object`, loads it with :func:`load_object`."""

    extension: str = ".frames"

    def __init__(self, base_dir: str) -> None:
        from upath import UPath

        base = UPath(base_dir)
        if getattr(base, "protocol", "") not in ("", "file", "local"):
            raise ValueError(f"FrameFilesystemIOManager needs a local directory to memory-map, not {base_dir!r}")
        self.base_dir = base_dir
        super().__init__(base_path=base)

    def dump_to_path(self, context: OutputContext, obj: Any, path: Any) -> None:
        dump_object(obj, Path(str(path)))

    def load_from_path(self, context: InputContext, path: Any) -> Any:
        return load_object(Path(str(path)))


class FrameFilesystemIOManager(ConfigurableIOManagerFactory):
    """Step outputs on the local filesystem, DataFrames as memory-mapped Arrow (see module doc).

    The base directory is ``base_dir``, else the Dagster instance's storage directory
    (``$DAGSTER_HOME/storage``), as for Dagster's ``FilesystemIOManager``.
    """

    base_dir: str | None = Field(default=None, description="Directory for the stored outputs (a local path).")

    def create_io_manager(self, context: InitResourceContext) -> FrameFileIOManager:
        base_dir = self.base_dir
        if base_dir is None:
            if context.instance is None:
                raise ValueError("FrameFilesystemIOManager needs base_dir when there is no Dagster instance")
            base_dir = context.instance.storage_directory()
        return FrameFileIOManager(base_dir=base_dir)
