"""The API's profile cache: `GET /customers/{id}` served from memory, exactly as fresh as a
database read would say it is.

Why: a profile read straight from PostgreSQL costs the database and the driver more than
the HTTP layer costs (bench/api.py), and two cores cannot serve 2,000 of them a second.
PostgreSQL has no result cache to lean on, so each API worker keeps one, and keeps it
honest with the projection's own bookkeeping instead of a time-to-live:

- every `profiles` row carries the position of the page that last wrote it, and the
  projection runner sends `NOTIFY ledger_projections` with each page it commits;
- on each notice (and at least every second, in case one is missed) the watcher reads, in
  one snapshot, the projections' position, the profiles projection's own position, and the
  customers whose rows changed since it last looked, and drops those from the cache;
- a profile read from the database enters the cache only if its snapshot is no older than
  the watcher's last look, so nothing the watcher already passed over can hide in it.

A cached answer is therefore the profile as of the watcher's last look, and carries that
look's position in `X-Ledger-Position`. A read with `min_position` beyond it goes to the
database. If the watcher cannot reach PostgreSQL, the cache empties and stays off until it
can.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cachetools import LRUCache
from psycopg import AsyncConnection

from ledger.errors import first_line
from projections import profiles
from projections.runner import NOTIFY_CHANNEL

LOOK_EVERY = 1.0  # seconds between looks when no notice comes
TOO_MANY = 10_000  # changed profiles beyond which the watcher empties the cache instead

log = logging.getLogger(__name__)


class ProfileCache:
    """Validated profile answers (JSON bytes) by customer id, for one API process."""

    def __init__(self, database_url: str, size: int) -> None:
        self._url = database_url
        self._entries: LRUCache[str, bytes] = LRUCache(maxsize=size)
        self.position = -1
        """The projections' position at the watcher's last look; -1: the cache is off."""
        self._profiles_at = -1  # the profiles projection's own position at that look

    def get(self, customer_id: str, min_position: int | None) -> bytes | None:
        """The cached answer, if there is one as fresh as asked."""
        if self.position < 0 or (min_position is not None and min_position > self.position):
            return None
        return self._entries.get(customer_id)

    def put(self, customer_id: str, answer: bytes, profiles_at: int) -> None:
        """Keep an answer read from the database at the profiles projection's `profiles_at`."""
        if self.position >= 0 and profiles_at >= self._profiles_at:
            self._entries[customer_id] = answer

    async def watch(self) -> None:
        """Follow the projections until cancelled (the API's lifespan runs it as a task)."""
        while True:
            try:
                async with await AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while True:
                        await self._look(conn)
                        await _next_notice(conn)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure: stop serving from memory, retry
                if self.position >= 0:  # said once per outage, in one line
                    log.warning(
                        "profile cache off until PostgreSQL answers again: %s", first_line(error)
                    )
                self._off()
                await asyncio.sleep(LOOK_EVERY)

    async def _look(self, conn: AsyncConnection[Any]) -> None:
        since = self._profiles_at if self._profiles_at >= 0 else None
        cursor = await conn.execute(*profiles.changes_query(since, TOO_MANY + 1))
        position, profiles_at, changed = profiles.changes(await cursor.fetchone())
        if since is None or profiles_at < since or len(changed) > TOO_MANY:
            self._entries.clear()  # first look, a rebuilt projection, or a flood of changes
        else:
            for customer_id in changed:
                self._entries.pop(customer_id, None)
        self.position, self._profiles_at = position, profiles_at

    def _off(self) -> None:
        self._entries.clear()
        self.position = self._profiles_at = -1


async def _next_notice(conn: AsyncConnection[Any]) -> None:
    """Until a notice arrives (draining any others queued with it), or LOOK_EVERY passes."""
    async for _ in conn.notifies(timeout=LOOK_EVERY, stop_after=1):
        pass
