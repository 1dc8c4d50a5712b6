"""Who holds each card: the table `ledger_card_holders`, its one owner (DDL, writes, reads).

A card is enrolled on the customer's stream (the customer's partition writes it) and held
here, in the same transaction as the enrollment's event. Two partitions must agree on who
holds a card (an enrollment in the customer's, card-only swipes and purchases in the
card's), and a stream written from two partitions makes two ingest workers roll each
other's batches back; a row under a primary key makes them agree with no shared stream.
The first claim to commit holds the card; one that loses a race (two customers claiming
one card in the same moment, from two workers) raises `ClaimsLost`, and ingest decides
again only the records it involves (`services.ingest`).

A replacement (`card_replaced`) claims its new card the same way and retires the old one:
its row keeps its last holder and gains `replaced_by` and `replaced_at` (the replacement's
`occurred_at`, which the offline-till rule compares with). A card-only swipe or purchase
decided while its card was not retired is checked again in its transaction once the events
table's lock is held (`check_not_retired`): every ingest transaction that records events
takes that lock, so a replacement either committed before (and the swipe is decided again)
or commits after the swipe, which then was recorded before the replacement.

Ledgers recorded before this table held a card on the card's stream (`card_claimed`):
`backfill` fills the table from the log once, when it is created, and `ledger verify`
rebuilds it from the log (`from_log`) and compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
from psycopg import Connection, Cursor

from domain.cards import CARD_REPLACED, Retirement, claimed_card
from domain.decision import Claim
from store import event_store

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS ledger_card_holders (
    card_id text PRIMARY KEY,
    customer_id text NOT NULL,
    event_id text NOT NULL
);
ALTER TABLE ledger_card_holders ADD COLUMN IF NOT EXISTS replaced_by text;
ALTER TABLE ledger_card_holders ADD COLUMN IF NOT EXISTS replaced_at timestamptz;
"""

_CLAIM = """
INSERT INTO ledger_card_holders (card_id, customer_id, event_id)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[])
ON CONFLICT (card_id) DO NOTHING
RETURNING card_id
"""


class ClaimsLost(Exception):
    """Cards another worker's enrollment claimed first (card id -> its holder): nothing
    of the batch was written."""

    what = "card claim(s) lost to another worker"

    def __init__(self, lost: dict[str, str]) -> None:
        super().__init__(f"{len(lost)} {self.what}: " + ", ".join(sorted(lost)))
        self.lost = lost


class CardsRetired(ClaimsLost):
    """Cards another worker's replacement retired after the batch's card-only swipes or
    purchases were decided (card id -> its new card): nothing of the batch was written,
    and the records naming them are decided again, as after a lost claim."""

    what = "card(s) retired meanwhile by another worker"


_RETIRE = """
UPDATE ledger_card_holders h SET replaced_by = r.new_card_id, replaced_at = r.occurred_at
FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[])
    AS r (card_id, new_card_id, customer_id, occurred_at)
WHERE h.card_id = r.card_id AND h.customer_id = r.customer_id AND h.replaced_by IS NULL
RETURNING h.card_id
"""
_RETIRED = """
SELECT card_id, replaced_by FROM ledger_card_holders
WHERE card_id = ANY(%s) AND replaced_by IS NOT NULL
"""


def exists(conn: Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('ledger_card_holders') IS NOT NULL").fetchone()
    return bool(row and row[0])


def claim(curs: Cursor[Any], claims: Sequence[Claim]) -> None:
    """Hold each claimed card for its customer. A card already held by the same customer
    is no conflict; one held by another raises `ClaimsLost` (the caller's transaction
    must roll back). Cards go in sorted order, so two workers wait, never deadlock."""
    if not claims:
        return
    ordered = sorted(claims, key=lambda c: c.card_id)
    curs.execute(_CLAIM, _arrays(ordered))
    taken = {_first(row) for row in curs.fetchall()}
    missed = [c for c in ordered if c.card_id not in taken]
    if not missed:
        return
    held = held_by(curs, [c.card_id for c in missed])
    lost = {c.card_id: held[c.card_id] for c in missed if held.get(c.card_id) != c.customer_id}
    if lost:
        raise ClaimsLost(lost)


def retire(curs: Cursor[Any], retirements: Sequence[Retirement]) -> None:
    """Retire each replaced card, still held by its customer (the customer's partition,
    this worker, is the only writer of its replacements: anything else is a bug, and the
    transaction fails)."""
    if not retirements:
        return
    ordered = sorted(retirements, key=lambda r: r.card_id)
    curs.execute(
        _RETIRE,
        (
            [r.card_id for r in ordered],
            [r.new_card_id for r in ordered],
            [r.customer_id for r in ordered],
            [r.occurred_at for r in ordered],
        ),
    )
    done = {_first(row) for row in curs.fetchall()}
    if len(done) != len(ordered):
        missing = ", ".join(r.card_id for r in ordered if r.card_id not in done)
        raise RuntimeError(f"replaced cards no longer held by their customer: {missing}")


def check_not_retired(curs: Cursor[Any], cards: Iterable[str]) -> None:
    """Raise `CardsRetired` if any of these cards is retired now (`curs`: in a transaction
    holding the events table's lock, so no replacement commits in between)."""
    wanted = sorted(set(cards))
    if not wanted:
        return
    curs.execute(_RETIRED, (wanted,))
    retired = {_first(row): _second(row) for row in curs.fetchall()}
    if retired:
        raise CardsRetired(retired)


def holdings(
    curs: Cursor[Any] | Connection[Any], cards: Iterable[str]
) -> tuple[dict[str, str], dict[str, Retirement]]:
    """The holders of these cards (cards nobody holds are absent), and which of them are
    retired."""
    wanted = list(set(cards))
    if not wanted:
        return {}, {}
    rows = curs.execute(
        "SELECT card_id, customer_id, replaced_by, replaced_at FROM ledger_card_holders "
        "WHERE card_id = ANY(%s)",
        (wanted,),
    ).fetchall()
    holders: dict[str, str] = {}
    retired: dict[str, Retirement] = {}
    for row in rows:
        card, customer, new, at = row.values() if isinstance(row, dict) else row
        holders[card] = customer
        if new is not None:
            retired[card] = Retirement(card, new, customer, at)
    return holders, retired


def held_by(curs: Cursor[Any] | Connection[Any], cards: Iterable[str]) -> dict[str, str]:
    """The holders of these cards (cards nobody holds are absent)."""
    wanted = list(set(cards))
    if not wanted:
        return {}
    rows = curs.execute(
        "SELECT card_id, customer_id FROM ledger_card_holders WHERE card_id = ANY(%s)",
        (wanted,),
    ).fetchall()
    return dict(_pair(row) for row in rows)


def one_retired(conn: Connection[Any]) -> tuple[str, str, str] | None:
    """A retired card, its last holder and the card that replaced it (the first by id)."""
    row = conn.execute(
        "SELECT card_id, customer_id, replaced_by FROM ledger_card_holders "
        "WHERE replaced_by IS NOT NULL ORDER BY card_id LIMIT 1"
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))


Holding = tuple[str, str | None, datetime | None]
"""(holder, the card that replaced it, the replacement's `occurred_at`) of a held card."""


def every_holding(conn: Connection[Any]) -> Iterator[tuple[str, Holding]]:
    """(card id, its holding) of every held card, in card id byte order."""
    with conn.cursor(name="card_holdings") as curs:
        curs.execute(
            'SELECT card_id COLLATE "C", customer_id, replaced_by, replaced_at '
            "FROM ledger_card_holders ORDER BY 1"
        )
        while rows := curs.fetchmany(5_000):
            yield from ((str(a), (str(b), c, d)) for a, b, c, d in rows)


def from_log(conn: Connection[Any]) -> dict[str, Holding]:
    """The holdings as the log says (card id -> its holding): what the table must hold.
    Records that cannot be read are left out (`ledger verify` names them)."""
    retired: dict[str, tuple[str, datetime]] = {}
    claims = _claims(conn, retired)
    return {card: (c.customer_id, *retired.get(card, (None, None))) for card, c in claims.items()}


def _claims(conn: Connection[Any], retired: dict[str, tuple[str, datetime]]) -> dict[str, Claim]:
    """Each card's first claim in the log, and (into `retired`) each retired card's new
    card and replacement time."""
    found: dict[str, Claim] = {}
    for state in event_store.holding_states(conn):
        try:
            event = orjson.loads(state)
            kind, payload = event["kind"], event["payload"]
            card_id = claimed_card(kind, payload)
            if card_id is None:
                continue  # the words matched inside a payload
            customer_id, event_id = str(payload["customer_id"]), str(event["event_id"])
            if kind == CARD_REPLACED:
                at = datetime.fromisoformat(str(payload["occurred_at"]).upper())
                retired.setdefault(str(payload["old_card_id"]), (card_id, at))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        found.setdefault(card_id, Claim(card_id, customer_id, event_id))
    return found


def backfill(conn: Connection[Any]) -> int:
    """Hold the cards an older ledger's log holds (its `card_claimed` events); return how
    many rows were written. Run once, when the table is created."""
    rows = list(_claims(conn, {}).values())
    if not rows:
        return 0
    with conn.cursor() as curs:
        curs.execute(_CLAIM, _arrays(rows))
        return len(curs.fetchall())


def _arrays(rows: Sequence[Claim]) -> tuple[list[str], list[str], list[str]]:
    return [c.card_id for c in rows], [c.customer_id for c in rows], [c.event_id for c in rows]


def _first(row: Any) -> str:
    return str(row["card_id"] if isinstance(row, dict) else row[0])


def _second(row: Any) -> str:
    return str(row["replaced_by"] if isinstance(row, dict) else row[1])


def _pair(row: Any) -> tuple[str, str]:
    if isinstance(row, dict):
        return str(row["card_id"]), str(row["customer_id"])
    return str(row[0]), str(row[1])
