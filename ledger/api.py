"""`ledger serve`: the HTTP read API of contract section 6, on FastAPI.

Each route parses, calls a use case of `services.reads` in one snapshot (`ledger.api_reads`),
and answers. Answers are validated by the models of `projections.models`, the ones the
CLI's `--json` uses.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from psycopg import OperationalError
from starlette.concurrency import run_in_threadpool

from ledger import api_dead_letters, bootstrap
from ledger.api_guard import Guard, document
from ledger.api_params import FRESH, NOT_FOUND, TEXT, AsOf, Id, MinPosition
from ledger.api_reads import ApiReads, reads_of
from ledger.api_rights import add_routes
from ledger.errors import first_line
from ledger.settings import Settings
from projections import models
from services import reads

DATABASE_RETRY_AFTER = "5"  # seconds a 503 for an unreachable PostgreSQL asks clients to wait
log = logging.getLogger(__name__)

customers = APIRouter()
others = APIRouter()


@customers.get("/customers/{customer_id}", response_model=models.Profile, responses=NOT_FOUND)
async def get_customer(
    customer_id: Id,
    request: Request,
    response: Response,
    as_of: AsOf = None,
    min_position: MinPosition = None,
) -> Any:
    missing = f"no customer {customer_id!r} in the ledger"
    api = reads_of(request)
    if as_of is None:
        return await api.profile(customer_id, min_position, missing)
    return await api.read(
        response, min_position, lambda c: reads.profile(c, customer_id, as_of), missing
    )


@customers.get(
    "/customers/{customer_id}/history", response_model=models.History, responses=NOT_FOUND
)
async def get_history(
    customer_id: Id, request: Request, response: Response, min_position: MinPosition = None
) -> dict[str, Any]:
    found = await reads_of(request).read(
        response,
        min_position,
        lambda c: reads.customer_history(c, customer_id) or None,
        f"no customer {customer_id!r} in the ledger",
    )
    return {"events": found}


@others.get("/partners/{partner_id}", response_model=models.PartnerStatus, responses=NOT_FOUND)
async def get_partner(
    partner_id: Id, request: Request, response: Response, min_position: MinPosition = None
) -> dict[str, Any]:
    api = reads_of(request)
    today = api.settings.clock().date()
    return await api.read(
        response,
        min_position,
        lambda c: reads.partner(c, partner_id, today),
        f"no partner {partner_id!r} in the ledger",
    )


@others.get("/audiences", response_model=list[models.AudienceSummary], responses=FRESH)
async def get_audiences(
    request: Request, response: Response, min_position: MinPosition = None
) -> list[dict[str, Any]]:
    api = reads_of(request)
    return await api.read(response, min_position, lambda c: reads.audience_sizes(c, api.audiences))


@others.get("/audiences/{name}/members", response_model=models.MembersPage, responses=NOT_FOUND)
async def get_members(
    name: Id,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    after: Annotated[
        str | None,
        Query(max_length=200, pattern=TEXT, description="the `next` of the previous page"),
    ] = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    api = reads_of(request)
    known = {a.name for a in api.audiences}
    page = await api.read(
        response,
        min_position,
        lambda c: (
            reads.audience_members(c, name, limit=limit + 1, after=after) if name in known else None
        ),
        f"no audience {name!r}",
    )
    more = len(page) > limit
    page = page[:limit]
    return {"members": page, "next": page[-1]["customer_id"] if more else None}


@others.get(
    "/interactions/{event_id}",
    response_model=models.Recorded | models.DeadLettered,
    responses=NOT_FOUND,
)
async def get_interaction(
    event_id: Id, request: Request, response: Response, min_position: MinPosition = None
) -> dict[str, Any]:
    return await reads_of(request).read(
        response,
        min_position,
        lambda c: reads.interaction_fate(c, event_id),
        f"interaction {event_id!r} has not been seen yet",
    )


@others.get(
    "/health",
    response_model=models.Health,
    responses={503: {"model": models.Health, "description": "Kafka cannot be reached"}},
)
async def get_health(request: Request, response: Response) -> Any:
    api = reads_of(request)
    ends = await run_in_threadpool(api.metrics.end_offsets)
    health = await api.read(response, None, lambda c: api.metrics.health(c, ends))
    if health["status"] != "ok":
        return JSONResponse(health, 503, headers={**response.headers, "Retry-After": "5"})
    return health


@others.get("/metrics", response_class=PlainTextResponse)
def get_metrics(request: Request) -> Response:
    body, content_type = reads_of(request).metrics.render()
    return Response(body, media_type=content_type)


def create_app(settings: Settings) -> FastAPI:
    """The API over these (reachable) servers; the pools open with the app's lifespan."""
    api = ApiReads(settings, bootstrap.audiences(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await api.open()
        yield
        await api.close()

    app = FastAPI(
        title="customer-ledger",
        version="1",
        summary="Read API over the ledger's projections (contract section 6).",
        lifespan=lifespan,
    )
    app.state.reads = api
    app.add_middleware(Guard, token=settings.api_token, metrics=api.metrics)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.openapi = lambda: document(app, guarded=settings.api_token is not None)  # type: ignore[method-assign]
    # The routes themselves, not `include_router`: FastAPI 0.165 keeps an included router as
    # one entry, and a 405's `Allow` (`ledger.api_rights`) lists the methods of each route.
    app.router.routes.extend(customers.routes)
    add_routes(app, settings, api.read, api.wait)
    app.router.routes.extend(others.routes)
    api_dead_letters.add_routes(app, settings, api.read)
    return app


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


def app_from_env() -> FastAPI:
    """The uvicorn factory: each worker process builds its settings from the environment."""
    return create_app(bootstrap.with_servers(Settings.from_env()))
