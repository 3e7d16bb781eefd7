"""fewer_collections tunes the collector for a bulk step and leaves it as it found it, nested or not."""

from __future__ import annotations

import gc
import threading

from sync_pipeline.collector import BULK_THRESHOLD, fewer_collections


def test_the_collector_is_tuned_within_and_restored_after_even_when_nested_or_on_error() -> None:
    before = gc.get_threshold()
    assert before != BULK_THRESHOLD
    try:
        with fewer_collections():
            assert gc.get_threshold() == BULK_THRESHOLD and gc.get_freeze_count() > 0
            with fewer_collections():
                pass
            assert gc.get_threshold() == BULK_THRESHOLD  # the inner exit does not restore early
            raise KeyError("a step that fails")
    except KeyError:
        pass
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_cycle_made_within_is_still_collected() -> None:
    class Node:
        pass

    with fewer_collections():
        node = Node()
        node.self = node
        alive = threading.Event()
        import weakref

        ref = weakref.ref(node, lambda _: alive.set())
        del node
        gc.collect()
        assert ref() is None and alive.is_set()


def test_the_collector_is_off_while_importing_and_back_on_after_even_on_error() -> None:
    from sync_pipeline.collector import no_collections_while_importing

    assert gc.isenabled()
    try:
        with no_collections_while_importing():
            assert not gc.isenabled()
            with no_collections_while_importing():  # nested: the inner exit leaves it off
                pass
            assert not gc.isenabled()
            raise ImportError("a module that fails to import")
    except ImportError:
        pass
    assert gc.isenabled()
    gc.unfreeze()  # what the import froze, back to the collector like every other test's objects


def test_entered_with_the_collector_off_it_stays_off() -> None:
    from sync_pipeline.collector import no_collections_while_importing

    gc.disable()
    try:
        with no_collections_while_importing():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
