"""The API's dead-letter route: `GET /dead-letters` (contract section 8), the dead letters
of the inbound topic newest first, a page at a time, as `ledger dead-letters --json` lists
them (`ledger.dead_letter_commands` is the CLI's side). Redrive is the CLI's alone: it
publishes to Kafka, and the API only reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Query, Response
from fastapi.exceptions import RequestValidationError

from ledger.api_params import FRESH, MinPosition
from ledger.settings import Settings
from projections.models import ErrorType
from services import dead_letter_list

Read = Callable[..., Awaitable[Any]]


def add_routes(app: FastAPI, settings: Settings, read: Read) -> None:
    """Add `GET /dead-letters` (`read`: the API's snapshot read)."""

    @app.get("/dead-letters", response_model=dead_letter_list.DeadLettersPage, responses=FRESH)
    async def get_dead_letters(
        response: Response,
        error_type: Annotated[ErrorType | None, Query(description="only this error type")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = dead_letter_list.DEFAULT_LIMIT,
        after: Annotated[
            str | None,
            Query(
                max_length=1000,
                pattern=dead_letter_list.CURSOR,
                description="the `next` of the previous page",
            ),
        ] = None,
        min_position: MinPosition = None,
    ) -> Any:
        topic = settings.inbound_topic
        try:
            return await read(
                response,
                min_position,
                lambda c: dead_letter_list.page(c, topic, error_type, limit, after),
            )
        except dead_letter_list.BadCursor as bad:  # a 422, as FastAPI answers a bad parameter
            problem = {"loc": ("query", "after"), "msg": str(bad), "type": "value_error"}
            raise RequestValidationError([problem]) from None
