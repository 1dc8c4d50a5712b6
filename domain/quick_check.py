"""The schema's checks by hand, for the common case: an interaction that is valid.

Why: pydantic's validation of one interaction cost ~20 us (a model instance built, a
Python call per money, time and date field, the purchase's sum check), the largest single
cost of ingest. Checking the same fields by hand, on the parsed JSON object, costs a few
microseconds. (Pydantic's own `validate_json`, straight from the bytes, was slower still
here: its strict models call the same Python validators.)

The hand check only ever *accepts*: `quick_check` answers the fields the ledger needs when
the object passes every rule of its model (`domain.schema`), and None as soon as anything
is off (a missing field, a wrong type, a money amount in an unusual notation it leaves to
the schema's own validator, ...). On None the caller validates with pydantic as before, so
every rejection, its reason and the order of the checks stay pydantic's. Unit tests hold
each model's fields equal to this table and compare both ways on valid and broken
messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from pydantic_core import PydanticCustomError

from domain.schema_fields import ID_MAX, MAX_SAFE_INT, _date, _money, _timestamp, money_text

__all__ = ["FIELDS", "LINE_FIELDS", "Checked", "money_normalised", "quick_check"]

Check = Callable[[Any], bool]

_EVENT_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_CURRENCY = re.compile(r"[A-Z]{3}")
_CANONICAL_MONEY = re.compile(r"(?:0|[1-9][0-9]{0,14})\.[0-9]{2}")
"""Money already in its normalised text ("12.50"): `money_text` gives it back unchanged."""


def _unicode(value: str) -> bool:
    """No lone surrogate (pydantic refuses those in the fields it checks)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _str(value: Any) -> bool:
    return type(value) is str and _unicode(value)


def _text(value: Any) -> bool:
    return type(value) is str and len(value) >= 1 and _unicode(value)


def _id(value: Any) -> bool:
    return type(value) is str and 1 <= len(value) <= ID_MAX and _unicode(value)


def _bool(value: Any) -> bool:
    return type(value) is bool


def _int_between(low: int, high: int) -> Check:
    def check(value: Any) -> bool:
        return type(value) is int and low <= value <= high

    return check


def _one_of(*allowed: str) -> Check:
    choices = frozenset(allowed)

    def check(value: Any) -> bool:
        return type(value) is str and value in choices

    return check


def _pattern(pattern: re.Pattern[str]) -> Check:
    def check(value: Any) -> bool:
        return type(value) is str and pattern.fullmatch(value) is not None

    return check


def _by(validator: Callable[[Any], object]) -> Check:
    """One of the schema's own validators (dates)."""

    def check(value: Any) -> bool:
        try:
            validator(value)
        except PydanticCustomError:
            return False
        return True

    return check


def _schema_version(value: Any) -> bool:
    return type(value) is int and value == 1


def _apart(value: Any) -> bool:
    """Checked apart, once, where `quick_check` needs the value: the time and money."""
    return True


def money_normalised(value: Any) -> str | None:
    """The normalised text of a valid amount ("12.5" -> "12.50"), None if not valid."""
    if type(value) is str and _CANONICAL_MONEY.fullmatch(value) is not None:
        return value
    try:
        return money_text(_money(value))
    except PydanticCustomError:
        return None


_DATE = _by(_date)
_COUNT = _int_between(0, MAX_SAFE_INT)

# Each model's fields: name -> (check, required). `type` is checked by the caller.
Fields = dict[str, tuple[Check, bool]]
_COMMON: Fields = {
    "event_id": (_pattern(_EVENT_ID), True),
    "occurred_at": (_apart, True),
    "source": (_text, True),
    "schema_version": (_schema_version, False),
}
FIELDS: dict[str, Fields] = {
    "customer_enrolled": {
        "customer_id": (_id, True),
        "card_id": (_id, True),
        "name": (_str, False),
        "email": (_str, False),
        "birth_date": (_DATE, False),
        "marketing_consent": (_bool, False),
    },
    "card_swiped": {
        "card_id": (_id, True),
        "store_id": (_id, True),
        "customer_id": (_id, False),
    },
    "purchase": {
        "customer_id": (_id, False),
        "card_id": (_id, False),
        "store_id": (_id, True),
        "order_id": (_id, True),
        "currency": (_pattern(_CURRENCY), True),
        "total": (_apart, True),
        "lines": (lambda value: type(value) is list and len(value) >= 1, True),
    },
    "call": {
        "customer_id": (_id, True),
        "direction": (_one_of("inbound", "outbound"), True),
        "duration_seconds": (_COUNT, True),
        "topic": (_text, True),
        "agent_id": (_id, False),
    },
    "complaint_filed": {
        "customer_id": (_id, True),
        "complaint_id": (_id, True),
        "category": (_text, True),
        "severity": (_one_of("low", "medium", "high"), True),
        "description": (_str, False),
    },
    "complaint_resolved": {
        "customer_id": (_id, True),
        "complaint_id": (_id, True),
        "resolution": (_text, True),
        "satisfied": (_bool, False),
    },
    "survey_answered": {
        "customer_id": (_id, True),
        "survey_id": (_id, True),
        "score": (_int_between(0, 10), True),
    },
    "consent_changed": {
        "customer_id": (_id, True),
        "marketing_consent": (_bool, True),
    },
    "contract_changed": {
        "partner_id": (_id, True),
        "contract_id": (_id, True),
        "change": (_one_of("proposed", "signed", "amended", "renewed", "terminated"), True),
        "partner_kind": (_one_of("vendor", "supplier", "distributor", "reseller"), False),
        "value": (_apart, False),
        "currency": (_pattern(_CURRENCY), False),
        "effective_at": (_DATE, False),
        "ends_at": (_DATE, False),
    },
    "dispute_opened": {
        "partner_id": (_id, True),
        "dispute_id": (_id, True),
        "reason": (_text, True),
    },
    "dispute_resolved": {
        "partner_id": (_id, True),
        "dispute_id": (_id, True),
        "resolution": (_text, True),
    },
    "purchase_returned": {
        "customer_id": (_id, False),
        "card_id": (_id, False),
        "store_id": (_id, True),
        "order_id": (_id, True),
        "return_id": (_id, True),
        "currency": (_pattern(_CURRENCY), True),
        "total": (_apart, True),
        "lines": (lambda value: type(value) is list and len(value) >= 1, True),
    },
    "note_added": {
        "note_id": (_id, True),
        "author": (_text, True),
        "text": (_text, True),
        "customer_id": (_id, False),
        "partner_id": (_id, False),
        "stage": (
            _one_of("lead", "qualified", "proposal", "negotiation", "won", "lost", "support"),
            False,
        ),
    },
    "card_replaced": {
        "customer_id": (_id, True),
        "old_card_id": (_id, True),
        "new_card_id": (_id, True),
        "reason": (_one_of("lost", "stolen", "damaged", "upgrade"), False),
    },
    "customers_merged": {
        "survivor_id": (_id, True),
        "merged_id": (_id, True),
        "reason": (_text, False),
    },
    "customers_unmerged": {
        "survivor_id": (_id, True),
        "merged_id": (_id, True),
        "reason": (_text, False),
    },
}
FIELDS = {kind: {**_COMMON, **fields} for kind, fields in FIELDS.items()}
LINE_FIELDS: Fields = {
    "sku": (_id, True),
    "category": (_text, True),
    "quantity": (_int_between(1, MAX_SAFE_INT), True),
    "unit_price": (_apart, True),
}


class _Spec(NamedTuple):
    """A model's fields as the hand check runs them: the required names, then the ids and
    the texts (the most frequent checks, inlined), then the rest by their functions."""

    required: tuple[str, ...]
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    others: tuple[tuple[str, Check], ...]


def _spec(fields: Fields) -> _Spec:
    return _Spec(
        tuple(name for name, (_, required) in fields.items() if required),
        tuple(name for name, (check, _) in fields.items() if check is _id),
        tuple(name for name, (check, _) in fields.items() if check is _text),
        tuple(
            (name, check)
            for name, (check, _) in fields.items()
            if check not in (_id, _text, _apart)
        ),
    )


_MERGES = frozenset({"customers_merged", "customers_unmerged"})
_SPECS = {kind: _spec(fields) for kind, fields in FIELDS.items()}
_LINE_SPEC = _spec(LINE_FIELDS)
_ABSENT: Any = object()


class Checked:
    """What validation gives the ledger besides the object: its normalised money texts."""

    __slots__ = ("occurred_at", "total", "unit_prices", "value")

    def __init__(
        self,
        occurred_at: datetime,
        total: str | None = None,
        unit_prices: list[str] | None = None,
        value: str | None = None,
    ) -> None:
        self.occurred_at = occurred_at
        self.total = total
        self.unit_prices = unit_prices
        self.value = value


def quick_check(obj: dict[str, Any], kind: str) -> Checked | None:
    """`obj` (whose `type` is the known `kind`) checked by hand; None when it is not
    plainly valid, and pydantic must decide (and say why)."""
    if not _fields_pass(obj, _SPECS[kind]):
        return None
    try:
        occurred_at = _timestamp(obj["occurred_at"])
    except PydanticCustomError:
        return None
    if kind == "purchase" or kind == "purchase_returned":
        return _purchase(obj, occurred_at)
    if kind == "note_added" and ("customer_id" in obj) == ("partner_id" in obj):
        return None  # exactly one subject: pydantic says which rule is broken
    if kind == "card_replaced" and obj["old_card_id"] == obj["new_card_id"]:
        return None
    if kind in _MERGES and obj["survivor_id"] == obj["merged_id"]:
        return None
    if kind == "contract_changed" and "value" in obj:
        value = money_normalised(obj["value"])
        return None if value is None else Checked(occurred_at, value=value)
    return Checked(occurred_at)


def _fields_pass(obj: dict[str, Any], spec: _Spec) -> bool:
    for name in spec.required:
        if name not in obj:
            return False
    get = obj.get
    for name in spec.ids:
        value = get(name, _ABSENT)
        if value is not _ABSENT and not (
            type(value) is str and 0 < len(value) <= ID_MAX and (value.isascii() or _unicode(value))
        ):
            return False
    for name in spec.texts:
        value = get(name, _ABSENT)
        if value is not _ABSENT and not (
            type(value) is str and value and (value.isascii() or _unicode(value))
        ):
            return False
    for name, check in spec.others:
        value = get(name, _ABSENT)
        if value is not _ABSENT and not check(value):
            return False
    return True


def _purchase(obj: dict[str, Any], occurred_at: datetime) -> Checked | None:
    """The lines' fields, a holder, and the total equal to the lines' sum (in cents: the
    texts have exactly two decimals, so the sum is exact, as the model's Decimal one)."""
    if obj.get("customer_id") is None and obj.get("card_id") is None:
        return None
    prices: list[str] = []
    cents = 0
    for line in obj["lines"]:
        if type(line) is not dict or not _fields_pass(line, _LINE_SPEC):
            return None
        price = money_normalised(line["unit_price"])
        if price is None:
            return None
        prices.append(price)
        cents += int(price.replace(".", "")) * line["quantity"]
    total = money_normalised(obj["total"])
    if total is None or int(total.replace(".", "")) != cents:
        return None
    return Checked(occurred_at, total=total, unit_prices=prices)
