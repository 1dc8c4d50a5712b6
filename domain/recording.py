"""Which streams an interaction is recorded on, and the command that records it there.

Pure: given the interaction and the streams it names as they stand (None for a stream
with no events yet), record it and return the streams that gained events, or raise a
`RuleViolation`. The application loads and saves; this decides.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from domain import merges
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
from domain.cards import CARD_REPLACED, Retirement, check_alone, check_claim, check_replacement
from domain.errors import CustomerForgotten, CustomerNotEnrolled
from domain.interactions import Interaction
from domain.merges import MERGED, MERGES
from domain.schema import on_partner_stream


def streams_named(ix: Interaction) -> list[str]:
    """The streams the interaction is recorded on, or whose rules it must pass."""
    if on_partner_stream(ix.type, ix.payload):
        assert ix.partner_id is not None
        return [partner_stream(ix.partner_id)]
    if ix.type in MERGES:
        # Recorded on the survivor's stream; the merged customer's is read for its rules.
        p = ix.payload
        return [customer_stream(p["survivor_id"]), customer_stream(p["merged_id"])]
    if ix.type == CARD_REPLACED:
        # Recorded on the customer's stream; the cards' are named so that what else a batch
        # does with them is decided again with it (`domain.decision.involved`).
        assert ix.customer_id is not None
        p = ix.payload
        return [
            customer_stream(ix.customer_id),
            card_stream(p["old_card_id"]),
            card_stream(p["new_card_id"]),
        ]
    if ix.type == "customer_enrolled":
        # Recorded on the customer's stream; the card's is read for its rules.
        assert ix.customer_id is not None and ix.card_id is not None
        return [customer_stream(ix.customer_id), card_stream(ix.card_id)]
    if ix.customer_id is not None and ix.card_id is not None:
        # Recorded on the customer's stream; the card's only says whether it was forgotten.
        return [customer_stream(ix.customer_id), card_stream(ix.card_id)]
    if ix.customer_id is not None:
        return [customer_stream(ix.customer_id)]
    assert ix.card_id is not None
    return [card_stream(ix.card_id)]


def record(
    ix: Interaction,
    streams: Mapping[str, LedgerStream | None],
    holders: MutableMapping[str, str],
    retired: MutableMapping[str, Retirement] | None = None,
    parents: MutableMapping[str, str] | None = None,
) -> list[LedgerStream]:
    """Record `ix` on its stream; return the streams that gained an event (new ones too).

    An enrollment and a replacement are recorded on the customer's stream only; the card
    they hold is held in `holders` and a replaced card retired in `retired` (`domain.cards`:
    the card holders' table as loaded, extended by the batch), which the store writes in
    the events' transaction. A card's stream is read (a forgotten customer's card, an old
    ledger's `card_claimed`), never written: it belongs to the card's partition. So is a
    merged customer's: a merge or unmerge is recorded on the survivor's stream, its edge
    kept in `parents` (`domain.merges`)."""
    names = streams_named(ix)
    retired = {} if retired is None else retired
    if ix.type in MERGES:
        return [_merge(ix, streams, {} if parents is None else parents)]
    if ix.type == "customer_enrolled":
        customer_name, card_name = names
        card_id, customer_id = ix.payload["card_id"], ix.payload["customer_id"]
        named = streams[card_name]
        card = named if isinstance(named, Card) else None
        Card.check(card, CARD_CLAIMED, {})  # a forgotten customer's card first
        check_claim(holders, retired, card_id, customer_id)
        Card.check_claim(card, holders.get(card_id), card_id, customer_id)
        touched = _record_on(
            Customer, customer_name, streams, ix.type, ix.event_id, ix.payload, ix.canonical
        )
        holders.setdefault(card_id, customer_id)
        return [touched]
    if ix.type == CARD_REPLACED:
        return [_replace(ix, streams, holders, retired)]
    name = names[0]
    for other in names[1:]:
        read = streams[other]
        if isinstance(read, Card) and read.forgotten:
            raise CustomerForgotten(f"card {ix.card_id!r} belongs to a forgotten customer")
    home = streams[name]
    if isinstance(home, Card) and home.forgotten:
        pass  # a forgotten card's own rule speaks first (below)
    elif ix.customer_id is None and ix.card_id is not None:
        check_alone(retired, ix.card_id, ix.type, ix.occurred_at)
    cls = stream_class(name)
    assert cls is not None, name  # `streams_named` names only the ledger's streams
    return [_record_on(cls, name, streams, ix.type, ix.event_id, ix.payload, ix.canonical)]


def _replace(
    ix: Interaction,
    streams: Mapping[str, LedgerStream | None],
    holders: MutableMapping[str, str],
    retired: MutableMapping[str, Retirement],
) -> LedgerStream:
    """A replacement: checked (a forgotten customer first), recorded on the customer's
    stream, the new card held and the old one retired."""
    payload = ix.payload
    customer_id, old, new = payload["customer_id"], payload["old_card_id"], payload["new_card_id"]
    name = customer_stream(customer_id)
    Customer.check(_customer(streams.get(name)), ix.type, payload)  # forgotten?
    for card_id in (old, new):  # a forgotten customer's card: nothing kept (`CustomerForgotten`)
        card = streams.get(card_stream(card_id))
        if isinstance(card, Card) and card.forgotten:
            raise CustomerForgotten(f"card {card_id!r} belongs to a forgotten customer")
    check_replacement(holders, retired, payload)
    touched = _record_on(Customer, name, streams, ix.type, ix.event_id, payload, ix.canonical)
    holders[new] = customer_id
    retired[old] = Retirement(old, new, customer_id, ix.occurred_at)
    return touched


def _merge(
    ix: Interaction, streams: Mapping[str, LedgerStream | None], parents: MutableMapping[str, str]
) -> LedgerStream:
    """A merge or unmerge: both customers enrolled and not forgotten (for a merge), then
    the rules of the forest, then recorded on the survivor's stream."""
    survivor_name, merged_name = streams_named(ix)
    both = (
        (ix.payload["survivor_id"], _customer(streams.get(survivor_name))),
        (ix.payload["merged_id"], _customer(streams.get(merged_name))),
    )
    for customer_id, stream in both:
        if stream is not None and stream.forgotten:
            raise CustomerForgotten(f"customer {customer_id!r} was forgotten")
    if ix.type == MERGED:
        for customer_id, stream in both:
            if stream is None or not stream.enrolled:
                raise CustomerNotEnrolled(f"customer {customer_id!r} was never enrolled")
    merges.check(parents, ix.type, ix.payload)
    touched = _record_on(
        Customer, survivor_name, streams, ix.type, ix.event_id, ix.payload, ix.canonical
    )
    merges.apply(parents, merges.change(ix.type, ix.payload, ix.event_id))
    return touched


def _customer(stream: LedgerStream | None) -> Customer | None:
    return stream if isinstance(stream, Customer) else None


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
