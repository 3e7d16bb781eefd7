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
