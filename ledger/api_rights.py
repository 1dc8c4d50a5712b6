"""The API's personal-data rights routes: `GET /customers/{id}/export` and
`DELETE /customers/{id}` (`ledger.rights` is the CLI's side of the same).

Forgetting is the API's one write. It always needs the bearer token: a server started
without `LEDGER_API_TOKEN` refuses it with 403, whatever else it serves openly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from psycopg import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from domain.forgetting import REASON_MAX, REASON_PATTERN
from ledger import bootstrap
from ledger.api_params import Id, MinPosition
from ledger.settings import Settings
from projections import models
from services.export import CustomerErased, export
from services.forget import Forgotten, MergedCustomer

Read = Callable[..., Awaitable[Any]]
Wait = Callable[[int | None], Awaitable[None]]

EXPORT_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"model": models.Problem, "description": "not in the ledger"},
    410: {"model": models.Problem, "description": "the customer was forgotten"},
    503: {"model": models.Problem, "description": "min_position not reached within 5 s"},
}
FORGET_ANSWERS: dict[int | str, dict[str, Any]] = {
    403: {"model": models.Problem, "description": "the server has no API token set"},
    404: {"model": models.Problem, "description": "not in the ledger"},
    409: {
        "model": models.Problem,
        "description": "merged into another customer: forget the root of its tree",
    },
}


def add_routes(app: FastAPI, settings: Settings, read: Read, wait: Wait) -> None:
    """Add the export and forget routes (`read` and `wait`: the API's snapshot read and
    its wait for a position)."""

    @app.exception_handler(StarletteHTTPException)
    async def allow_every_method(request: Request, error: StarletteHTTPException) -> Any:
        """A 405's `Allow` lists the methods of every route of the path: Starlette names
        only the first route's, and `/customers/{id}` has GET and DELETE."""
        if error.status_code != 405:
            return await http_exception_handler(request, error)
        methods = {
            method
            for route in app.routes
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE
            for method in route.methods or ()
        }
        return JSONResponse(
            {"detail": error.detail}, 405, headers={"Allow": ", ".join(sorted(methods))}
        )

    @app.get(
        "/customers/{customer_id}/export", response_model=models.Export, responses=EXPORT_ANSWERS
    )
    async def get_export(
        customer_id: Id, response: Response, min_position: MinPosition = None
    ) -> Any:
        def document(conn: Connection[Any]) -> dict[str, Any] | CustomerErased | None:
            try:
                return export(conn, customer_id)
            except CustomerErased as erased:
                return erased

        found = await read(
            response, min_position, document, f"no customer {customer_id!r} in the ledger"
        )
        if isinstance(found, CustomerErased):
            raise HTTPException(410, str(found), headers=dict(response.headers))
        return found

    @app.delete(
        "/customers/{customer_id}", response_model=models.Forgotten, responses=FORGET_ANSWERS
    )
    async def delete_customer(
        customer_id: Id,
        response: Response,
        reason: Annotated[
            str,
            Query(
                min_length=1,
                max_length=REASON_MAX,
                pattern=REASON_PATTERN,
                description="why, on one line (kept in the ledger, in the clear: say why, not who)",
            ),
        ],
    ) -> dict[str, Any]:
        if settings.api_token is None:
            raise HTTPException(
                403, "forgetting a customer needs the API token: set LEDGER_API_TOKEN"
            )
        try:
            found: Forgotten | None = await run_in_threadpool(
                bootstrap.ledger(settings).forget, customer_id, reason
            )
        except MergedCustomer as merged:
            raise HTTPException(409, str(merged)) from None
        except ValueError as refused:  # beyond the pattern: the reason names the person
            problem = {"loc": ("query", "reason"), "msg": str(refused), "type": "value_error"}
            raise RequestValidationError([problem]) from None
        if found is None:
            raise HTTPException(404, f"no customer {customer_id!r} in the ledger")
        try:
            await wait(found.position)
            projected = True
        except HTTPException:
            projected = False
        response.headers["X-Ledger-Position"] = str(found.position)
        return {**asdict(found), "projected": projected}
