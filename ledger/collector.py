"""Python's garbage collector in a worker process: the ingest worker's batches make
hundreds of thousands of short-lived objects each, and the collector's default pace is
sized for small programs (measured with `bench/ingest.py`: ingest ~9% faster)."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

GC_YOUNG_THRESHOLD = 50_000
"""Allocations between young collections: a batch of 5,000 records makes hundreds of
thousands of short-lived objects, and at Python's default (700) the collector ran
hundreds of times a batch, each pass also walking the survivors it promotes."""


_lock = threading.Lock()
_running = 0  # workers inside `collecting_less` (tests run several in one process)
_before: tuple[int, int, int] = gc.get_threshold()


@contextlib.contextmanager
def collecting_less() -> Iterator[None]:
    """While a worker runs: what start-up made (modules, clients: never garbage) frozen
    out of the collector's way, and the young generation collected once per
    `GC_YOUNG_THRESHOLD` allocations. Reference counting frees almost everything ingest
    makes; the collector is only for cycles, so running it less keeps no memory. The last
    worker to leave restores the collector, for a process that goes on to other work
    (`ledger demo`, the tests)."""
    global _running, _before
    with _lock:
        if _running == 0:
            _before = gc.get_threshold()
            gc.collect()
            gc.freeze()
            gc.set_threshold(GC_YOUNG_THRESHOLD, _before[1], _before[2])
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                gc.set_threshold(*_before)
                gc.unfreeze()
