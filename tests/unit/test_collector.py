"""The ingest worker's collector settings: raised while workers run, restored after the last
one leaves (tests and `ledger demo` run workers inside a process that goes on)."""

from __future__ import annotations

import gc

from ledger.collector import GC_YOUNG_THRESHOLD, collecting_less


def test_the_collector_is_restored_when_the_last_of_two_workers_leaves() -> None:
    before = gc.get_threshold()
    with collecting_less():
        with collecting_less():
            assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
            assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD  # the other worker still runs
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
