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

from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.sql import SQL, Identifier

from store.event_rows import domain_event

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
        *,
        stop: int | None = None,
        accept: Callable[[Any], bool] | None = None,
        skip_unreadable: bool = False,
    ) -> None:
        """`stop`: the last notification to process (default: none, follow the ledger);
        `accept`: which events the projections see (the others are tracked, not applied);
        `skip_unreadable`: leave out records that cannot be decoded into events instead of
        stopping (a replay for `ledger verify`, which reports them from the chain check).

        The projections write the schema the tracking recorder's datastore names: a replay
        gives it a scratch schema, and its pages set that schema first on the search path.
        """
        self._app = app  # holds the connection pool open: the recorders below use it
        self._events = cast(PostgresApplicationRecorder, app.recorder)
        self._mapper = app.mapper
        self._tracking = tracking
        self._projections = list(projections)
        self._page_size = page_size
        self._stop = stop
        self._accept = accept
        self._skip_unreadable = skip_unreadable
        self.skipped = 0  # records left out as unreadable
        self._schema = tracking.datastore.schema

    def close(self) -> None:
        """Close the tracking recorder's connections (the application closes its own)."""
        if self._tracking.datastore is not self._events.datastore:
            self._tracking.datastore.close()

    def positions(self) -> dict[str, int]:
        """Each projection's position: the last notification id it has processed."""
        return {p.name: self._tracking.max_tracking_id(p.name) or 0 for p in self._projections}

    @property
    def position(self) -> int:
        """The position every projection has reached."""
        return min(self.positions().values())

    def head(self) -> int:
        """The last notification this runner will process."""
        head = self._events.max_notification_id() or 0
        return head if self._stop is None else min(head, self._stop)

    def run_page(self) -> int:
        """Process the next page; return how many notifications it held (0: caught up)."""
        positions = self.positions()
        start = min(positions.values())
        page = self._events.select_notifications(
            start, self._page_size, self._stop, inclusive_of_start=False
        )
        if not page:
            return 0
        events = [(n.id, e) for n in page if (e := self._decode(n)) is not None]
        if self._accept is not None:
            events = [e for e in events if self._accept(e[1])]
        with self._tracking.datastore.transaction(commit=True) as curs:
            if self._schema != "public":
                curs.execute(
                    SQL("SET LOCAL search_path TO {}, public").format(Identifier(self._schema))
                )
            for projection in self._projections:
                done = positions[projection.name]
                if done >= page[-1].id:
                    continue
                projection.process_page(curs, [e for e in events if e[0] > done])
                # Single-row tracking only moves forward: a second runner of the same
                # projection that processed the same page fails here and rolls back.
                # The library's private insert: its public `insert_tracking` commits in a
                # transaction of its own, and the position must commit with the page's rows.
                self._tracking._insert_tracking(curs, Tracking(projection.name, page[-1].id))
            if self._schema == "public":
                # Delivered on commit: the API's profile caches look for changed rows at once.
                curs.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(page[-1].id)))
        return len(page)

    def _decode(self, notification: Any) -> Any:
        if not self._skip_unreadable:
            return domain_event(self._mapper, notification)
        try:
            return domain_event(self._mapper, notification)
        except Exception:  # whatever a tampered record makes the mapper raise
            self.skipped += 1
            return None
