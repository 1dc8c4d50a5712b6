"""`ledger serve`: the HTTP read API of contract section 6, on FastAPI.

Every answer is read in one REPEATABLE READ transaction together with the projections'
position, so `X-Ledger-Position` is exactly the position the answer reflects; profiles may
come from the process's cache, which keeps the same promise (`ledger.profile_cache`). Answers are
validated by the models of `projections.models`, the ones the CLI's `--json` uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from psycopg import Connection, IsolationLevel, OperationalError
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from starlette.concurrency import run_in_threadpool

from ledger import bootstrap
from ledger.api_guard import Guard, document
from ledger.api_params import FRESH, NOT_FOUND, TEXT, AsOf, Id, MinPosition
from ledger.api_pools import RECONNECT_WITHIN, SweepingCheck
from ledger.api_rights import add_routes
from ledger.errors import first_line
from ledger.metrics import Metrics
from ledger.profile_cache import ProfileCache
from ledger.settings import Settings
from projections import history, models, reads

MIN_POSITION_WAIT = 5.0  # seconds a read with ?min_position waits for the projections
POOL_WAIT = 10.0  # seconds a read waits for a connection before answering 503
DATABASE_RETRY_AFTER = "5"  # seconds a 503 for an unreachable PostgreSQL asks clients to wait
PROFILE_CACHE_SIZE = 50_000  # profiles each API process keeps in memory (ledger.profile_cache)
T = TypeVar("T")
log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """The API over these (reachable) servers; the pool opens with the app's lifespan."""
    assert settings.database_url, "call bootstrap.with_servers() first"
    audiences = bootstrap.audiences(settings)
    checked = SweepingCheck()
    pool = ConnectionPool(
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
    # The hottest read (a profile by id) runs on the event loop with its own async pool;
    # the others run in FastAPI's thread pool on the sync one.
    fast = AsyncConnectionPool(
        settings.database_url,
        min_size=2,
        max_size=8,
        open=False,
        kwargs={"autocommit": True},
        timeout=POOL_WAIT,
        reconnect_timeout=RECONNECT_WITHIN,
        name="ledger-api-async",
    )
    checked.pool = pool
    metrics = Metrics(pool, settings)
    cache = ProfileCache(settings.database_url, PROFILE_CACHE_SIZE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=True, timeout=30)
        await fast.open(wait=True, timeout=30)
        watcher = asyncio.create_task(cache.watch())
        yield
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
        await fast.close()
        pool.close()

    app = FastAPI(
        title="customer-ledger",
        version="1",
        summary="Read API over the ledger's projections (contract section 6).",
        lifespan=lifespan,
    )

    app.add_middleware(Guard, token=settings.api_token, metrics=metrics)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.openapi = lambda: document(app, guarded=settings.api_token is not None)  # type: ignore[method-assign]

    async def fetch(query: tuple[str, tuple[Any, ...]]) -> Any:
        """One row from the async pool. Its connections are not checked on the way out (a
        round trip per read); when one fails (PostgreSQL restarted and dropped them all),
        the pool checks every idle one, replacing the broken, and the read is retried once:
        so the first reads after a restart answer, rather than one 500 per dead connection."""
        for attempt in (1, 2):
            try:
                async with fast.connection() as aconn:
                    cursor = await aconn.execute(*query)
                    return await cursor.fetchone()
            except OperationalError:
                if attempt == 2:
                    raise
                await fast.check()
        return None

    async def wait(min_position: int | None) -> None:
        """Wait until the projections reach `min_position` (503 after 5 s), polling
        PostgreSQL (the projections' only signal) on the event loop: a waiting request
        holds neither a thread nor a connection between polls."""
        if min_position is None or cache.position >= min_position:
            return
        deadline = time.monotonic() + MIN_POSITION_WAIT
        while True:
            reached, head = reads.position_and_head(await fetch(reads.position_and_head_query()))
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
        response: Response,
        min_position: int | None,
        answer: Callable[[Connection[Any]], T | None],
        missing: str = "",
    ) -> T:
        """`answer` in one snapshot with the position it reflects (after waiting for
        `min_position`), on a thread; sets X-Ledger-Position, and answers 404 with
        `missing` if `answer` found nothing."""
        await wait(min_position)

        def snapshot() -> tuple[int, T | None]:
            with pool.connection() as conn, conn.transaction():
                return reads.position(conn), answer(conn)

        position, result = await run_in_threadpool(snapshot)
        response.headers["X-Ledger-Position"] = str(position)
        return _found(result, missing, position)

    @app.get("/customers/{customer_id}", response_model=models.Profile, responses=NOT_FOUND)
    async def get_customer(
        customer_id: Id, response: Response, as_of: AsOf = None, min_position: MinPosition = None
    ) -> Any:
        missing = f"no customer {customer_id!r} in the ledger"
        if as_of is not None:
            return await read(
                response,
                min_position,
                lambda c: history.profile_as_of(c, customer_id, as_of),
                missing,
            )
        cached = cache.get(customer_id, min_position)
        metrics.cached(cached is not None)
        if cached is not None:
            return _json(cached, cache.position)
        await wait(min_position)
        row = await fetch(reads.profile_with_position_query(customer_id))
        position, profiles_at, found = reads.profile_with_position(row)
        profile = models.Profile.model_validate(_found(found, missing, position))
        answer = profile.model_dump_json().encode()
        cache.put(customer_id, answer, profiles_at)
        return _json(answer, position)

    @app.get("/customers/{customer_id}/history", response_model=models.History, responses=NOT_FOUND)
    async def get_history(
        customer_id: Id, response: Response, min_position: MinPosition = None
    ) -> dict[str, Any]:
        found = await read(
            response,
            min_position,
            lambda c: history.customer_events(c, customer_id) or None,
            f"no customer {customer_id!r} in the ledger",
        )
        return {"events": found}

    add_routes(app, settings, read, wait)

    @app.get("/partners/{partner_id}", response_model=models.PartnerStatus, responses=NOT_FOUND)
    async def get_partner(
        partner_id: Id, response: Response, min_position: MinPosition = None
    ) -> dict[str, Any]:
        today = settings.clock().date()
        return await read(
            response,
            min_position,
            lambda c: reads.partner(c, partner_id, today),
            f"no partner {partner_id!r} in the ledger",
        )

    @app.get("/audiences", response_model=list[models.AudienceSummary], responses=FRESH)
    async def get_audiences(
        response: Response, min_position: MinPosition = None
    ) -> list[dict[str, Any]]:
        return await read(response, min_position, lambda c: reads.audience_sizes(c, audiences))

    @app.get("/audiences/{name}/members", response_model=models.MembersPage, responses=NOT_FOUND)
    async def get_members(
        name: Id,
        response: Response,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        after: Annotated[
            str | None,
            Query(max_length=200, pattern=TEXT, description="the `next` of the previous page"),
        ] = None,
        min_position: MinPosition = None,
    ) -> dict[str, Any]:
        known = {a.name for a in audiences}
        page = await read(
            response,
            min_position,
            lambda c: (
                reads.audience_members(c, name, limit=limit + 1, after=after)
                if name in known
                else None
            ),
            f"no audience {name!r}",
        )
        more = len(page) > limit
        page = page[:limit]
        return {"members": page, "next": page[-1]["customer_id"] if more else None}

    @app.get(
        "/interactions/{event_id}",
        response_model=models.Recorded | models.DeadLettered,
        responses=NOT_FOUND,
    )
    async def get_interaction(
        event_id: Id, response: Response, min_position: MinPosition = None
    ) -> dict[str, Any]:
        return await read(
            response,
            min_position,
            lambda c: reads.interaction_fate(c, event_id),
            f"interaction {event_id!r} has not been seen yet",
        )

    @app.get(
        "/health",
        response_model=models.Health,
        responses={503: {"model": models.Health, "description": "Kafka cannot be reached"}},
    )
    async def get_health(response: Response) -> Any:
        ends = await run_in_threadpool(metrics.end_offsets)
        health = await read(response, None, lambda c: metrics.health(c, ends))
        if health["status"] != "ok":
            return JSONResponse(health, 503, headers={**response.headers, "Retry-After": "5"})
        return health

    @app.get("/metrics", response_class=PlainTextResponse)
    def get_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app


def _read_only(conn: Connection[Any]) -> None:
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    conn.autocommit = True  # one statement, one snapshot; `read` opens a transaction


async def _database_unavailable(request: Request, error: Exception) -> Response:
    """503 with Retry-After, not 500, while PostgreSQL cannot be reached (it is down or
    restarting, or no pooled connection came free within POOL_WAIT): the request was fine
    and will be answered once the database is back. The cause goes to the log as one line."""
    log.warning(
        "answered 503 to %s: PostgreSQL cannot be reached (%s)", request.url.path, first_line(error)
    )
    return JSONResponse(
        {"detail": "the database did not answer just now; try again shortly"},
        503,
        headers={"Retry-After": DATABASE_RETRY_AFTER},
    )


def _json(answer: bytes, position: int) -> Response:
    """A validated answer as it is: FastAPI's response-model pass would validate it again."""
    return Response(
        answer, media_type="application/json", headers={"X-Ledger-Position": str(position)}
    )


def _found(found: T | None, missing: str, position: int) -> T:
    if found is None:
        raise HTTPException(404, missing, headers={"X-Ledger-Position": str(position)})
    return found


def app_from_env() -> FastAPI:
    """The uvicorn factory: each worker process builds its settings from the environment."""
    return create_app(bootstrap.with_servers(Settings.from_env()))
