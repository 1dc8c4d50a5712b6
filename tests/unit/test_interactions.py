"""Inbound interactions: what is accepted, what is rejected and why (contract section 4)."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.canonical import sha256_hex
from domain.interactions import (
    INTERACTION_TYPES,
    Interaction,
    InvalidInteraction,
    MalformedInteraction,
    RejectedInteraction,
    interaction_json_schema,
    parse_interaction,
    routing_key,
    validate_object,
)

EVENT_ID = "5f0c3a4e-9d1b-4c8e-a2f7-1b2c3d4e5f60"
COMMON = {"event_id": EVENT_ID, "occurred_at": "2024-05-01T12:30:00Z", "source": "pos-store-17"}

MINIMAL: dict[str, dict[str, Any]] = {
    "customer_enrolled": {"customer_id": "cust-1", "card_id": "card-1"},
    "card_swiped": {"card_id": "card-1", "store_id": "store-17"},
    "purchase": {
        "customer_id": "cust-1",
        "store_id": "store-17",
        "order_id": "order-1",
        "currency": "EUR",
        "total": "12.50",
        "lines": [
            {"sku": "sku-1", "category": "dairy", "quantity": 2, "unit_price": "3.75"},
            {"sku": "sku-2", "category": "bakery", "quantity": 1, "unit_price": "5.00"},
        ],
    },
    "call": {
        "customer_id": "cust-1",
        "direction": "inbound",
        "duration_seconds": 0,
        "topic": "billing",
    },
    "complaint_filed": {
        "customer_id": "cust-1",
        "complaint_id": "cmp-1",
        "category": "delivery",
        "severity": "high",
    },
    "complaint_resolved": {
        "customer_id": "cust-1",
        "complaint_id": "cmp-1",
        "resolution": "refunded",
    },
    "survey_answered": {"customer_id": "cust-1", "survey_id": "nps-2024", "score": 10},
    "consent_changed": {"customer_id": "cust-1", "marketing_consent": False},
    "contract_changed": {"partner_id": "partner-1", "contract_id": "k-1", "change": "proposed"},
    "dispute_opened": {"partner_id": "partner-1", "dispute_id": "d-1", "reason": "late"},
    "dispute_resolved": {"partner_id": "partner-1", "dispute_id": "d-1", "resolution": "paid"},
    "note_added": {
        "note_id": "n-1",
        "author": "agent-7",
        "text": "wants a call back",
        "customer_id": "C-1",
    },
    "purchase_returned": {
        "customer_id": "C-1",
        "store_id": "S-1",
        "order_id": "O-1",
        "return_id": "R-1",
        "currency": "EUR",
        "total": "5.00",
        "lines": [{"sku": "a", "category": "toys", "quantity": 1, "unit_price": "5.00"}],
    },
    "card_replaced": {"customer_id": "C-1", "old_card_id": "K-1", "new_card_id": "K-2"},
    "customers_merged": {"survivor_id": "C-1", "merged_id": "C-2"},
    "customers_unmerged": {"survivor_id": "C-1", "merged_id": "C-2"},
}


def event(kind: str = "purchase", **fields: Any) -> dict[str, Any]:
    """A minimal valid interaction of `kind`, with `fields` replacing or adding fields."""
    obj = {**COMMON, "type": kind, **copy.deepcopy(MINIMAL[kind]), **fields}
    return {key: value for key, value in obj.items() if value is not DROP}


DROP: Any = object()
"""`event(field=DROP)` leaves the field out."""


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8")


def rejection(obj: Any) -> RejectedInteraction:
    with pytest.raises(RejectedInteraction) as caught:
        parse_interaction(raw(obj))
    return caught.value


# --- accepted ---------------------------------------------------------------------------


def test_there_are_sixteen_interaction_types() -> None:
    assert len(INTERACTION_TYPES) == 16
    assert set(INTERACTION_TYPES) == set(MINIMAL)


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_each_type_is_accepted_with_a_minimal_example(kind: str) -> None:
    parsed = parse_interaction(raw(event(kind)))
    assert isinstance(parsed, Interaction)
    assert parsed.type == kind
    assert parsed.event_id == EVENT_ID
    assert parsed.occurred_at == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert parsed.digest == sha256_hex(parsed.payload)


def test_each_type_is_accepted_with_every_optional_field() -> None:
    full: dict[str, dict[str, Any]] = {
        "customer_enrolled": {
            "name": "Ada",
            "email": "ada@example.com",
            "birth_date": "1990-02-28",
            "marketing_consent": True,
        },
        "card_swiped": {"customer_id": "cust-1"},
        "purchase": {"card_id": "card-1"},
        "call": {"agent_id": "agent-7", "direction": "outbound"},
        "complaint_filed": {"description": "box was wet"},
        "complaint_resolved": {"satisfied": True},
        "card_replaced": {"reason": "lost"},
        "customers_merged": {"reason": "one person, enrolled at two tills"},
        "contract_changed": {
            "partner_kind": "supplier",
            "value": "1000.00",
            "currency": "USD",
            "effective_at": "2024-01-01",
            "ends_at": "2025-12-31",
        },
    }
    for kind, extra in full.items():
        assert parse_interaction(raw(event(kind, schema_version=1, **extra))).type == kind


def test_the_event_id_is_normalised_to_lower_case() -> None:
    parsed = validate_object(event(event_id=EVENT_ID.upper()))
    assert parsed.event_id == EVENT_ID


def test_occurred_at_with_an_offset_is_converted_to_utc() -> None:
    parsed = validate_object(event(occurred_at="2024-05-01T14:30:00.250+02:00"))
    assert parsed.occurred_at == datetime(2024, 5, 1, 12, 30, 0, 250000, tzinfo=UTC)
    assert parsed.occurred_at.utcoffset() is not None
    lower = validate_object(event(occurred_at="2024-05-01t12:30:00z"))
    assert lower.occurred_at == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def test_the_stream_ids_come_from_the_known_fields_of_the_type() -> None:
    purchase = validate_object(event(card_id="card-1"))
    assert (purchase.customer_id, purchase.card_id, purchase.partner_id) == (
        "cust-1",
        "card-1",
        None,
    )
    swipe = validate_object(event("card_swiped"))
    assert (swipe.customer_id, swipe.card_id) == (None, "card-1")
    dispute = validate_object(event("dispute_opened", customer_id="someone"))
    assert (dispute.customer_id, dispute.partner_id) == (None, "partner-1")


def test_a_purchase_may_name_only_a_card() -> None:
    parsed = validate_object(event(customer_id=DROP, card_id="card-9"))
    assert (parsed.customer_id, parsed.card_id) == (None, "card-9")


def test_bytearray_and_memoryview_are_parsed_like_bytes() -> None:
    data = raw(event())
    assert parse_interaction(bytearray(data)).digest == parse_interaction(data).digest
    assert parse_interaction(memoryview(data)).digest == parse_interaction(data).digest


# --- malformed --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"type": "purchase"}'.encode("utf-16"), "not UTF-8"),
        (b'{"type": "purchase",', "not JSON"),
        (b"[]", "array"),
        (b'"purchase"', "string"),
        (b"42", "number"),
        (b"null", "null"),
        (b"", "empty"),
        (b'{"type": "purchase", "total": NaN}', "NaN"),
        (b'{"total": Infinity}', "Infinity"),
        (b"[" * 100_000, "nested"),
    ],
)
def test_malformed_bytes_are_rejected_as_malformed(data: bytes, words: str) -> None:
    with pytest.raises(MalformedInteraction) as caught:
        parse_interaction(data)
    assert caught.value.error_type == "malformed"
    assert words in caught.value.reason


def test_a_missing_message_value_is_malformed() -> None:
    with pytest.raises(MalformedInteraction):
        parse_interaction(None)


@pytest.mark.parametrize("value", [[], "x", 3, None, [event()]])
def test_validate_object_calls_anything_but_an_object_malformed(value: Any) -> None:
    with pytest.raises(MalformedInteraction):
        validate_object(value)


# --- invalid ----------------------------------------------------------------------------

LINE = {"sku": "sku-1", "category": "dairy", "quantity": 1, "unit_price": "12.50"}

INVALID: list[tuple[str, dict[str, Any], str]] = [
    # common fields
    ("missing type", event(type=DROP), "missing field 'type'"),
    ("unknown type", event(type="refund"), "unknown type 'refund'"),
    ("type not a string", event(type=3), "type: must be a string"),
    ("type a list", event(type=["purchase"]), "type: must be a string"),
    ("missing event_id", event(event_id=DROP), "missing field 'event_id'"),
    ("event_id not a UUID", event(event_id="order-1"), "event_id: must be a UUID"),
    ("event_id a number", event(event_id=12), "event_id: must be a string"),
    ("missing occurred_at", event(occurred_at=DROP), "missing field 'occurred_at'"),
    ("naive timestamp", event(occurred_at="2024-05-01T12:30:00"), "occurred_at"),
    ("timestamp a number", event(occurred_at=1714566600), "occurred_at"),
    ("timestamp a date", event(occurred_at="2024-05-01"), "occurred_at"),
    ("timestamp with space", event(occurred_at="2024-05-01 12:30:00Z"), "occurred_at"),
    ("impossible timestamp", event(occurred_at="2024-02-30T12:30:00Z"), "occurred_at"),
    ("offset out of range", event(occurred_at="2024-05-01T12:30:00+24:00"), "occurred_at"),
    ("missing source", event(source=DROP), "missing field 'source'"),
    ("empty source", event(source=""), "source: must not be empty"),
    ("schema_version 2", event(schema_version=2), "schema_version: must be the integer 1"),
    ("schema_version true", event(schema_version=True), "schema_version"),
    ("schema_version string", event(schema_version="1"), "schema_version"),
    # strict types
    ("quantity a string", event(lines=[{**LINE, "quantity": "1"}]), "lines.0.quantity"),
    ("quantity a float", event(lines=[{**LINE, "quantity": 1.0}]), "lines.0.quantity"),
    ("quantity a bool", event(lines=[{**LINE, "quantity": True}]), "lines.0.quantity"),
    ("quantity zero", event(lines=[{**LINE, "quantity": 0}]), "greater than 0"),
    ("consent yes", event("consent_changed", marketing_consent="yes"), "must be true or false"),
    ("consent 1", event("consent_changed", marketing_consent=1), "marketing_consent"),
    ("id a number", event(customer_id=17), "customer_id: must be a string"),
    ("empty id", event("card_swiped", card_id=""), "card_id: must not be empty"),
    ("optional null", event("customer_enrolled", name=None), "name: must be a string"),
    ("duration a string", event("call", duration_seconds="60"), "duration_seconds"),
    ("duration negative", event("call", duration_seconds=-1), "duration_seconds"),
    ("score 11", event("survey_answered", score=11), "score: must be at most 10"),
    ("score negative", event("survey_answered", score=-1), "score"),
    ("score 7.0", event("survey_answered", score=7.0), "score: must be an integer"),
    ("satisfied a string", event("complaint_resolved", satisfied="true"), "satisfied"),
    # enumerations
    ("direction", event("call", direction="sideways"), "direction: must be one of"),
    ("severity", event("complaint_filed", severity="urgent"), "severity"),
    ("change", event("contract_changed", change="cancelled"), "change"),
    ("partner_kind", event("contract_changed", partner_kind="friend"), "partner_kind"),
    # missing fields of a type
    ("purchase without customer or card", event(customer_id=DROP), "customer_id' or 'card_id"),
    ("enrollment without card", event("customer_enrolled", card_id=DROP), "'card_id'"),
    ("call without topic", event("call", topic=DROP), "missing field 'topic'"),
    ("dispute without reason", event("dispute_opened", reason=DROP), "'reason'"),
    ("contract without partner", event("contract_changed", partner_id=DROP), "'partner_id'"),
    (
        "line without sku",
        event(lines=[{"category": "x", "quantity": 1, "unit_price": "12.50"}]),
        "missing field 'lines.0.sku'",
    ),
    # purchase shape and total
    ("no lines", event(lines=[]), "lines: must not be empty"),
    ("lines not a list", event(lines=LINE), "lines: must be a list"),
    ("line not an object", event(lines=["sku-1"]), "lines.0: must be an object"),
    ("bad total", event(total="10.00"), "total: 10.00 is not the sum of the lines (12.50)"),
    ("total off by a cent", event(total="12.51"), "is not the sum of the lines"),
    # money
    ("negative total", event(total="-12.50"), "total: must not be negative"),
    ("negative number", event(total=-1), "must not be negative"),
    ("negative price", event(lines=[{**LINE, "unit_price": -3}]), "lines.0.unit_price"),
    ("3 decimals", event(total="12.505"), "more than 2 decimal places"),
    ("3 decimals number", event(total=12.505), "more than 2 decimal places"),
    ("money a bool", event(total=True), "total: must be a decimal amount"),
    ("money words", event(total="twelve"), "total: must be a decimal amount"),
    ("money exponent", event(total="1.25e1"), "total: must be a decimal amount"),
    ("money spaces", event(total=" 12.50"), "total: must be a decimal amount"),
    ("money null", event(total=None), "total"),
    ("missing total", event(total=DROP), "missing field 'total'"),
    ("contract value negative", event("contract_changed", value="-5"), "value"),
    ("currency lower case", event(currency="eur"), "currency: must be an ISO 4217 code"),
    ("currency too long", event(currency="EURO"), "currency"),
    ("currency a number", event(currency=978), "currency: must be a string"),
    # card replacements
    ("same card", event("card_replaced", new_card_id="K-1"), "must not equal 'old_card_id'"),
    ("replacement reason", event("card_replaced", reason="worn"), "reason: must be one of"),
    ("no old card", event("card_replaced", old_card_id=DROP), "missing field 'old_card_id'"),
    # merges
    ("merged into itself", event("customers_merged", merged_id="C-1"), "must not equal"),
    ("unmerged from itself", event("customers_unmerged", merged_id="C-1"), "must not equal"),
    ("empty merge reason", event("customers_merged", reason=""), "reason: must not be empty"),
    # dates
    ("bad birth_date", event("customer_enrolled", birth_date="1990-02-30"), "birth_date"),
    ("birth_date with time", event("customer_enrolled", birth_date="1990-02-03T00:00"), "birth"),
    ("bad ends_at", event("contract_changed", ends_at="31/12/2025"), "ends_at"),
    ("effective_at a number", event("contract_changed", effective_at=20240101), "effective_at"),
    # what JSON or PostgreSQL cannot hold exactly
    ("huge integer", event(note=2**60), "I-JSON"),
    ("NUL character", event(note="a\x00b"), "NUL"),
]


@pytest.mark.parametrize(
    ("obj", "words"), [(o, w) for _, o, w in INVALID], ids=[n for n, *_ in INVALID]
)
def test_invalid_interactions_are_rejected_with_a_readable_reason(
    obj: dict[str, Any], words: str
) -> None:
    error = rejection(obj)
    assert isinstance(error, InvalidInteraction)
    assert error.error_type == "invalid"
    assert words in error.reason
    assert error.reason == str(error)
    assert "\n" not in error.reason and len(error.reason) < 300


def test_a_reason_shows_the_offending_value_and_counts_further_errors() -> None:
    error = rejection(event(lines=[{**LINE, "quantity": "3"}], currency="eur"))
    assert error.reason.startswith("currency: must be an ISO 4217 code")
    assert "(got 'eur')" in error.reason
    assert "(and 1 more error)" in error.reason


def test_a_reason_stays_on_one_line_whatever_the_input() -> None:
    error = rejection(event(type="re\nfund\u2028" + "x" * 500))
    assert len(error.reason.splitlines()) == 1
    assert len(error.reason) < 100


# --- money, digests and the payload -----------------------------------------------------


def purchase_at(price: Any) -> dict[str, Any]:
    line = {"sku": "sku-1", "category": "dairy", "quantity": 1, "unit_price": price}
    return event(total=price, lines=[line])


@pytest.mark.parametrize("price", [12.5, "12.5", "12.50", "12.500", 12.50])
def test_money_is_normalised_to_two_decimals(price: Any) -> None:
    parsed = parse_interaction(raw(purchase_at(price)))
    assert parsed.payload["total"] == "12.50"
    assert parsed.payload["lines"][0]["unit_price"] == "12.50"
    assert parsed.digest == parse_interaction(raw(purchase_at("12.50"))).digest


@pytest.mark.parametrize("price", [12, "12", "12.0", 12.0])
def test_whole_amounts_get_two_decimals(price: Any) -> None:
    parsed = validate_object(purchase_at(price))
    assert parsed.payload["total"] == "12.00"
    assert parsed.digest == validate_object(purchase_at("12.00")).digest


def test_zero_and_minus_zero_are_the_same_amount() -> None:
    assert validate_object(purchase_at("-0.00")).payload["total"] == "0.00"
    assert validate_object(purchase_at(-0.0)).digest == validate_object(purchase_at(0)).digest


def test_the_total_is_checked_with_exact_decimals() -> None:
    # 0.1 + 0.2 == 0.30000000000000004 in floats; here the sum is exact.
    lines = [
        {"sku": "a", "category": "x", "quantity": 1, "unit_price": 0.1},
        {"sku": "b", "category": "x", "quantity": 1, "unit_price": 0.2},
    ]
    assert validate_object(event(total=0.3, lines=lines)).payload["total"] == "0.30"
    big = [{"sku": "a", "category": "x", "quantity": 3, "unit_price": "333333333333333.33"}]
    parsed = validate_object(event(total="999999999999999.99", lines=big))
    assert parsed.payload["total"] == "999999999999999.99"


def test_contract_value_is_normalised() -> None:
    parsed = validate_object(event("contract_changed", value=1000, currency="EUR"))
    assert parsed.payload["value"] == "1000.00"


def test_only_the_money_fields_are_rewritten() -> None:
    obj = event(occurred_at="2024-05-01T14:30:00+02:00", event_id=EVENT_ID.upper())
    parsed = validate_object(obj)
    expected = {**obj, "total": "12.50"}
    expected["lines"] = [
        {**obj["lines"][0], "unit_price": "3.75"},
        {**obj["lines"][1], "unit_price": "5.00"},
    ]
    assert parsed.payload == expected


def test_the_input_object_is_not_changed() -> None:
    obj = purchase_at(12.5)
    before = copy.deepcopy(obj)
    validate_object(obj)
    assert obj == before


def test_same_content_in_another_key_order_and_spacing_has_the_same_digest() -> None:
    obj = event(note={"b": 1, "a": [1, 2]})
    reordered = json.dumps(dict(reversed(list(obj.items()))), indent=4).encode()
    compact = json.dumps(obj, separators=(",", ":")).encode()
    assert parse_interaction(reordered).digest == parse_interaction(compact).digest


def test_different_content_has_a_different_digest() -> None:
    base = validate_object(event()).digest
    assert validate_object(event(source="pos-store-18")).digest != base
    assert validate_object(event(note="hello")).digest != base
    assert validate_object(event(occurred_at="2024-05-01T12:30:01Z")).digest != base


def test_unknown_fields_are_kept_in_the_payload() -> None:
    obj = event(
        loyalty_tier="gold",
        nested={"x": [1, 2.5, None, True]},
        lines=[{**LINE, "discount_code": "SPRING"}],
        total="12.50",
    )
    parsed = parse_interaction(raw(obj))
    assert parsed.payload["loyalty_tier"] == "gold"
    assert parsed.payload["nested"] == {"x": [1, 2.5, None, True]}
    assert parsed.payload["lines"][0]["discount_code"] == "SPRING"


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"note": "plain"},
        {"ratio": 0.1, "big": 1e21},
        {"ünïcödé": "key", "emoji": "\U0001f600"},
        {"lines": [{**LINE, "weight_kg": 1.25}]},
    ],
)
def test_the_digest_is_the_canonical_hash_of_the_payload(extra: dict[str, Any]) -> None:
    kinds = ["purchase"] if "lines" in extra else list(MINIMAL)
    for kind in kinds:
        parsed = validate_object(event(kind, **extra))
        assert parsed.digest == sha256_hex(parsed.payload)


# --- routing, schema, errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "key"),
    [
        ({"customer_id": "c", "card_id": "k", "partner_id": "p"}, "c"),
        ({"card_id": "k", "partner_id": "p"}, "k"),
        ({"partner_id": "p"}, "p"),
        ({"customer_id": "", "card_id": "k"}, "k"),
        ({"customer_id": 5, "card_id": None, "partner_id": "p"}, "p"),
        ({"type": "purchase"}, None),
        ({"survivor_id": "s", "merged_id": "m", "card_id": "k"}, "s"),
        ({"customer_id": "c", "survivor_id": "s"}, "c"),
    ],
)
def test_routing_key_is_customer_else_survivor_else_card_else_partner(
    obj: dict[str, Any], key: str
) -> None:
    assert routing_key(obj) == key


def test_the_json_schema_is_a_discriminated_union_of_the_eleven_types() -> None:
    schema = interaction_json_schema()
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(schema["discriminator"]["mapping"]) == set(INTERACTION_TYPES)
    purchase = schema["$defs"]["Purchase"]
    assert purchase["additionalProperties"] is True
    assert {"event_id", "type", "occurred_at", "source", "total", "lines"} <= set(
        purchase["required"]
    )
    assert purchase["properties"]["occurred_at"]["format"] == "date-time"
    assert "default" not in purchase["properties"]["card_id"]
    json.dumps(schema)  # plain JSON
    schema["$defs"].clear()
    assert interaction_json_schema()["$defs"], "each call returns a fresh copy"


def test_rejections_share_one_base_class() -> None:
    assert issubclass(MalformedInteraction, RejectedInteraction)
    assert issubclass(InvalidInteraction, RejectedInteraction)
    assert MalformedInteraction("x").error_type == "malformed"
    assert InvalidInteraction("x").error_type == "invalid"


def test_parsing_a_purchase_is_fast() -> None:
    data = raw(event())
    count = 2000
    start = time.perf_counter()
    for _ in range(count):
        parse_interaction(data)
    per_message = (time.perf_counter() - start) / count
    assert per_message < 1e-3  # measured ~60 us; this only catches a gross regression


def test_an_unknown_field_is_recorded_exactly_or_refused_never_altered() -> None:
    text = raw(event("card_swiped", card_id="K-1", store_id="S")).decode()
    exact = parse_interaction(text.replace("{", '{"x_id":9007199254740991,', 1).encode())
    assert exact.payload["x_id"] == 9007199254740991
    with pytest.raises(InvalidInteraction):
        parse_interaction(text.replace("{", '{"x_big":123456789012345678901234567890,', 1).encode())


def test_an_id_longer_than_200_characters_is_invalid() -> None:
    """Ids key projection rows; PostgreSQL's index refuses a key over ~2,700 bytes."""
    raw = json.dumps(
        {
            "event_id": "123e4567-e89b-12d3-a456-426614174000",
            "type": "card_swiped",
            "occurred_at": "2026-01-01T00:00:00Z",
            "source": "pos",
            "card_id": "K" * 5000,
            "store_id": "S-1",
        }
    ).encode()
    with pytest.raises(InvalidInteraction, match="card_id: must be at most 200 characters"):
        parse_interaction(raw)
    parse_interaction(raw.replace(b"K" * 5000, b"K" * 200))


def test_bounds_at_the_door_are_malformed_with_the_reason() -> None:
    with pytest.raises(MalformedInteraction, match="nested deeper than 32 levels"):
        parse_interaction(b'{"a":' * 40 + b"1" + b"}" * 40)
    with pytest.raises(MalformedInteraction, match="over the 1,048,576-byte limit"):
        parse_interaction(b" " * 1_048_577)
    # brackets inside strings are text, not nesting
    parse_interaction(
        json.dumps(
            {
                "event_id": "123e4567-e89b-12d3-a456-426614174000",
                "type": "card_swiped",
                "occurred_at": "2026-01-01T00:00:00Z",
                "source": "[" * 100,
                "card_id": "K-1",
                "store_id": "S-1",
            }
        ).encode()
    )


@pytest.mark.parametrize("amount", [1e308, "1" * 20, 10**15, "1000000000000000.00"])
def test_an_amount_of_a_quadrillion_or_more_is_invalid(amount: object) -> None:
    """The folds add money exactly and trap rounding: such an amount would stop them."""
    ix = {
        "event_id": "123e4567-e89b-12d3-a456-426614174000",
        "type": "purchase",
        "occurred_at": "2026-01-01T00:00:00Z",
        "source": "pos",
        "customer_id": "C-1",
        "store_id": "S-1",
        "order_id": "O-1",
        "currency": "EUR",
        "total": amount,
        "lines": [{"sku": "a", "category": "c", "quantity": 1, "unit_price": amount}],
    }
    with pytest.raises(InvalidInteraction, match="must be less than 1,000,000,000,000,000"):
        parse_interaction(json.dumps(ix).encode())
    ix["total"] = ix["lines"][0]["unit_price"] = "999999999999999.99"  # type: ignore[index]
    assert parse_interaction(json.dumps(ix).encode()).payload["total"] == "999999999999999.99"
