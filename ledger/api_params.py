"""The API's parameters and documented answers, shared by its routes (`ledger.api`,
`ledger.api_rights`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AwareDatetime, BeforeValidator

from projections import models

TEXT = r"^[^\x00]*$"  # PostgreSQL text holds any character but NUL


def _rfc3339(value: object) -> object:
    """`as_of` is RFC 3339 text, not a number of seconds (pydantic would take both)."""
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError("give an RFC 3339 time, e.g. 2026-06-01T00:00:00Z") from None


Id = Annotated[str, Path(min_length=1, max_length=200, pattern=TEXT)]
MinPosition = Annotated[
    int | None, Query(ge=0, description="wait (up to 5 s) until the projections reach it")
]
AsOf = Annotated[
    AwareDatetime | None,
    BeforeValidator(_rfc3339),
    Query(description="RFC 3339 (URL-encode a '+'): the profile from the events recorded by then"),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": models.Problem, "description": "not in the ledger (yet)"},
    503: {"model": models.Problem, "description": "min_position not reached within 5 s"},
}
FRESH: dict[int | str, dict[str, Any]] = {503: NOT_FOUND[503]}
