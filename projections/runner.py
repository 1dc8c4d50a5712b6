"""The batched projection runner: a page of the ledger's notification log per transaction.

The library's `ProjectionRunner` processes one event per transaction; this runner reads a
page (`select_notifications`), hands the decoded events to a projection, and records the
page's last notification id with the library's tracking recorder in the same transaction
as the rows the projection wrote. Every notification is tracked, including those a
projection ignores, so "caught up" means exactly `tracking == max_notification_id`.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol, cast

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresTrackingRecorder
from psycopg import Cursor


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
        projection: PageProjection,
        page_size: int = 1000,
    ) -> None:
        self._app = app  # holds the connection pool open: the recorders below use it
        self._events = cast(PostgresApplicationRecorder, app.recorder)
        self._mapper = app.mapper
        self._tracking = tracking
        self._projection = projection
        self._page_size = page_size

    @property
    def position(self) -> int:
        return self._tracking.max_tracking_id(self._projection.name) or 0

    def head(self) -> int:
        return self._events.max_notification_id() or 0

    def run_page(self) -> int:
        """Process the next page; return how many notifications it held (0: caught up)."""
        start = self.position
        page = self._events.select_notifications(start, self._page_size, inclusive_of_start=False)
        if not page:
            return 0
        events = [(n.id, self._mapper.to_domain_event(n)) for n in page]
        with self._tracking.datastore.transaction(commit=True) as curs:
            self._projection.process_page(curs, events)
            # Single-row tracking only moves forward: a second runner of the same
            # projection that processed the same page fails here and rolls back.
            self._tracking._insert_tracking(curs, Tracking(self._projection.name, page[-1].id))
        return len(page)

    def run(self, stop: threading.Event, *, until_idle: bool = False) -> int:
        """Process pages until stopped (or, with until_idle, until caught up); return count."""
        processed = 0
        while not stop.is_set():
            count = self.run_page()
            processed += count
            if count == 0:
                if until_idle and self.position >= self.head():
                    return processed
                stop.wait(0.2)
        return processed
