"""Reading the ledger itself: a customer's or partner's recorded events, and profiles as of a
past moment, folded from those events with the live projection's own fold.

Events are read straight from the event store's table (`store.event_store`) and
decoded by the one decoder of stored rows (`store.event_rows`): the stored state is the
event's JSON, so no application (and no aggregate) is needed to show it. A customer's
history is its own stream and the streams of the cards it held (enrolled, or took in a
replacement; replaced ones too): interactions that named only the card, which count for the
card's holder (and, in ledgers recorded before the card holders' table, the cards'
`card_claimed` events).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Connection

from domain import profile as fold
from domain.aggregates import (
    CARD_CLAIMED,
    card_stream,
    customer_stream,
    partner_stream,
    stream_id,
)
from domain.cards import claimed_card
from domain.profile import utc_text
from domain.shredding import ERASED, unseal
from store import event_store
from store.event_rows import event_state
from store.keys import read_keys


def events(
    conn: Connection[Any], streams: list[str], *, erased: Any = ERASED
) -> list[dict[str, Any]]:
    """The recorded events of these streams, in the order the ledger recorded them, with
    personal fields opened with their customer's key (`erased` once it is destroyed), and
    the payload as recorded (`hashed_payload`, personal fields sealed): what the event's
    hash covers, so that an auditor holding only a history recomputes every hash."""
    names: dict[UUID, str] = {stream_id(name): name for name in streams}
    rows = event_store.of_streams(conn, list(names))
    decoded = [(o, v, event_state(state), n) for o, v, state, n in rows]
    owners = {e["payload"].get("customer_id") for _, _, e, _ in decoded}
    keys = read_keys(conn, [c for c in owners if c])
    found = []
    for originator_id, version, event, position in decoded:
        customer_id = event["payload"].get("customer_id")
        payload = unseal(
            event["kind"], event["payload"], customer_id, keys.get(customer_id), erased=erased
        )
        found.append(
            {
                "position": position,
                "stream": names[originator_id],
                "originator_id": str(originator_id),
                "version": version,
                "type": event["kind"],
                "event_id": event["event_id"],
                "occurred_at": payload.get("occurred_at"),
                "recorded_at": utc_text(event["timestamp"]),
                "payload": payload,
                "hashed_payload": event["payload"],
                "prev_hash": event["prev_hash"],
                "hash": event["hash"],
            }
        )
    return found


def customer_events(
    conn: Connection[Any], customer_id: str, *, erased: Any = ERASED
) -> list[dict[str, Any]]:
    """The customer's stream and the streams of the cards it held, replaced ones included
    (empty: unknown)."""
    own = events(conn, [customer_stream(customer_id)], erased=erased)
    cards = sorted({card for e in own if (card := claimed_card(e["type"], e["payload"]))})
    if not cards:
        return own
    return events(conn, [customer_stream(customer_id), *map(card_stream, cards)], erased=erased)


def partner_events(conn: Connection[Any], partner_id: str) -> list[dict[str, Any]]:
    return events(conn, [partner_stream(partner_id)])


def profile_as_of(
    conn: Connection[Any], customer_id: str, moment: datetime
) -> dict[str, Any] | None:
    """What the ledger knew of the customer at `moment`: the profile folded from the events
    recorded at or before it (None if none was). A card-only interaction counts once the
    card's claim by this customer was recorded by then."""
    known = [e for e in customer_events(conn, customer_id, erased=None) if _at(e) <= moment]
    own = customer_stream(customer_id)
    if not any(e["stream"] == own for e in known):
        return None
    held = {
        card_stream(card)
        for e in known
        if (card := claimed_card(e["type"], e["payload"]))
        and e["payload"]["customer_id"] == customer_id
    }
    counted = [
        (e["type"], e["payload"])
        for e in known
        if e["stream"] == own or (e["stream"] in held and e["type"] != CARD_CLAIMED)
    ]
    return fold.fold(customer_id, counted)


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["recorded_at"])
