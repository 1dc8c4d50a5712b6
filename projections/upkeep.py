"""What the projection loop does between pages: bringing membership in line with changed
definitions (once, at start), the audience clock pass, then the relay.

Both run in the runner's own process and thread, between page transactions, so the clock
pass never races a page over the same membership rows, and each change is published soon
after the transaction that made it.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from psycopg import Connection

from projections.audience_definitions import reconcile
from projections.audiences import AudienceBook


class Relay(Protocol):
    """Publishes what the outbox holds (`projections.audience_outbox`)."""

    def publish_pending(self) -> int: ...

    def close(self) -> None: ...


class Upkeep:
    def __init__(
        self,
        book: AudienceBook,
        conn: Connection[Any],
        clock_connections: tuple[Connection[Any], Connection[Any]],
        relay: Relay | None,
        clock_interval: float = 60.0,
    ) -> None:
        self._book = book
        self._conn = conn
        # The clock pass reads on the first and writes on `conn` and the second.
        self._reader, self._writer = clock_connections
        self._relay = relay
        self._interval = clock_interval
        self._last_pass: float | None = None
        self._reconciled = False
        self.published = 0

    def __call__(self) -> None:
        if not self._reconciled:
            reconcile(self._book, self._conn)  # a new definitions file: evaluate it first
            self._reconciled = True
        if self._last_pass is None or time.monotonic() - self._last_pass >= self._interval:
            self.clock_pass()
        if self._relay is not None:
            self.published += self._relay.publish_pending()

    def clock_pass(self) -> tuple[int, int]:
        """Re-evaluate what the clock has made due; return (rows evaluated, changes)."""
        self._last_pass = time.monotonic()
        return self._book.clock_pass(self._reader, (self._conn, self._writer))

    def close(self) -> None:
        self._conn.close()
        self._reader.close()
        self._writer.close()
        if self._relay is not None:
            self._relay.close()
