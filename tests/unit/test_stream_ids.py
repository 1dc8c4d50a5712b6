"""Streams know the id they are named after, and the interaction types are one enum whose
members are the contract's strings."""

from __future__ import annotations

import orjson

from domain.aggregates import (
    Card,
    Customer,
    Partner,
    card_stream,
    customer_stream,
    partner_stream,
    stream_class,
)
from domain.interactions import INTERACTION_TYPES
from domain.schema import PARTNER_TYPES, InteractionType


def claim() -> dict[str, str]:
    return {"event_id": "e-1", "customer_id": "C-1", "card_id": "K-1-a"}


def test_each_stream_knows_its_id_and_keeps_no_copy_of_it() -> None:
    customer = Customer.open(customer_stream("C-1-x"), "consent_changed", "e-1", {})
    card = Card.open(card_stream("K-1-a"), "card_claimed", "e-1", claim())
    partner = Partner.open(partner_stream("P-9"), "dispute_opened", "e-2", {"dispute_id": "D"})
    assert (customer.customer_id, card.card_id, partner.partner_id) == ("C-1-x", "K-1-a", "P-9")
    assert customer.named_id == "C-1-x"
    for stream, derived in ((customer, "customer_id"), (card, "card_id"), (partner, "partner_id")):
        assert derived not in vars(stream)  # not state, so nothing stored changes


def test_a_stream_name_gives_its_class() -> None:
    assert stream_class("customer-C-1") is Customer
    assert stream_class("card-K-1") is Card
    assert stream_class("partner-P-1") is Partner
    assert stream_class("shop-S-1") is None


def test_interaction_types_are_the_contracts_strings() -> None:
    assert set(INTERACTION_TYPES) == {t.value for t in InteractionType}
    assert InteractionType.CONTRACT_CHANGED == "contract_changed"
    assert orjson.dumps({"type": InteractionType.PURCHASE}) == b'{"type":"purchase"}'
    assert "dispute_opened" in PARTNER_TYPES
