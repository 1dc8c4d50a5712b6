"""Who holds each card, and the card-only interactions waiting for a holder: the tables
`profile_card_owners` and `profile_parked`, written in the profile projection's page
transaction (`projections.profiles`).

A card's holder is learnt from the customer's `customer_enrolled` (in older ledgers also
from the card stream's `card_claimed`); an interaction that names only a card nobody holds
yet is parked here and credited, in the same transaction, when the card is enrolled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from psycopg import Cursor

from projections import copy_text
from projections.audiences import jsonb

Parked = tuple[str, int, str, dict[str, Any]]
"""(card id, position, type, payload) of a parked interaction (column `kind`)."""

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS profile_card_owners (
    card_id text PRIMARY KEY,
    customer_id text NOT NULL
);
CREATE TABLE IF NOT EXISTS profile_parked (
    card_id text NOT NULL,
    position bigint NOT NULL,
    kind text NOT NULL,
    payload jsonb NOT NULL,
    PRIMARY KEY (card_id, position)
);
"""

COMPARED: tuple[tuple[str, str], ...] = (
    ("card holder", 'SELECT card_id COLLATE "C", customer_id FROM {}.profile_card_owners'),
    (
        "parked card interaction",
        "SELECT (card_id || ' ' || lpad(position::text, 20, '0')) COLLATE \"C\", kind, "
        "payload::text FROM {}.profile_parked",
    ),
)
"""What `ledger verify` compares of these tables (`projections.compare`)."""


def holders(curs: Cursor[Any], cards: set[str]) -> dict[str, str]:
    """The holder of each of these cards that has one (`curs`: a dict-row cursor)."""
    if not cards:
        return {}
    curs.execute(
        "SELECT card_id, customer_id FROM profile_card_owners WHERE card_id = ANY(%s)",
        (list(cards),),
    )
    return {row["card_id"]: row["customer_id"] for row in curs.fetchall()}


def take_parked(curs: Cursor[Any], cards: list[str]) -> dict[str, list[tuple[str, Any]]]:
    """Remove and return the (type, payload) parked for each of these cards."""
    if not cards:
        return {}
    curs.execute(
        "DELETE FROM profile_parked WHERE card_id = ANY(%s) RETURNING card_id, kind, payload",
        (cards,),
    )
    parked: dict[str, list[tuple[str, Any]]] = {}
    for row in curs.fetchall():
        parked.setdefault(row["card_id"], []).append((row["kind"], row["payload"]))
    return parked


def write(curs: Cursor[Any], claims: dict[str, str], parked: list[Parked]) -> None:
    """Record new holders (a card's first claim stands) and park interactions."""
    if claims:
        curs.execute(
            "INSERT INTO profile_card_owners (card_id, customer_id) "
            "SELECT * FROM unnest(%s::text[], %s::text[]) ON CONFLICT DO NOTHING",
            (list(claims), list(claims.values())),
        )
    if parked:
        curs.execute(
            "INSERT INTO profile_parked (card_id, position, kind, payload) "
            "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::jsonb[])",
            (
                [p[0] for p in parked],
                [p[1] for p in parked],
                [p[2] for p in parked],
                [jsonb(p[3]) for p in parked],
            ),
        )


def copy_rows(curs: Cursor[Any], holders: Mapping[str, str], parked: Iterable[Parked]) -> None:
    """Bulk-load every holder and parked interaction into empty tables (a rebuild,
    `projections.rebuild`)."""
    t = copy_text
    with curs.copy("COPY profile_card_owners (card_id, customer_id) FROM STDIN") as copy:
        for chunk in t.chunks(t.line((t.text(c), t.text(h))) for c, h in holders.items()):
            copy.write(chunk)
    lines = (t.line((t.text(c), t.number(n), t.text(k), t.json(p))) for c, n, k, p in parked)
    with curs.copy("COPY profile_parked (card_id, position, kind, payload) FROM STDIN") as copy:
        for chunk in t.chunks(lines):
            copy.write(chunk)


def drop_held_parked(curs: Cursor[Any]) -> None:
    """Drop the parked interactions of every card that has a holder (a rebuild in parts,
    where a part parks what names a card held by another part's customer)."""
    curs.execute(
        "DELETE FROM profile_parked p USING profile_card_owners o WHERE p.card_id = o.card_id"
    )
