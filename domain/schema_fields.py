"""The field types of the inbound interactions (contract section 4): RFC 3339 times, dates,
money, ids, and the envelope every interaction carries (`_Common`). Each validator raises a
`PydanticCustomError` with a readable message; the `WithJsonSchema` beside each type is what
a POS team reads in `ledger schema`. The models themselves are in `domain.schema`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Context, Decimal, Inexact
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

MAX_SAFE_INT = 2**53 - 1
"""Integers beyond I-JSON's range have no exact canonical encoding (RFC 8785)."""

_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_MONEY = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_PLAIN_MONEY = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,2})?")
"""The common case, >= 0, under `MONEY_LIMIT`, at most 2 decimals written: no further checks
needed."""
MONEY_LIMIT = Decimal(10) ** 15
"""Every amount is below a quadrillion: the folds add money exactly in 80 digits and trap
what they would round, so an amount of 1e308 would stop the projection at its event for
ever. Refused at the door instead (`invalid`)."""
_EXACT = Context(prec=1000, traps=[Inexact])
"""Decimal arithmetic that raises rather than rounds."""


def _timestamp(value: Any) -> datetime:
    """RFC 3339 date-time with a time zone (`Z` or `+hh:mm`) -> aware datetime in UTC."""
    if type(value) is not str:
        raise PydanticCustomError("timestamp", "must be an RFC 3339 string with a time zone")
    if _TIMESTAMP.fullmatch(value) is None:
        raise PydanticCustomError(
            "timestamp",
            "must be an RFC 3339 time with a time zone, like 2024-05-01T12:30:00Z",
        )
    try:  # the shape is RFC 3339's; the C parser checks the ranges (month 13, +24:00, ...)
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError) as error:
        problem = "time zone offset out of range" if "offset" in str(error) else str(error)
        raise PydanticCustomError(
            "timestamp", "is not a valid time ({problem})", {"problem": problem}
        ) from None


def _date(value: Any) -> date:
    """YYYY-MM-DD string -> date."""
    match = _DATE.fullmatch(value) if type(value) is str else None
    if match is None:
        raise PydanticCustomError("date", "must be a date string YYYY-MM-DD")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as error:
        raise PydanticCustomError(
            "date", "is not a valid date ({error})", {"error": str(error)}
        ) from None


def _decimal_places(amount: Decimal) -> int:
    """Decimal places of the value (12.50 and 12.500 have 1): trailing zeros don't count."""
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite
    places = -exponent
    for digit in reversed(digits):
        if places <= 0 or digit != 0:
            break
        places -= 1
    return max(places, 0)


def _money(value: Any) -> Decimal:
    """A decimal string or JSON number, >= 0, at most 2 decimal places -> Decimal."""
    kind = type(value)
    if kind is str:
        if _PLAIN_MONEY.fullmatch(value) is not None:
            return Decimal(value)
        if _MONEY.fullmatch(value) is None:
            raise PydanticCustomError("money", 'must be a decimal amount like "12.50"')
        amount = Decimal(value)
    elif kind is int:
        amount = Decimal(value)
    elif kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise PydanticCustomError("money", "must be a finite amount")
        amount = Decimal(repr(value))  # the shortest text giving this float: 12.5, not 12.4999..
    else:
        raise PydanticCustomError(
            "money", 'must be a decimal amount: a string like "12.50" or a number'
        )
    if amount < 0:
        raise PydanticCustomError("money", "must not be negative")
    if _decimal_places(amount) > 2:
        raise PydanticCustomError("money", "has more than 2 decimal places")
    if amount >= MONEY_LIMIT:
        raise PydanticCustomError("money", f"must be less than {MONEY_LIMIT:,}")
    return amount.copy_abs()  # -0 -> 0


def _schema_version(value: Any) -> int:
    if type(value) is not int or value != 1:
        raise PydanticCustomError("schema_version", "must be the integer 1")
    return 1


def money_text(amount: Decimal) -> str:
    """The normalised text of a validated amount: 12.5 -> "12.50"."""
    return f"{amount:.2f}"


Money = Annotated[
    Decimal,
    PlainValidator(_money),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
                {"type": "number", "minimum": 0, "exclusiveMaximum": int(MONEY_LIMIT)},
            ],
            "description": "Amount >= 0 and below 10**15 with at most 2 decimal places, e.g. "
            '"12.50" or 12.5.',
        }
    ),
]
Timestamp = Annotated[
    datetime,
    PlainValidator(_timestamp),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "description": "RFC 3339 with a time zone."}
    ),
]
Date = Annotated[
    date,
    PlainValidator(_date),
    WithJsonSchema({"type": "string", "format": "date", "description": "YYYY-MM-DD."}),
]
SchemaVersion = Annotated[
    int, PlainValidator(_schema_version), WithJsonSchema({"type": "integer", "const": 1})
]
ID_MAX = 200
"""The longest id (customer, card, partner, store, order, ...): ids key projection rows,
and PostgreSQL's btree index refuses a key over ~2,700 bytes, which would stop the
projection at that event for ever. Refused at the door instead (`invalid`)."""
Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX)]
Text = Annotated[str, StringConstraints(min_length=1)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
EventId = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
    Field(json_schema_extra={"format": "uuid"}),
]
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]

# An optional field is `X = Field(default=None)`: it may be left out, but an explicit
# `null` is rejected like any other wrong type (pydantic does not validate defaults).
_NONE: Any = None


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class _Common(_Model):
    event_id: EventId = Field(description="UUID chosen by the producer; the idempotency key.")
    occurred_at: Timestamp
    source: Text = Field(description="The publishing system, e.g. pos-store-17.")
    schema_version: SchemaVersion = Field(default=_NONE)
