"""The batched projection runner: a page of the ledger's notification log per transaction.

The library's `ProjectionRunner` processes one event per transaction; this runner reads a
page (`select_notifications`), decodes it once, hands it to each projection, and records
each projection's position with the library's tracking recorder in the same transaction
as the rows they wrote. Every notification is tracked, including those a projection
ignores, so "caught up" means exactly `tracking == max_notification_id`. A projection
added later starts from its own position: the page starts at the lowest one, and each
projection sees only what it has not processed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresTrackingRecorder
from psycopg import Cursor

NOTIFY_CHANNEL = "ledger_projections"
"""Each committed page sends a notice here (payload: its last notification id)."""


class PageProjection(Protocol):
    name: str

    def process_page(self, curs: Cursor[Any], events: list[tuple[int, Any]]) -> None:
        """Apply a page of (notification id, decoded domain event); write rows with `curs`
        (the runner commits)."""


class BatchedRunner:
    def __init__(
        self,
        app: Application[Any],
        tracking: PostgresTrackingRecorder,
        projections: Sequence[PageProjection],
        page_size: int = 1000,
    ) -> None:
        self._app = app  # holds the connection pool open: the recorders below use it
        self._events = cast(PostgresApplicationRecorder, app.recorder)
        self._mapper = app.mapper
        self._tracking = tracking
        self._projections = list(projections)
        self._page_size = page_size

    def positions(self) -> dict[str, int]:
        """Each projection's position: the last notification id it has processed."""
        return {p.name: self._tracking.max_tracking_id(p.name) or 0 for p in self._projections}

    @property
    def position(self) -> int:
        """The position every projection has reached."""
        return min(self.positions().values())

    def head(self) -> int:
        return self._events.max_notification_id() or 0

    def run_page(self) -> int:
        """Process the next page; return how many notifications it held (0: caught up)."""
        positions = self.positions()
        start = min(positions.values())
        page = self._events.select_notifications(start, self._page_size, inclusive_of_start=False)
        if not page:
            return 0
        events = [(n.id, self._mapper.to_domain_event(n)) for n in page]
        with self._tracking.datastore.transaction(commit=True) as curs:
            for projection in self._projections:
                done = positions[projection.name]
                if done >= page[-1].id:
                    continue
                projection.process_page(curs, [e for e in events if e[0] > done])
                # Single-row tracking only moves forward: a second runner of the same
                # projection that processed the same page fails here and rolls back.
                self._tracking._insert_tracking(curs, Tracking(projection.name, page[-1].id))
            # Delivered on commit: the API's profile caches look for changed rows at once.
            curs.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(page[-1].id)))
        return len(page)

    def run(
        self,
        stop: threading.Event,
        *,
        until_idle: bool = False,
        housekeeping: Callable[[], object] = lambda: None,
    ) -> int:
        """Process pages until stopped (or, with until_idle, until caught up); return count.

        `housekeeping` runs after every page and every idle wait: the audience clock pass
        and the relay, so they share this loop's process and never race it."""
        processed = 0
        while not stop.is_set():
            count = self.run_page()
            processed += count
            housekeeping()
            if count == 0:
                if until_idle and self.position >= self.head():
                    return processed
                stop.wait(0.2)
        return processed
