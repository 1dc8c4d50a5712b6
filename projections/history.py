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
from domain.merges import MERGES, root_of
from domain.personal import key_holder
from domain.profile import utc_text
from domain.shredding import ERASED, unseal
from projections import merge_tree
from store import event_store, merges
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
    owners = {key_holder(e["payload"]) for _, _, e, _ in decoded}
    keys = read_keys(conn, [c for c in owners if c])
    found = []
    for originator_id, version, event, position in decoded:
        customer_id = key_holder(event["payload"])
        payload = unseal(
            event["kind"],
            event["payload"],
            customer_id,
            keys.get(customer_id) if customer_id else None,
            erased=erased,
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
    """The streams of every customer of the customer's tree of merges now (its own alone
    when merged into nobody) and of the cards they held, replaced ones included (empty:
    unknown)."""
    return _events_of(conn, merges.tree(conn, customer_id)[1], erased)


def _events_of(conn: Connection[Any], customers: list[str], erased: Any) -> list[dict[str, Any]]:
    names = [customer_stream(c) for c in customers]
    own = events(conn, names, erased=erased)
    cards = sorted({card for e in own if (card := claimed_card(e["type"], e["payload"]))})
    if not cards:
        return own
    return events(conn, [*names, *map(card_stream, cards)], erased=erased)


def partner_events(conn: Connection[Any], partner_id: str) -> list[dict[str, Any]]:
    return events(conn, [partner_stream(partner_id)])


def profile_as_of(
    conn: Connection[Any], customer_id: str, moment: datetime
) -> dict[str, Any] | None:
    """What the ledger knew of the customer at `moment`: the profile folded from the events
    recorded at or before it (None if none was), of the tree the customer was in then (its
    root's document, as a read of a merged customer answers now). A card-only interaction
    counts once the card's claim by a customer of the tree was recorded by then."""
    everyone = merges.ever_linked(conn, customer_id)
    known = [e for e in _events_of(conn, everyone, None) if _at(e) <= moment]
    if not any(e["stream"] == customer_stream(customer_id) for e in known):
        return None
    parents: dict[str, str] = {}
    for e in known:  # in the order recorded
        if e["type"] in MERGES:
            merge_tree.follow(parents, e["type"], e["payload"])
    root = root_of(parents, customer_id)
    tree = merge_tree.members(parents, root)
    streams = {customer_stream(c) for c in tree}
    held = {
        card_stream(card)
        for e in known
        if (card := claimed_card(e["type"], e["payload"])) and e["payload"]["customer_id"] in tree
    }
    state = fold.new_state(root)
    for e in known:
        if e["stream"] in streams or (e["stream"] in held and e["type"] != CARD_CLAIMED):
            fold.apply(state, e["type"], e["payload"])
    state["merged_ids"] = sorted(c for c in tree if c != root)
    return fold.render(state)


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["recorded_at"])
