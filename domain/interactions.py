"""Inbound interactions: bytes from Kafka -> a validated `Interaction` (contract section 4).

Pure: no Kafka, no SQL. Checks run in the contract's order: `malformed` (not UTF-8 JSON,
not an object), then `invalid` (missing or wrong field, unknown `type`, bad total). The
recorded payload is the producer's own object, unknown fields kept, with only the money
fields rewritten to their normalised text ("12.5", 12.5 and "12.50" all become "12.50"),
so that equal digests mean "same content" (key order, white space and money notation
ignored).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import rfc8785
from pydantic import ValidationError

from domain.canonical import canonical_bytes, encode_plain, is_plain
from domain.quick_check import Checked, quick_check
from domain.schema import INTERACTION_ADAPTER, MODELS, PurchaseLine, money_text

__all__ = [
    "INTERACTION_TYPES",
    "Interaction",
    "InvalidInteraction",
    "MalformedInteraction",
    "RejectedInteraction",
    "interaction_json_schema",
    "parse_interaction",
    "routing_key",
    "validate_object",
]

INTERACTION_TYPES: tuple[str, ...] = tuple(
    model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for model in MODELS
)
_TYPES = frozenset(INTERACTION_TYPES)
_ID_FIELDS = ("customer_id", "card_id", "partner_id")
_KEY_FIELDS = ("customer_id", "survivor_id", "card_id", "partner_id")
"""The key rule (contract section 8): the first of these an interaction has."""
_MERGES = frozenset({"customers_merged", "customers_unmerged"})
_KNOWN_IDS: dict[str, tuple[bool, bool, bool]] = {
    name: tuple(field in model.model_fields for field in _ID_FIELDS)  # type: ignore[misc]
    for name, model in zip(INTERACTION_TYPES, MODELS, strict=True)
}
_KNOWN_KEYS = {
    name: frozenset(model.model_fields)
    for name, model in zip(INTERACTION_TYPES, MODELS, strict=True)
}
_LINE_KEYS = frozenset(PurchaseLine.model_fields)
BASKETS = frozenset({"purchase", "purchase_returned"})
"""The types with `lines` and a `total` (money normalised the same way)."""
_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Interaction",
    "description": "One inbound interaction, schema version 1. Unknown fields are allowed "
    'and kept. Integers and booleans are strict (no "3", no "yes").',
    **INTERACTION_ADAPTER.json_schema(),
}


def _drop_null_defaults(node: Any) -> None:
    """Optional fields may be left out but not sent as null: no `"default": null` shown."""
    if isinstance(node, dict):
        if "default" in node and node["default"] is None:
            del node["default"]
        for item in node.values():
            _drop_null_defaults(item)
    elif isinstance(node, list):
        for item in node:
            _drop_null_defaults(item)


_drop_null_defaults(_JSON_SCHEMA)


class RejectedInteraction(Exception):
    """An inbound message that cannot be recorded; `reason` is one readable line."""

    error_type: str = "invalid"
    event_id: str | None = None  # the message's own event_id, when it has a readable one

    def __init__(self, reason: str) -> None:
        self.reason = " ".join(reason.splitlines())
        super().__init__(self.reason)


class MalformedInteraction(RejectedInteraction):
    """Not UTF-8 JSON, or not a JSON object."""

    error_type = "malformed"


class InvalidInteraction(RejectedInteraction):
    """A missing or wrong field, an unknown `type`, a bad total."""

    error_type = "invalid"


@dataclass(slots=True)
class Interaction:
    """A valid interaction, ready to be recorded. Never changed once made
    (`dataclasses.replace` makes another); not declared frozen for speed: a frozen
    dataclass's `__init__` cost ~1.5 us more per interaction on ingest's hot path."""

    event_id: str
    type: str
    occurred_at: datetime
    payload: dict[str, Any]
    digest: str
    canonical: bytes  # the payload's RFC 8785 bytes: the digest's input, reused by the chain hash
    customer_id: str | None  # a merge's survivor: recorded on its stream, sealed with its key
    card_id: str | None
    partner_id: str | None


def parse_interaction(raw: bytes | bytearray | memoryview | None) -> Interaction:
    """Bytes from Kafka -> Interaction, or raise `MalformedInteraction`/`InvalidInteraction`."""
    if not raw:
        raise MalformedInteraction("empty message: expected a JSON object")
    raw = bytes(raw) if isinstance(raw, memoryview) else raw
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedInteraction(
            f"{len(raw):,} bytes: over the {MAX_MESSAGE_BYTES:,}-byte limit of an interaction"
        )
    if nested_deeper_than(raw, MAX_DEPTH):
        raise MalformedInteraction(f"nested deeper than {MAX_DEPTH} levels")
    # orjson parses the common case ~3x faster. It reads integers past 64 bits (below
    # -2**63, above 2**64-1) as floats, so a message with a run of 19 digits goes to the
    # standard parser, as does anything orjson refuses (the standard parser then gives the
    # readable reason). The run is found by mapping every digit to "0" and looking for 19
    # zeros: ~0.7 us, where a regular expression's scan of a message took ~6 us.
    if _LONG_DIGITS not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return validate_object(orjson.loads(raw))
        except orjson.JSONDecodeError:
            pass
    try:
        text = str(raw, "utf-8")
    except UnicodeDecodeError as error:
        raise MalformedInteraction(f"not UTF-8: invalid byte at offset {error.start}") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise MalformedInteraction(
            f"not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except ValueError as error:
        raise MalformedInteraction(f"not JSON: {error}") from None
    except RecursionError:
        raise MalformedInteraction("not JSON: nested too deeply") from None
    return validate_object(value)


MAX_MESSAGE_BYTES = 1_048_576
"""The largest inbound message that is decided as an interaction (Kafka's default message
limit): anything larger is `malformed`, so that its dead letter, stored whole in
PostgreSQL, is the only copy the ledger must keep of it."""
MAX_DEPTH = 32
"""The deepest nesting of arrays and objects an interaction may have (the contract's
deepest is 3: a purchase's lines). Checked on the bytes before parsing, so that nothing
downstream (parsers, encoders, scans of rejected messages) meets a recursion limit."""

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
"""A JSON string, or an unterminated one to the end: every quote starts a match, so the
scan is linear (a pattern that must find the closing quote rescans from every quote of an
unterminated string: quadratic, an hour for a megabyte of `\\"`)."""
_BRACKET = re.compile(rb"[\[\]{}]")


def nested_deeper_than(raw: bytes | bytearray, limit: int) -> bool:
    """Whether JSON text nests arrays and objects more than `limit` deep, brackets inside
    strings ignored. Iterative, linear, and nearly free for ordinary messages (fewer
    opening brackets than the limit)."""
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    depth = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub(b"", raw)):
        depth += 1 if bracket in b"[{" else -1
        if depth > limit:
            return True
    return False


def validate_object(obj: object) -> Interaction:
    """An already parsed JSON value -> Interaction (malformed unless a dict, else invalid)."""
    if not isinstance(obj, dict):
        raise MalformedInteraction(f"not a JSON object but {_json_kind(obj)}")
    kind = obj.get("type")
    if type(kind) is not str or kind not in _TYPES:
        if "type" not in obj:
            raise InvalidInteraction("missing field 'type'")
        if type(kind) is not str:
            raise InvalidInteraction(f"type: must be a string (got {_show(kind)})")
        raise InvalidInteraction(f"unknown type {_show(kind)}")
    checked = quick_check(obj, kind)  # the common, valid case, by hand (see there)
    if checked is None:
        checked = _checked_by_pydantic(obj, kind)
    payload = dict(obj)
    if kind in BASKETS:
        if checked.total != obj["total"]:
            payload["total"] = checked.total
        prices = checked.unit_prices
        assert prices is not None
        lines = obj["lines"]
        if any(line["unit_price"] != price for line, price in zip(lines, prices, strict=True)):
            payload["lines"] = [
                {**line, "unit_price": price} for line, price in zip(lines, prices, strict=True)
            ]
    elif checked.value is not None:
        payload["value"] = checked.value
    known = _KNOWN_IDS[kind]
    canonical = _canonical(payload, kind)
    return Interaction(
        event_id=obj["event_id"].lower(),
        type=kind,
        occurred_at=checked.occurred_at,
        payload=payload,
        digest=hashlib.sha256(canonical).hexdigest(),
        canonical=canonical,
        # A merge is the survivor's: recorded on its stream, sealed with its key.
        customer_id=obj["survivor_id"]
        if kind in _MERGES
        else obj.get("customer_id")
        if known[0]
        else None,
        card_id=obj.get("card_id") if known[1] else None,
        partner_id=obj.get("partner_id") if known[2] else None,
    )


def _checked_by_pydantic(obj: dict[str, Any], kind: str) -> Checked:
    """The schema's models decide: `invalid` with their first error, or the same
    `Checked` the hand check gives."""
    try:
        model = INTERACTION_ADAPTER.validate_python(obj)
    except ValidationError as error:
        raise InvalidInteraction(_describe(error)) from None
    if kind in BASKETS:
        return Checked(
            model.occurred_at,
            total=money_text(model.total),
            unit_prices=[money_text(line.unit_price) for line in model.lines],
        )
    if kind == "contract_changed" and model.value is not None:
        return Checked(model.occurred_at, value=money_text(model.value))
    return Checked(model.occurred_at)


def routing_key(obj: Mapping[str, Any]) -> str | None:
    """The Kafka key (contract sections 3 and 8): customer_id, else survivor_id, else
    card_id, else partner_id."""
    for field in _KEY_FIELDS:
        value = obj.get(field)
        if type(value) is str and value:
            return value
    return None


def interaction_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an inbound interaction, for producers."""
    return copy.deepcopy(_JSON_SCHEMA)


# --- helpers ---------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_DIGITS = b"0" * 19
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # NaN, Infinity: not JSON


def _canonical(payload: dict[str, Any], type: str) -> bytes:
    """`domain.canonical.canonical_bytes(payload)`, turning what JSON cannot hold into `invalid`.

    Fast path: the known fields were validated (strings, booleans, integers within
    +-(2**53-1), money as text; ASCII names), so the payload is in `canonical_bytes`'s plain
    subset when its unknown fields are; the same `json.dumps` call then gives the same bytes
    without walking the known fields again (a unit test holds the two equal).
    """
    try:
        if _plain_extras(payload, _KNOWN_KEYS[type]) and (
            type not in BASKETS or all(_plain_extras(line, _LINE_KEYS) for line in payload["lines"])
        ):
            encoded = encode_plain(payload)
        else:
            encoded = canonical_bytes(payload)
    except rfc8785.IntegerDomainError:
        raise InvalidInteraction("an integer is outside the I-JSON range of +-(2**53-1)") from None
    except rfc8785.FloatDomainError:
        raise InvalidInteraction("a number is too large (not finite)") from None
    except UnicodeEncodeError:
        raise InvalidInteraction("a string holds a lone surrogate (not Unicode)") from None
    except (rfc8785.CanonicalizationError, RecursionError) as error:
        raise InvalidInteraction(f"cannot be encoded canonically: {error}") from None
    if b"\\u0000" in encoded and _has_nul(payload):
        # PostgreSQL text and jsonb cannot store U+0000; refuse it here, not in a projection.
        raise InvalidInteraction("a string holds the NUL character (\\u0000)")
    return encoded


def _plain_extras(mapping: dict[str, Any], known: frozenset[str]) -> bool:
    return mapping.keys() <= known or all(
        key in known or (type(key) is str and key.isascii() and is_plain(value))
        for key, value in mapping.items()
    )


def _has_nul(value: Any) -> bool:
    if type(value) is str:
        return "\x00" in value
    if type(value) is dict:
        return any("\x00" in key or _has_nul(item) for key, item in value.items())
    if type(value) is list:
        return any(_has_nul(item) for item in value)
    return False


_MESSAGES = {
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "too_short": "must not be empty",
    "model_type": "must be an object",
    "dict_type": "must be an object",
}
_PATTERNS = {
    "currency": "must be an ISO 4217 code of 3 capital letters, like EUR",
    "event_id": "must be a UUID like 123e4567-e89b-12d3-a456-426614174000",
}


def _describe(error: ValidationError) -> str:
    """The first error of a ValidationError as one line: 'lines.0.quantity: must be ...'."""
    errors = error.errors(include_url=False)
    first = errors[0]
    kind, ctx = first["type"], first.get("ctx") or {}
    loc = [str(part) for part in first["loc"][1:]]  # [0] is the union tag
    path = ".".join(loc)
    if not loc:  # a check of the whole model: its message names the fields
        text = first["msg"]
    elif kind == "missing":
        text = f"missing field '{path}'"
    else:
        if kind in _MESSAGES:
            message = _MESSAGES[kind]
        elif kind == "string_pattern_mismatch":
            message = _PATTERNS.get(loc[-1] if loc else "", f"must match {ctx.get('pattern')}")
        elif kind == "string_too_long":
            message = f"must be at most {ctx.get('max_length')} characters"
        elif kind == "literal_error":
            message = f"must be one of {ctx.get('expected')}"
        elif kind == "greater_than":
            message = f"must be an integer greater than {ctx.get('gt')}"
        elif kind == "greater_than_equal":
            message = f"must be at least {ctx.get('ge')}"
        elif kind == "less_than_equal":
            message = f"must be at most {ctx.get('le')}"
        else:
            message = first["msg"][:1].lower() + first["msg"][1:]
        text = f"{path}: {message} (got {_show(first['input'])})"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return text


def _show(value: Any) -> str:
    """A short one-line rendering of a JSON value for a reason."""
    try:
        text = repr(value) if type(value) is str else json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__
