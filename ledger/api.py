"""`ledger serve`: the HTTP read API of contract section 6, on FastAPI.

Every answer is read in one REPEATABLE READ transaction together with the projections'
position, so `X-Ledger-Position` is exactly the position the answer reflects; profiles may
come from the process's cache, which keeps the same promise (`ledger.profile_cache`). Answers are
validated by the models of `projections.models`, the ones the CLI's `--json` uses.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, HTTPException, Path, Query, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from psycopg import Connection, IsolationLevel
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from pydantic import AwareDatetime
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ledger import bootstrap
from ledger.metrics import Metrics
from ledger.profile_cache import ProfileCache
from ledger.settings import Settings
from projections import history, models, reads

MIN_POSITION_WAIT = 5.0  # seconds a read with ?min_position waits for the projections
PROFILE_CACHE_SIZE = 50_000  # profiles each API process keeps in memory (ledger.profile_cache)
T = TypeVar("T")

Id = Annotated[str, Path(min_length=1, max_length=200)]
MinPosition = Annotated[
    int | None, Query(ge=0, description="wait (up to 5 s) until the projections reach it")
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": models.Problem, "description": "not in the ledger (yet)"},
    503: {"model": models.Problem, "description": "min_position not reached within 5 s"},
}
FRESH: dict[int | str, dict[str, Any]] = {503: NOT_FOUND[503]}


def create_app(settings: Settings) -> FastAPI:
    """The API over these (reachable) servers; the pool opens with the app's lifespan."""
    assert settings.database_url, "call bootstrap.with_servers() first"
    audiences = bootstrap.audiences(settings)
    pool = ConnectionPool(
        settings.database_url,
        min_size=2,
        max_size=16,
        open=False,
        configure=_read_only,
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
        name="ledger-api-async",
    )
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

    def read(
        response: Response, min_position: int | None, answer: Callable[[Connection[Any]], T]
    ) -> T:
        """`answer` in one snapshot with the position it reflects (after waiting for
        `min_position`); sets X-Ledger-Position."""
        with pool.connection() as conn:
            _wait_for(conn, min_position)
            with conn.transaction():
                position = reads.position(conn)
                result = answer(conn)
        response.headers["X-Ledger-Position"] = str(position)
        return result

    @app.get("/customers/{customer_id}", response_model=models.Profile, responses=NOT_FOUND)
    async def get_customer(
        customer_id: Id,
        response: Response,
        as_of: Annotated[
            AwareDatetime | None,
            Query(description="RFC 3339: the profile from the events recorded by then"),
        ] = None,
        min_position: MinPosition = None,
    ) -> Any:
        if as_of is not None:
            found = await run_in_threadpool(
                read, response, min_position, lambda c: history.profile_as_of(c, customer_id, as_of)
            )
            return _found(found, f"no customer {customer_id!r} in the ledger")
        cached = cache.get(customer_id, min_position)
        metrics.cached(cached is not None)
        if cached is not None:
            return _json(cached, cache.position)
        if min_position is not None:
            await run_in_threadpool(read, response, min_position, lambda c: None)
        async with fast.connection() as aconn:
            cursor = await aconn.execute(*reads.profile_with_position_query(customer_id))
            position, profiles_at, found = reads.profile_with_position(await cursor.fetchone())
        profile = models.Profile.model_validate(
            _found(found, f"no customer {customer_id!r} in the ledger")
        )
        answer = profile.model_dump_json().encode()
        cache.put(customer_id, answer, profiles_at)
        return _json(answer, position)

    @app.get("/customers/{customer_id}/history", response_model=models.History, responses=NOT_FOUND)
    def get_history(
        customer_id: Id, response: Response, min_position: MinPosition = None
    ) -> dict[str, Any]:
        found = read(response, min_position, lambda c: history.customer_events(c, customer_id))
        return {"events": _found(found or None, f"no customer {customer_id!r} in the ledger")}

    @app.get("/partners/{partner_id}", response_model=models.PartnerStatus, responses=NOT_FOUND)
    def get_partner(
        partner_id: Id, response: Response, min_position: MinPosition = None
    ) -> dict[str, Any]:
        today = settings.clock().date()
        found = read(response, min_position, lambda c: reads.partner(c, partner_id, today))
        return _found(found, f"no partner {partner_id!r} in the ledger")

    @app.get("/audiences", response_model=list[models.AudienceSummary], responses=FRESH)
    def get_audiences(response: Response, min_position: MinPosition = None) -> list[dict[str, Any]]:
        return read(response, min_position, lambda c: reads.audience_sizes(c, audiences))

    @app.get("/audiences/{name}/members", response_model=models.MembersPage, responses=NOT_FOUND)
    def get_members(
        name: Id,
        response: Response,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        after: Annotated[str | None, Query(description="the `next` of the previous page")] = None,
        min_position: MinPosition = None,
    ) -> dict[str, Any]:
        if name not in {a.name for a in audiences}:
            raise HTTPException(404, f"no audience {name!r}")
        page = read(
            response,
            min_position,
            lambda c: reads.audience_members(c, name, limit=limit + 1, after=after),
        )
        more = len(page) > limit
        page = page[:limit]
        return {"members": page, "next": page[-1]["customer_id"] if more else None}

    @app.get(
        "/interactions/{event_id}",
        response_model=models.Recorded | models.DeadLettered,
        responses=NOT_FOUND,
    )
    def get_interaction(
        event_id: Id, response: Response, min_position: MinPosition = None
    ) -> dict[str, Any]:
        found = read(response, min_position, lambda c: reads.interaction_fate(c, event_id))
        return _found(found, f"interaction {event_id!r} has not been seen yet")

    @app.get("/health", response_model=models.Health)
    def get_health(response: Response) -> dict[str, Any]:
        return read(response, None, metrics.health)

    @app.get("/metrics", response_class=PlainTextResponse)
    def get_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app


class Guard:
    """The bearer token (when set) on everything but /health, and request latencies per
    route. A plain ASGI middleware: Starlette's `BaseHTTPMiddleware` costs more per request
    than the whole profile read."""

    def __init__(self, app: ASGIApp, token: str | None, metrics: Metrics) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode() if token else None
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        if self._expected is not None and scope["path"] != "/health":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                refusal = JSONResponse(
                    {"detail": "a valid 'Authorization: Bearer <token>' header is required"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await refusal(scope, receive, send)
                return
        await self._app(scope, receive, send)
        route = scope.get("route")
        self._metrics.observe(getattr(route, "path", "unmatched"), time.perf_counter() - started)


def _read_only(conn: Connection[Any]) -> None:
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    conn.autocommit = True  # one statement, one snapshot; `read` opens a transaction


def _wait_for(conn: Connection[Any], min_position: int | None) -> None:
    """Wait until the projections reach `min_position`; 503 after 5 s."""
    if min_position is None:
        return
    deadline = time.monotonic() + MIN_POSITION_WAIT
    while True:
        with conn.transaction():
            reached, head = reads.position(conn), reads.head(conn)
        if reached >= min_position:
            return
        # Beyond the ledger's head, no projection can get there before new events are
        # recorded: that position did not come from this ledger, so no use waiting.
        if time.monotonic() >= deadline or min_position > head:
            raise HTTPException(
                503,
                f"the projections are at position {reached}, not yet {min_position}",
                headers={"Retry-After": "1", "X-Ledger-Position": str(reached)},
            )
        time.sleep(0.05)  # polling PostgreSQL, the projections' only signal


def _json(answer: bytes, position: int) -> Response:
    """A validated answer as it is: FastAPI's response-model pass would validate it again."""
    return Response(
        answer, media_type="application/json", headers={"X-Ledger-Position": str(position)}
    )


def _found(found: T | None, missing: str) -> T:
    if found is None:
        raise HTTPException(404, missing)
    return found


def app_from_env() -> FastAPI:
    """The uvicorn factory: each worker process builds its settings from the environment."""
    return create_app(bootstrap.with_servers(Settings.from_env()))
