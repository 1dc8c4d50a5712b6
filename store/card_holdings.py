"""Who holds each card: the table `ledger_card_holders`, its one owner (DDL, writes, reads).

A card is enrolled on the customer's stream (the customer's partition writes it) and held
here, in the same transaction as the enrollment's event. Two partitions must agree on who
holds a card (an enrollment in the customer's, card-only swipes and purchases in the
card's), and a stream written from two partitions makes two ingest workers roll each
other's batches back; a row under a primary key makes them agree with no shared stream.
The first claim to commit holds the card; one that loses a race (two customers claiming
one card in the same moment, from two workers) raises `ClaimsLost`, and ingest decides
again only the records it involves (`services.ingest`).

Ledgers recorded before this table held a card on the card's stream (`card_claimed`):
`backfill` fills the table from the log once, when it is created, and `ledger verify`
rebuilds it from the log (`from_log`) and compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
from psycopg import Connection, Cursor

from domain.aggregates import HOLDS
from domain.decision import Claim
from store import event_store

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS ledger_card_holders (
    card_id text PRIMARY KEY,
    customer_id text NOT NULL,
    event_id text NOT NULL
);
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

    def __init__(self, lost: dict[str, str]) -> None:
        super().__init__(
            f"{len(lost)} card claim(s) lost to another worker: " + ", ".join(sorted(lost))
        )
        self.lost = lost


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


def every_holding(conn: Connection[Any]) -> Iterator[tuple[str, str]]:
    """(card id, customer id) of every held card, in card id byte order."""
    with conn.cursor(name="card_holdings") as curs:
        curs.execute('SELECT card_id COLLATE "C", customer_id FROM ledger_card_holders ORDER BY 1')
        while rows := curs.fetchmany(5_000):
            yield from ((str(a), str(b)) for a, b in rows)


def from_log(conn: Connection[Any]) -> dict[str, Claim]:
    """The holdings as the log says (card id -> its first claim): what the table must
    hold. Records that cannot be read are left out (`ledger verify` names them)."""
    found: dict[str, Claim] = {}
    for state in event_store.holding_states(conn):
        try:
            event = orjson.loads(state)
            if event["kind"] not in HOLDS:
                continue  # the words matched inside a payload
            payload = event["payload"]
            card_id, customer_id = str(payload["card_id"]), str(payload["customer_id"])
            event_id = str(event["event_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        found.setdefault(card_id, Claim(card_id, customer_id, event_id))
    return found


def backfill(conn: Connection[Any]) -> int:
    """Hold the cards an older ledger's log holds (its `card_claimed` events); return how
    many rows were written. Run once, when the table is created."""
    rows = list(from_log(conn).values())
    if not rows:
        return 0
    with conn.cursor() as curs:
        curs.execute(_CLAIM, _arrays(rows))
        return len(curs.fetchall())


def _arrays(rows: Sequence[Claim]) -> tuple[list[str], list[str], list[str]]:
    return [c.card_id for c in rows], [c.customer_id for c in rows], [c.event_id for c in rows]


def _first(row: Any) -> str:
    return str(row["card_id"] if isinstance(row, dict) else row[0])


def _pair(row: Any) -> tuple[str, str]:
    if isinstance(row, dict):
        return str(row["card_id"]), str(row["customer_id"])
    return str(row[0]), str(row[1])
