"""Every projection rebuilt in memory from the whole log, then bulk-loaded: what `ledger
replay` and `ledger verify` run (`services.replay`).

The live projection (`projections.profiles`, `projections.partners`) reads a page at a
time and, per page, reads and upserts the rows it changes and evaluates the audiences of
every changed customer. A rebuild starts from empty tables and sees every event, so it
keeps each fold state in memory, applies the same folds (`domain.profile`,
`domain.partner`) with the same rules for cards (below), renders each profile once,
evaluates each audience once per customer at the pinned clock (`domain.membership.step`,
as a first evaluation: a customer's final membership is the verdict on its final profile,
whatever came before), and COPYs the final rows in, through each table's owner.

Cards, as the live projection has them: an interaction naming only a card counts for the
card's holder; before the card has one it is parked, and credited when the card is
claimed. A holder is learnt from the `customer_enrolled` naming the card, the
`card_replaced` naming it as the new card, or the card stream's `card_claimed` (older
ledgers): idempotently, the first one standing.

Parts: the customers can be rebuilt in parts (`services.replay` runs them at once in
processes of their own, and in more of them when the log does not fit in memory). A part
folds the customers whose stream id falls in its range (`bucket`) and reads only what they
need: their streams, every card stream (a card's holder may be anybody), and in part 0
the partners'. Every part parks what names a card none of its customers holds; each card's
parked interactions are written by one part, and the held ones dropped after the load
(`card_holders.drop_held_parked`). Memory per part: a fold state per customer, the
holders, and the parked card-only interactions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from queue import Full, Queue
from typing import Any

from psycopg import Connection

from domain import partner as partner_fold
from domain import profile as fold
from domain.aggregates import (
    CARD_CLAIMED,
    Card,
    Customer,
    card_stream,
    customer_stream,
    stream_id,
)
from domain.audiences import Audience
from domain.cards import claimed_card
from domain.membership import Change, Membership, step
from domain.merges import MERGES
from domain.personal import PERSONAL_FIELDS, PROFILE_PERSONAL_FIELDS
from domain.schema import on_partner_stream
from domain.shredding import sealed_fields, unseal
from projections import (
    audience_outbox,
    audiences,
    card_holders,
    merge_tree,
    partners,
    profiles,
)
from store.event_store import share_of

ENROLLED = "customer_enrolled"
SHOWN_SEALED = frozenset(
    type for type, fields in PERSONAL_FIELDS.items() if fields & set(PROFILE_PERSONAL_FIELDS)
)
"""The types whose sealed fields a profile shows: the only payloads a rebuild opens (the
other sealed fields, free text about a complaint or a call, are read by no fold)."""
OUTBOX_BATCH = 10_000
MEMBERS_BATCH = 5_000  # audience rows handed to their COPY at a time
LOAD_AHEAD = 8  # batches evaluated ahead of their COPY
Connect = Callable[[], Connection[Any]]
"""A new connection to the schema being rebuilt (committed when its `with` block ends)."""


def bucket(customer_id: str, parts: int) -> int:
    """The part that rebuilds this customer: its stream's share (`store.event_store.share_of`),
    so a part reads only its customers' streams."""
    return 0 if parts == 1 else share_of(stream_id(customer_stream(customer_id)), parts)


def _topic(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


TOPICS = (
    [_topic(Customer.Opened), _topic(Customer.Recorded)],
    [_topic(Card.Opened), _topic(Card.Recorded)],
)
"""The event topics of the customer streams, and of the card streams: how a part's read is
routed (`store.event_store.copy_log`)."""


class Rebuild:
    """The fold states of one part, fed the log's events in the ledger's order."""

    def __init__(self, part: int = 0, parts: int = 1) -> None:
        """`part` of `parts`: which customers this part folds (the partners go with
        part 0)."""
        self._part, self._parts = part, parts
        self._buckets: dict[str, bool] = {}  # customer -> whether this part folds it
        self._sealed: list[tuple[str, str, dict[str, Any]]] = []  # folded once keys are read
        self.states: dict[str, fold.State] = {}
        self.positions: dict[str, int] = {}  # customer -> position of its last credit
        self.triggers: dict[str, tuple[str, str]] = {}  # customer -> its last change's event
        self.holders: dict[str, str] = {}  # card -> customer (of this part)
        self._held: dict[str, str] = {}  # card -> customer (any part's)
        self.parked: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
        self.partners: dict[str, tuple[partner_fold.State, int]] = {}
        self.parents: dict[str, str] = {}  # merged -> survivor, of this part's survivors

    def _writes_parked(self, card_id: str) -> bool:
        """Whether this part writes the card's parked interactions: every part parks what
        names a card none of its customers holds, so each card's are written by one part
        (its stream's share), and `card_holders.drop_held_parked` then drops those of
        the cards a customer of another part holds."""
        return (
            self._parts == 1 or share_of(stream_id(card_stream(card_id)), self._parts) == self._part
        )

    def _mine(self, customer_id: str) -> bool:
        if self._parts == 1:
            return True
        mine = self._buckets.get(customer_id)
        if mine is None:
            mine = self._buckets[customer_id] = bucket(customer_id, self._parts) == self._part
        return mine

    def feed(self, position: int, type: str, payload: dict[str, Any]) -> None:
        """One event, in the ledger's order (the live projection's page loop, per event)."""
        if on_partner_stream(type, payload):
            if self._part == 0:
                self._partner(position, type, payload)
            return
        if type in MERGES:  # on the survivor's stream: this part's (the tree is settled later)
            merge_tree.follow(self.parents, type, payload)
            return
        customer_id = payload.get("customer_id")
        if not customer_id:  # an interaction naming only a card
            card_id = payload["card_id"]
            holder = self._held.get(card_id)
            if holder is None:
                self.parked.setdefault(card_id, []).append((position, type, payload))
            elif self._mine(holder):
                self._credit(holder, type, payload, position, type, payload["event_id"])
            return
        if type != CARD_CLAIMED and self._mine(customer_id):
            sealed = type in SHOWN_SEALED and bool(sealed_fields(type, payload))
            if sealed:
                self._sealed.append((customer_id, type, payload))
            self._credit(customer_id, type, payload, position, type, payload["event_id"], sealed)
        held = claimed_card(type, payload)
        if held is not None:
            trigger = ENROLLED if type == CARD_CLAIMED else type
            self._hold(position, held, customer_id, trigger, payload["event_id"])

    def sealed_owners(self) -> set[str]:
        """The customers whose keys `open_sealed` needs."""
        return {customer_id for customer_id, _, _ in self._sealed}

    def open_sealed(self, keys: dict[str, bytes | None]) -> None:
        """Fold the payloads held back for their sealed fields, opened with each customer's
        key (None: forgotten, the fields stay null). The profile fold is commutative, so
        folding them after the rest gives the same state; their keys are read in one query
        instead of one per page."""
        for customer_id, type, payload in self._sealed:
            opened = unseal(type, payload, customer_id, keys.get(customer_id))
            fold.apply(self.states[customer_id], type, opened)
        self._sealed = []

    def _hold(
        self, position: int, card_id: str, customer_id: str, trigger: str, event_id: str
    ) -> None:
        """A card's holder, learnt (the first stands); what was parked for it is credited
        to the holder now, by the event that claimed it (an older ledger's claim shares its
        enrollment's event_id)."""
        if card_id in self._held:
            return
        self._held[card_id] = customer_id
        waiting = self.parked.pop(card_id, [])
        if not self._mine(customer_id):
            return
        self.holders[card_id] = customer_id
        for _, type, payload in waiting:
            self._credit(customer_id, type, payload, position, trigger, event_id)

    def _credit(
        self,
        customer_id: str,
        type: str,
        payload: dict[str, Any],
        position: int,
        trigger_type: str,
        trigger_id: str,
        held_back: bool = False,
    ) -> None:
        state = self.states.get(customer_id)
        if state is None:
            state = self.states[customer_id] = fold.new_state(customer_id)
        if not held_back:
            fold.apply(state, type, payload)
        self.positions[customer_id] = position
        self.triggers[customer_id] = (trigger_type, trigger_id)

    def _partner(self, position: int, type: str, payload: dict[str, Any]) -> None:
        partner_id = payload["partner_id"]
        found = self.partners.get(partner_id)
        state = found[0] if found is not None else partner_fold.new_state(partner_id)
        partner_fold.apply(state, type, payload)
        self.partners[partner_id] = (state, position)

    def load(self, connect: Connect, book: list[Audience], now: datetime) -> None:
        """Write this part's final rows into the (empty) tables of the schema `connect`'s
        connections use. Two threads with a connection each write while this one computes:
        the profiles, holders and partners, then the audience rows batch by batch as they
        are evaluated, so PostgreSQL parses and indexes rows while Python works."""
        rendered = {c: fold.render(s) for c, s in self.states.items()}
        batches: Queue[tuple[list[Membership], list[Change]] | None] = Queue(LOAD_AHEAD)
        with ThreadPoolExecutor(2, thread_name_prefix="rebuild-load") as pool:
            loaded = [
                pool.submit(self._load_profiles, connect, rendered),
                pool.submit(_load_members, connect, batches),
            ]
            try:
                for batch in self._memberships(rendered, book, now):
                    _hand(batches, batch, loaded)
            finally:
                _hand(batches, None, loaded)
            for done in loaded:
                done.result()

    def _load_profiles(self, connect: Connect, rendered: dict[str, dict[str, Any]]) -> None:
        with connect() as conn, conn.cursor() as curs:
            profiles.copy_rows(
                curs, ((c, self.states[c], p, self.positions[c]) for c, p in rendered.items())
            )
            parked = [
                (card, *row)
                for card, rows in self.parked.items()
                if self._writes_parked(card)
                for row in rows
            ]
            card_holders.copy_rows(curs, self.holders, parked)
            merge_tree.copy_rows(curs, self.parents)
            partners.copy_rows(curs, ((p, s, n) for p, (s, n) in self.partners.items()))

    def _memberships(
        self, rendered: dict[str, dict[str, Any]], book: Iterable[Audience], now: datetime
    ) -> Iterator[tuple[list[Membership], list[Change]]]:
        """Each audience evaluated once per customer, on its final profile, in batches of
        rows to store and changes to record: a forgotten customer is in none (the live
        projection erases it and evaluates it no more)."""
        rows: list[Membership] = []
        changes: list[Change] = []
        book = list(book)
        for customer_id, profile in rendered.items():
            if fold.forgotten(self.states[customer_id]):
                continue
            trigger = "event {} {}".format(*self.triggers[customer_id])
            for audience in book:
                row, change = step(audience, customer_id, None, profile, now, trigger)
                if row is not None:
                    rows.append(row)
                if change is not None:
                    changes.append(change)
            if len(rows) >= MEMBERS_BATCH:
                yield rows, changes
                rows, changes = [], []
        yield rows, changes


def _hand(queue: Queue[Any], item: Any, writers: list[Future[None]]) -> None:
    """Hand `item` to the writer, waiting while it is busy; raise a writer's error if one
    stopped (so a failed COPY never leaves this thread waiting on a full queue)."""
    while True:
        for writer in writers:
            if writer.done():
                writer.result()
        try:
            queue.put(item, timeout=0.5)
            return
        except Full:
            continue


def _load_members(
    connect: Connect, batches: Queue[tuple[list[Membership], list[Change]] | None]
) -> None:
    """COPY the audience rows as their batches arrive, then record the changes (the
    schema's outbox, which a replay never publishes)."""
    changes: list[Change] = []

    def rows() -> Iterator[Membership]:
        while (batch := batches.get()) is not None:
            yield from batch[0]
            changes.extend(batch[1])

    with connect() as conn, conn.cursor() as curs:
        audiences.copy_rows(curs, rows())
        for start in range(0, len(changes), OUTBOX_BATCH):
            audience_outbox.append(curs, changes[start : start + OUTBOX_BATCH])
