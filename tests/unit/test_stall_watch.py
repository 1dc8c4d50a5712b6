"""The stall watch: owning no partition is a stall only when records wait and nobody
records them for a whole window; said once."""

from __future__ import annotations

from ledger.stall import Progress, Stalled, StallWatch


class Scene:
    def __init__(self) -> None:
        self.now = 0.0
        self.progress: Progress = (10, (0, 0))

    def watch(self) -> StallWatch:
        return StallWatch(30.0, lambda: self.progress, lambda: self.now)


def test_owning_nothing_while_records_wait_and_nobody_records_is_said_once() -> None:
    scene = Scene()
    watch = scene.watch()
    assert watch.check(False) is None
    scene.now = 29.0
    assert watch.check(False) is None
    scene.now = 31.0
    assert watch.check(False) == Stalled(31.0, 10)
    scene.now = 90.0
    assert watch.check(False) is None  # said once


def test_others_recording_or_nothing_waiting_is_no_stall() -> None:
    scene = Scene()
    watch = scene.watch()
    watch.check(False)
    scene.now, scene.progress = 31.0, (8, (2, 0))  # another worker moved an offset
    assert watch.check(False) is None
    scene.now, scene.progress = 62.0, (0, (2, 0))  # nothing waits
    assert watch.check(False) is None
    scene.now, scene.progress = 80.0, (5, (2, 0))
    assert watch.check(False) is None  # a new window began at 62
    scene.now = 93.0
    assert watch.check(False) == Stalled(31.0, 5)


def test_an_assignment_ends_the_window() -> None:
    scene = Scene()
    watch = scene.watch()
    watch.check(False)
    scene.now = 20.0
    assert watch.check(True) is None
    scene.now = 40.0
    assert watch.check(False) is None  # owning nothing again since 40
    scene.now = 71.0
    assert watch.check(False) == Stalled(31.0, 10)


def test_an_offset_counts_only_in_its_own_log() -> None:
    from consumers.log_ids import StoredOffset, log_id, resume_at, same_log

    assert log_id("cl", "t-1") == "cl/t-1" and log_id("cl", None) == "cl"
    assert same_log("cl/t-1", "cl/t-1")
    assert not same_log("cl/t-1", "cl/t-2")  # the topic was created again
    assert not same_log("old/t-1", "cl/t-1")  # a new broker
    assert same_log("cl", "cl/t-1")  # stored before topic ids were kept
    assert resume_at(StoredOffset(0, 42, "cl/t-1"), "cl/t-2") == 0
    assert resume_at(StoredOffset(0, 42, "cl"), "cl/t-2") == 42
