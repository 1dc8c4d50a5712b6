"""Noticing a stalled ingest: a worker that owns no partition while records wait.

Kafka gives a worker no partition when the group has more workers than partitions, which
is fine: the others record. It is a stall when, over a whole window, this worker owns
nothing, records wait on the topic, and the stored offsets (which every worker moves in
its batch's transaction) did not move: nobody records. The embedded broker can leave a
group that way (a join that names a departed leader): every member joins and none is
given a partition, for ever. Kafka does not report it, so the worker must notice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

Progress = tuple[int, tuple[int, ...]]
"""Records waiting on the topic past the stored offsets, and the stored offsets."""


@dataclass(frozen=True)
class Stalled:
    seconds: float  # how long this worker has owned no partition
    waiting: int  # records nobody recorded meanwhile


class StallWatch:
    """Watches one worker's ownership; `check` answers `Stalled` once per stall."""

    def __init__(
        self,
        after: float,
        progress: Callable[[], Progress],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._after = after
        self._progress = progress
        self._clock = clock
        self._since: float | None = None  # owning nothing since
        self._then: tuple[int, ...] = ()  # the stored offsets then
        self._told = False

    def check(self, owns_partitions: bool) -> Stalled | None:
        """Call between polls. Costs a look at Kafka and PostgreSQL once per window."""
        now = self._clock()
        if owns_partitions:
            self._since, self._told = None, False
            return None
        if self._since is None:
            self._since, self._then = now, self._progress()[1]
            return None
        if now - self._since < self._after or self._told:
            return None
        waiting, stored = self._progress()
        if waiting == 0 or stored != self._then:
            self._since, self._then = now, stored  # nothing waits, or others record
            return None
        self._told = True
        return Stalled(now - self._since, waiting)
