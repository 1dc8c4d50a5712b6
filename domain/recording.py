"""Which streams an interaction is recorded on, and the command that records it there.

Pure: given the interaction and the streams it names as they stand (None for a stream
with no events yet), record it and return the streams that gained events, or raise a
`RuleViolation`. The application loads and saves; this decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.aggregates import (
    CARD_CLAIMED,
    Card,
    Customer,
    LedgerStream,
    card_stream,
    customer_stream,
    partner_stream,
    stream_class,
)
from domain.errors import CustomerForgotten
from domain.interactions import Interaction
from domain.schema import PARTNER_TYPES


def streams_named(ix: Interaction) -> list[str]:
    """The streams the interaction is recorded on, or whose rules it must pass."""
    if ix.type in PARTNER_TYPES:
        assert ix.partner_id is not None
        return [partner_stream(ix.partner_id)]
    if ix.type == "customer_enrolled":
        assert ix.customer_id is not None and ix.card_id is not None
        return [customer_stream(ix.customer_id), card_stream(ix.card_id)]
    if ix.customer_id is not None and ix.card_id is not None:
        # Recorded on the customer's stream; the card's only says whether it was forgotten.
        return [customer_stream(ix.customer_id), card_stream(ix.card_id)]
    if ix.customer_id is not None:
        return [customer_stream(ix.customer_id)]
    assert ix.card_id is not None
    return [card_stream(ix.card_id)]


def card_claim(ix: Interaction) -> dict[str, Any]:
    """The card stream's payload for an enrollment: no personal data, only who holds it."""
    return {
        "event_id": ix.event_id,
        "customer_id": ix.customer_id,
        "card_id": ix.card_id,
        "occurred_at": ix.payload["occurred_at"],
    }


def record(ix: Interaction, streams: Mapping[str, LedgerStream | None]) -> list[LedgerStream]:
    """Record `ix` on its streams; return the streams that gained an event (new ones too)."""
    names = streams_named(ix)
    if ix.type == "customer_enrolled":
        customer_name, card_name = names
        card = streams[card_name]
        claim = card_claim(ix)
        Card.check(card if isinstance(card, Card) else None, CARD_CLAIMED, claim)
        touched = [
            _record_on(
                Customer, customer_name, streams, ix.type, ix.event_id, ix.payload, ix.canonical
            )
        ]
        if card is None or (isinstance(card, Card) and card.owner is None):
            touched.append(_record_on(Card, card_name, streams, CARD_CLAIMED, ix.event_id, claim))
        return touched
    name = names[0]
    for other in names[1:]:
        card = streams[other]
        if isinstance(card, Card) and card.forgotten:
            raise CustomerForgotten(f"card {ix.card_id!r} belongs to a forgotten customer")
    cls = stream_class(name)
    assert cls is not None, name  # `streams_named` names only the ledger's streams
    return [_record_on(cls, name, streams, ix.type, ix.event_id, ix.payload, ix.canonical)]


def _record_on(
    cls: type[LedgerStream],
    name: str,
    streams: Mapping[str, LedgerStream | None],
    kind: str,
    event_id: str,
    payload: dict[str, Any],
    payload_bytes: bytes | None = None,
) -> LedgerStream:
    existing = streams[name]
    if existing is None:
        return cls.open(name, kind, event_id, payload, payload_bytes)
    existing.append(kind, event_id, payload, payload_bytes)
    return existing
