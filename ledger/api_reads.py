"""How the HTTP API reads: its two connection pools, the profile cache, and the one way an
answer is read with the position it reflects.

Every answer is read in one REPEATABLE READ transaction together with the projections'
position, so `X-Ledger-Position` is exactly the position the answer reflects; profiles may
come from the process's cache, which keeps the same promise (`ledger.profile_cache`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

from fastapi import HTTPException, Request, Response
from psycopg import Connection, IsolationLevel, OperationalError
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from starlette.concurrency import run_in_threadpool

from ledger.api_pools import RECONNECT_WITHIN, SweepingCheck
from ledger.metrics import Metrics
from ledger.profile_cache import ProfileCache
from ledger.settings import Settings
from projections import models, positions, profiles

MIN_POSITION_WAIT = 5.0  # seconds a read with ?min_position waits for the projections
POOL_WAIT = 10.0  # seconds a read waits for a connection before answering 503
PROFILE_CACHE_SIZE = 50_000  # profiles each API process keeps in memory (ledger.profile_cache)
T = TypeVar("T")


class ApiReads:
    """The pools, the cache and the metrics of one API process (`app.state.reads`)."""

    def __init__(self, settings: Settings, audiences: list[Any]) -> None:
        assert settings.database_url, "call bootstrap.with_servers() first"
        self.settings = settings
        self.audiences = audiences
        checked = SweepingCheck()
        self.pool = ConnectionPool(
            settings.database_url,
            min_size=2,
            max_size=16,
            open=False,
            configure=_read_only,
            check=checked,  # a restarted PostgreSQL: reconnect, no 500
            timeout=POOL_WAIT,
            reconnect_timeout=RECONNECT_WITHIN,
            name="ledger-api",
        )
        # The hottest read (a profile by id) runs on the event loop with its own async
        # pool; the others run in FastAPI's thread pool on the sync one.
        self.fast = AsyncConnectionPool(
            settings.database_url,
            min_size=2,
            max_size=8,
            open=False,
            kwargs={"autocommit": True},
            timeout=POOL_WAIT,
            reconnect_timeout=RECONNECT_WITHIN,
            name="ledger-api-async",
        )
        checked.pool = self.pool
        self.metrics = Metrics(self.pool, settings)
        self.cache = ProfileCache(settings.database_url, PROFILE_CACHE_SIZE)
        self._watcher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.pool.open(wait=True, timeout=30)
        await self.fast.open(wait=True, timeout=30)
        self._watcher = asyncio.create_task(self.cache.watch())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with suppress(asyncio.CancelledError):
                await self._watcher
        await self.fast.close()
        self.pool.close()

    async def fetch(self, query: tuple[str, tuple[Any, ...]]) -> Any:
        """One row from the async pool. Its connections are not checked on the way out (a
        round trip per read); when one fails (PostgreSQL restarted and dropped them all),
        the pool checks every idle one, replacing the broken, and the read is retried once:
        so the first reads after a restart answer, rather than one 500 per dead connection."""
        for attempt in (1, 2):
            try:
                async with self.fast.connection() as aconn:
                    cursor = await aconn.execute(*query)
                    return await cursor.fetchone()
            except OperationalError:
                if attempt == 2:
                    raise
                await self.fast.check()
        return None

    async def wait(self, min_position: int | None) -> None:
        """Wait until the projections reach `min_position` (503 after 5 s), polling
        PostgreSQL (the projections' only signal) on the event loop: a waiting request
        holds neither a thread nor a connection between polls."""
        if min_position is None or self.cache.position >= min_position:
            return
        deadline = time.monotonic() + MIN_POSITION_WAIT
        while True:
            row = await self.fetch(positions.position_and_head_query())
            reached, head = positions.position_and_head(row)
            if reached >= min_position:
                return
            # Beyond the ledger's head no projection can get there before new events are
            # recorded: that position did not come from this ledger, so no use waiting.
            if time.monotonic() >= deadline or min_position > head:
                raise HTTPException(
                    503,
                    f"the projections are at position {reached}, not yet {min_position}",
                    headers={"Retry-After": "1", "X-Ledger-Position": str(reached)},
                )
            await asyncio.sleep(0.05)

    async def read(
        self,
        response: Response,
        min_position: int | None,
        answer: Callable[[Connection[Any]], T | None],
        missing: str = "",
    ) -> T:
        """`answer` in one snapshot with the position it reflects (after waiting for
        `min_position`), on a thread; sets X-Ledger-Position, and answers 404 with
        `missing` if `answer` found nothing."""
        await self.wait(min_position)

        def snapshot() -> tuple[int, T | None]:
            with self.pool.connection() as conn, conn.transaction():
                return positions.position(conn), answer(conn)

        position, result = await run_in_threadpool(snapshot)
        response.headers["X-Ledger-Position"] = str(position)
        return found(result, missing, position)

    async def profile(self, customer_id: str, min_position: int | None, missing: str) -> Response:
        """The stored profile as validated JSON: from the cache when it is fresh enough,
        else read on the event loop (and kept in the cache)."""
        cached = self.cache.get(customer_id, min_position)
        self.metrics.cached(cached is not None)
        if cached is not None:
            return as_json(cached, self.cache.position)
        await self.wait(min_position)
        row = await self.fetch(profiles.with_position_query(customer_id))
        position, profiles_at, stored = profiles.with_position(row)
        profile = models.Profile.model_validate(found(stored, missing, position))
        answer = profile.model_dump_json().encode()
        self.cache.put(customer_id, answer, profiles_at)
        return as_json(answer, position)


def reads_of(request: Request) -> ApiReads:
    """The API process's reads (set by `ledger.api.create_app`)."""
    reads: ApiReads = request.app.state.reads
    return reads


def _read_only(conn: Connection[Any]) -> None:
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    conn.autocommit = True  # one statement, one snapshot; `read` opens a transaction


def as_json(answer: bytes, position: int) -> Response:
    """A validated answer as it is: FastAPI's response-model pass would validate it again."""
    return Response(
        answer, media_type="application/json", headers={"X-Ledger-Position": str(position)}
    )


def found(result: T | None, missing: str, position: int) -> T:
    if result is None:
        raise HTTPException(404, missing, headers={"X-Ledger-Position": str(position)})
    return result
