"""The frame toolkit: picking, dropping and de-duplicating rows of large frames without
copying their text, and spilling raw text to disk.

Frames of a million rows hold gigabytes of Arrow text (the ``raw`` documents) in many
chunks, one per page read. pandas' own row selection first joins those chunks (a copy of
every document to pick a few); these functions work chunk by chunk and copy only what
they keep. Pure functions over frames: the diff, the mirror and the normalizer share them.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import threading
import weakref
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "SPILL_AFTER_BYTES",
    "SPILL_DIR_VARIABLE",
    "RawSpill",
    "dedupe_latest",
    "drop_rows",
    "release_spilled_pages",
    "select_rows",
]


# ------------------------------------------------------------- spilling raw text

# Past this many bytes of raw text, a FrameBuilder writes the raw text of further pages
# to a temporary file and maps it back read-only: a million users' raw objects are
# gigabytes, which then live in the page cache (clean, evictable) rather than in the
# process's own memory. TMPDIR (or SYNC_SPILL_DIR) should be on disk, not in memory.
SPILL_AFTER_BYTES = 64 * 1024 * 1024
SPILL_DIR_VARIABLE = "SYNC_SPILL_DIR"

_mappings: dict[int, tuple[weakref.ref, int]] = {}  # base address -> (mapping, size)
_mappings_lock = threading.Lock()


def _register(mapping: mmap.mmap, address: int, size: int) -> None:
    def forget(_: object, address: int = address) -> None:
        with _mappings_lock:
            _mappings.pop(address, None)

    with _mappings_lock:
        _mappings[address] = (weakref.ref(mapping, forget), size)


def release_spilled_pages(values: Any) -> int:
    """Let go of the resident pages of spilled raw text that ``values`` points into.

    For a reader that has just gone through a slice of a large raw column (the staging
    COPY, the IO manager): the pages stay in the page cache and come back on the next
    access, but stop counting in this process's memory. Anything not spilled is left
    alone. Returns the bytes released.
    """
    if isinstance(values, pd.Series):
        values = values.array
    if hasattr(values, "__arrow_array__"):
        values = values.__arrow_array__()
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    released = 0
    with _mappings_lock:
        mappings = [(base, ref(), size) for base, (ref, size) in _mappings.items()]
    for chunk in chunks:
        buffers = chunk.buffers()
        data = buffers[-1] if buffers else None
        if data is None or data.size == 0:
            continue
        for base, mapping, size in mappings:
            if mapping is None or not base <= data.address < base + size:
                continue
            start = (data.address - base) // mmap.PAGESIZE * mmap.PAGESIZE
            end = min(size, -(-(data.address - base + data.size) // mmap.PAGESIZE) * mmap.PAGESIZE)
            if end > start:
                mapping.madvise(mmap.MADV_DONTNEED, start, end - start)
                released += end - start
            break
    return released


class RawSpill:
    """Raw text of a builder's pages, appended to an unlinked temporary file."""

    def __init__(self) -> None:
        directory = os.environ.get(SPILL_DIR_VARIABLE) or None
        self._file = tempfile.TemporaryFile(prefix="sync-pipeline-raw-", dir=directory)
        self.size = 0

    def append(self, data: bytes) -> int:
        offset = self.size
        self._file.write(data)
        self.size += len(data)
        return offset

    def mapped(self) -> pa.Buffer:
        """The whole file so far, mapped read-only (the mapping outlives the file)."""
        self._file.flush()
        mapping = mmap.mmap(self._file.fileno(), self.size, access=mmap.ACCESS_READ)
        buffer = pa.py_buffer(mapping)
        _register(mapping, buffer.address, self.size)
        return buffer



# ------------------------------------------------------------- rows


def dedupe_latest(frame: pd.DataFrame, key: str | list[str] = "id") -> tuple[pd.DataFrame, np.ndarray]:
    """Keep one row per ``key``: the greatest ``updated_at`` (NA counts as oldest), ties the last.

    Rows with a null in any key column are always kept.
    Returns the kept rows (in their original order, index reset) and the positions of the
    dropped rows in ``frame``. Cheap when there is nothing to drop.
    """
    keys = [key] if isinstance(key, str) else list(key)
    if len(frame) < 2:
        return frame.reset_index(drop=True), np.empty(0, dtype=np.int64)
    repeated = frame.duplicated(keys, keep=False).to_numpy(dtype=bool, copy=True)
    for k in keys:  # a row with a null key is nobody's repeat
        repeated &= frame[k].notna().to_numpy(dtype=bool)
    if not repeated.any():
        return frame.reset_index(drop=True), np.empty(0, dtype=np.int64)
    # Only rows of repeated keys need ranking; ``keep="last"`` after a stable sort by
    # (updated_at, position) keeps the newest, ties the last seen.
    positions = np.flatnonzero(repeated)
    sub = select_rows(frame[[*keys, "updated_at"]], repeated)
    ranked = pd.DataFrame(
        {
            **{f"k{i}": sub[k].to_numpy(dtype=object, na_value=None) for i, k in enumerate(keys)},
            "u": sub["updated_at"].to_numpy(dtype="float64", na_value=-np.inf),
            "pos": positions,
        }
    ).sort_values(["u", "pos"], kind="stable")
    dropped_mask = ranked.duplicated([f"k{i}" for i in range(len(keys))], keep="last")
    dropped = np.sort(ranked.loc[dropped_mask, "pos"].to_numpy())
    return drop_rows(frame, dropped), dropped


def drop_rows(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """``frame`` without the rows at ``positions`` (sorted), index reset.

    A few rows out of a million are dropped without copying the text: Arrow string
    columns are re-assembled from zero-copy slices around the dropped rows (a filter
    would copy every ``raw`` document, gigabytes for a million users).
    """
    n = len(frame)
    keep = np.ones(n, dtype=bool)
    keep[positions] = False
    if len(positions) == 0:
        return frame.reset_index(drop=True)
    if len(positions) > max(64, n // 1000):
        return select_rows(frame, keep)
    starts = np.concatenate([[0], positions + 1])
    ends = np.concatenate([positions, [n]])
    runs = [(int(a), int(b - a)) for a, b in zip(starts, ends) if b > a]
    columns = {}
    for name in frame.columns:
        values = frame[name].array
        if isinstance(values, pd.arrays.ArrowStringArray):
            whole = values.__arrow_array__()
            whole = whole if isinstance(whole, pa.ChunkedArray) else pa.chunked_array([whole])
            chunks = [chunk for start, length in runs for chunk in whole.slice(start, length).chunks]
            columns[name] = pd.arrays.ArrowStringArray(pa.chunked_array(chunks, type=whole.type))
        else:
            columns[name] = values[keep]
    return pd.DataFrame(columns)


def select_rows(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """``frame[mask]``, index reset, with Arrow string columns filtered chunk by chunk.

    pandas selects rows with a ``take``, which on a column of many Arrow chunks (one
    per page) first joins all the chunks: a copy of every ``raw`` document to pick a few.
    A filter works chunk by chunk and copies only what it keeps.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.all():
        return frame.reset_index(drop=True)
    arrow_mask = pa.array(mask)
    columns = {}
    for name in frame.columns:
        values = frame[name].array
        if isinstance(values, pd.arrays.ArrowStringArray):
            kept = pc.filter(values.__arrow_array__(), arrow_mask)
            if isinstance(kept, pa.ChunkedArray):
                kept = pa.chunked_array([c for c in kept.chunks if len(c)], type=kept.type)
            columns[name] = pd.arrays.ArrowStringArray(kept)
            release_spilled_pages(values)  # the filter faulted in spilled raw text around what it kept
        else:
            columns[name] = values[mask]
    return pd.DataFrame(columns, columns=frame.columns)


