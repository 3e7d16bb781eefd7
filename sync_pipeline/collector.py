"""Python's garbage collector held back while a step builds millions of objects.

Decoding Clerk's pages and building frames allocates millions of small objects that all
live until the step ends, none of them in reference cycles worth finding. At the default
thresholds CPython runs a full collection over all of them again and again: decoding and
keeping the 467 pages of 100,000 users took 3.9 to 5.9 s by default and 2.0 s with
everything imported frozen out of the collector and a gen-0 threshold of 100,000
(benchmarks/sync_command.py --gc-experiment, docs/performance.md). Held back, not off:
cycles are still collected, less often; the cost is some more peak memory.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLD = (100_000, 50, 50)

_lock = threading.Lock()
_depth = 0
_saved_threshold: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Within: what exists on entry is frozen out of collections, and collections are rarer.

    Nests and may be entered from several threads: the first to enter tunes, the last to leave restores.
    """
    global _depth, _saved_threshold
    with _lock:
        if _depth == 0:
            _saved_threshold = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(*BULK_THRESHOLD)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*(_saved_threshold or gc.get_threshold()))
                gc.unfreeze()


@contextmanager
def no_collections_while_importing() -> Iterator[None]:
    """Within: the collector is off, for the imports of a process's start.

    Importing Dagster, pandas, SQLAlchemy and the code location builds hundreds of
    thousands of objects that live as long as the process (modules, classes, functions)
    and no garbage, yet the default thresholds run the collector over them again and
    again: ``import sync_pipeline.definitions`` took 1.86-2.04 s in a fresh Python with
    the collector on and 1.43-1.52 s with it off (three runs each, docs/performance.md).
    Every run worker the daemon starts pays it before its first step, and so does every
    command. Nested or entered with the collector already off, it leaves it as it found it.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        # Frozen first: turned back on with every object just built counted as new, the
        # collector would at once walk them all (about 0.1 s); they live as long as the
        # process anyway. fewer_collections() unfreezes them again when its scan ends.
        gc.freeze()
        gc.enable()
