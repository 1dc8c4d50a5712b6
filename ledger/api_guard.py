"""What wraps every API route: the bearer token, request latencies, and the OpenAPI
document's account of both (and of the headers every read answers with)."""

from __future__ import annotations

import hmac
import time
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.metrics import Metrics

POSITION_HEADER = {
    "X-Ledger-Position": {
        "description": "the position the answer reflects (the projections' position)",
        "schema": {"type": "integer"},
    }
}
RETRY_HEADER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
OPEN = {"/health"}  # answers without the token


class Guard:
    """The bearer token (when set) on everything but /health, and request latencies per
    route. A plain ASGI middleware: Starlette's `BaseHTTPMiddleware` costs more per request
    than the whole profile read."""

    def __init__(self, app: ASGIApp, token: str | None, metrics: Metrics) -> None:
        self._app = app
        self._token = token.encode() if token else None
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        if self._token is not None and scope["path"].rstrip("/") not in OPEN:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not self._accepts(given):
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

    def _accepts(self, given: bytes) -> bool:
        """`Bearer <token>`, the scheme in any case (RFC 7235)."""
        scheme, _, token = given.partition(b" ")
        assert self._token is not None
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._token)


def document(app: FastAPI, guarded: bool) -> dict[str, Any]:
    """The OpenAPI document, with the position and retry headers on the answers that carry
    them and, when a token is required, the bearer scheme and the 401 answer."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            for status, answer in answers.items():
                if path not in ("/metrics", "/openapi.json") and status in (
                    "200",
                    "404",
                    "410",
                    "503",
                ):
                    answer.setdefault("headers", {}).update(POSITION_HEADER)
                if status == "503":
                    answer["headers"].update(RETRY_HEADER)
            if guarded and path not in OPEN:
                operation["security"] = [{"bearer": []}]
                answers["401"] = {
                    "description": "no valid bearer token",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    },
                }
    if guarded:
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {"type": "http", "scheme": "bearer"}
    app.openapi_schema = schema
    return schema
