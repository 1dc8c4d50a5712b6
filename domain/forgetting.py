"""Forgetting a customer (`ledger forget`): the events that close its streams for good.

Pure: given the customer's stream and the streams of the cards it holds, append a
`customer_forgotten` event to each (no personal data in them: ids, the time, and on the
customer's stream the operator's reason) and return the streams that gained one. From then
on the streams' rules refuse every interaction (`CustomerForgotten`); the application
destroys the customer's key in the same transaction, so the sealed personal fields of the
earlier events can no longer be opened, while every hash chain stays valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from domain.aggregates import CUSTOMER_FORGOTTEN, Card, Customer, LedgerStream

REASON_MAX = 500


def forget_event_id(customer_id: str) -> str:
    """One id per customer (uuid5), so a repeated `forget` is told apart from a first."""
    return str(uuid5(NAMESPACE_URL, f"urn:customer-ledger:forget:{customer_id}"))


@dataclass(frozen=True)
class Forgetting:
    event_id: str
    payload: dict[str, Any]  # the customer stream's event
    streams: list[LedgerStream]  # the customer's, then each card's
    card_ids: list[str]


def forget(
    customer: Customer, cards: Mapping[str, Card | None], reason: str, at: str
) -> Forgetting:
    """Record the forgetting on the customer's stream and each card it holds.

    Raises `CustomerForgotten` if it already was (the rules refuse anything after it).
    """
    customer_id = customer.stream.removeprefix("customer-")
    event_id = forget_event_id(customer_id)
    common: dict[str, Any] = {
        "event_id": event_id,
        "type": CUSTOMER_FORGOTTEN,
        "customer_id": customer_id,
        "occurred_at": at,
    }
    payload = {**common, "reason": reason}
    customer.append(CUSTOMER_FORGOTTEN, event_id, payload)
    touched: list[LedgerStream] = [customer]
    held = []
    for card_id in customer.cards:
        card = cards.get(card_id)
        if card is not None and card.owner == customer_id and not card.forgotten:
            card.append(CUSTOMER_FORGOTTEN, event_id, {**common, "card_id": card_id})
            touched.append(card)
            held.append(card_id)
    return Forgetting(event_id, payload, touched, held)
