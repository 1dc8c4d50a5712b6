"""The customer profile projection: `profiles`, plus who holds each card.

Interactions that name only a card count for the customer who holds the card now. A
card's holder is learnt from its stream's `card_claimed` event; interactions of a card
nobody holds yet are parked in `profile_parked` and credited, in the same transaction,
when the card is claimed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg import Connection, Cursor
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier
from psycopg.types.json import set_json_loads

from domain import profile as fold
from domain.aggregates import CARD_CLAIMED, CUSTOMER_FORGOTTEN
from domain.membership import ERASED, Membership, erase
from domain.partner import PARTNER_KINDS
from domain.shredding import sealed_fields, unseal
from projections.audiences import COLUMNS, AudienceBook, jsonb, write
from store.keys import read_keys

Item = tuple[int, int, str, dict[str, Any]]
"""(stream version, position, kind, payload) of one event of a page."""

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS profiles (
    customer_id text PRIMARY KEY,
    state jsonb NOT NULL,
    profile jsonb NOT NULL,
    position bigint NOT NULL
);
-- The API's profile cache asks which rows changed since a position (ledger/profile_cache.py).
CREATE INDEX IF NOT EXISTS profiles_by_position ON profiles (position);
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

_UPSERT = """
INSERT INTO profiles (customer_id, state, profile, position)
SELECT * FROM unnest(%b::text[], %b::jsonb[], %b::jsonb[], %b::bigint[])
ON CONFLICT (customer_id) DO UPDATE
    SET state = EXCLUDED.state, profile = EXCLUDED.profile, position = EXCLUDED.position
"""


class ProfileProjection:
    """Profiles, and (with an `AudienceBook`) the audience membership that follows them."""

    name = "profiles"

    def __init__(self, audiences: AudienceBook | None = None) -> None:
        self._audiences = audiences

    def process_page(self, curs: Cursor[Any], events: list[tuple[int, Any]]) -> None:
        set_json_loads(orjson.loads, curs)  # states are read and written by the page
        items = [
            (e.originator_version, position, e.kind, e.payload)
            for position, e in events
            if e.kind not in PARTNER_KINDS
        ]
        if not items:
            return
        items = _opened(curs, items)
        claims = {p["card_id"]: p["customer_id"] for _, _, k, p in items if k == CARD_CLAIMED}
        card_only = {p["card_id"] for _, _, k, p in items if k != CARD_CLAIMED and _card_only(p)}
        owners = self._owners(curs, card_only - claims.keys())
        parked = self._parked(curs, list(claims))
        wanted = {
            p["customer_id"] for _, _, k, p in items if not _card_only(p) or k == CARD_CLAIMED
        }
        wanted |= set(owners.values())
        states, before = self._states(curs, wanted)
        changed: dict[str, int] = {}
        triggers: dict[str, str] = {}  # customer -> the last event that changed the profile
        new_parked: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}  # parked this page

        def credit(customer_id: str, kind: str, payload: dict[str, Any], event: Any) -> None:
            state = states.get(customer_id)
            if state is None:
                state = states[customer_id] = fold.new_state(customer_id)
            fold.apply(state, kind, payload)
            changed[customer_id] = event[0]
            # A card claim is the card's side of an enrollment, and shares its event_id.
            kind = "customer_enrolled" if event[1] == CARD_CLAIMED else event[1]
            triggers[customer_id] = f"event {kind} {event[2]['event_id']}"

        for _, position, kind, payload in items:
            event = (position, kind, payload)
            if kind == CARD_CLAIMED:
                card_id, owner = payload["card_id"], payload["customer_id"]
                owners[card_id] = owner
                for parked_kind, parked_payload in parked.pop(card_id, []):
                    credit(owner, parked_kind, parked_payload, event)
                for _, parked_kind, parked_payload in new_parked.pop(card_id, []):
                    credit(owner, parked_kind, parked_payload, event)
            elif _card_only(payload):
                owner = owners.get(payload["card_id"])
                if owner is None:
                    new_parked.setdefault(payload["card_id"], []).append((position, kind, payload))
                else:
                    credit(owner, kind, payload, event)
            else:
                credit(payload["customer_id"], kind, payload, event)
        still_parked = [(card, *row) for card, rows in new_parked.items() for row in rows]
        profiles = {c: fold.render(states[c]) for c in changed}
        self._write(curs, states, profiles, changed, claims, still_parked)
        if self._audiences is not None:
            erased = {c for c in changed if fold.forgotten(states[c])}
            self._audiences.on_profiles(curs, profiles, before, triggers, erased)

    @staticmethod
    def _owners(curs: Cursor[Any], cards: set[str]) -> dict[str, str]:
        if not cards:
            return {}
        curs.execute(
            "SELECT card_id, customer_id FROM profile_card_owners WHERE card_id = ANY(%s)",
            (list(cards),),
        )
        return {row["card_id"]: row["customer_id"] for row in curs.fetchall()}

    @staticmethod
    def _parked(curs: Cursor[Any], cards: list[str]) -> dict[str, list[tuple[str, Any]]]:
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

    @staticmethod
    def _states(
        curs: Cursor[Any], customers: set[str]
    ) -> tuple[dict[str, fold.State], dict[str, dict[str, Any]]]:
        """The customers' fold states, and their profiles as they are before this page."""
        if not customers:
            return {}, {}
        curs.execute(
            "SELECT customer_id, state, profile FROM profiles WHERE customer_id = ANY(%s)",
            (list(customers),),
        )
        rows = curs.fetchall()
        return (
            {row["customer_id"]: row["state"] for row in rows},
            {row["customer_id"]: row["profile"] for row in rows},
        )

    @staticmethod
    def _write(
        curs: Cursor[Any],
        states: dict[str, fold.State],
        profiles: dict[str, dict[str, Any]],
        changed: dict[str, int],
        claims: dict[str, str],
        parked: list[tuple[str, int, str, dict[str, Any]]],
    ) -> None:
        if changed:
            ids = list(changed)
            curs.execute(
                _UPSERT,
                (
                    ids,
                    [jsonb(states[c]) for c in ids],
                    [jsonb(profiles[c]) for c in ids],
                    [changed[c] for c in ids],
                ),
            )
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


def _opened(curs: Cursor[Any], items: list[Item]) -> list[Item]:
    """The page's payloads with their personal fields opened with each customer's key
    (left null once the key is destroyed: the profile forgets them)."""
    owners = {p["customer_id"] for _, _, kind, p in items if sealed_fields(kind, p)}
    if not owners:
        return items
    keys = read_keys(curs, owners)
    return [
        (v, n, kind, unseal(kind, p, p["customer_id"], keys.get(p["customer_id"])))
        if p.get("customer_id") in owners
        else (v, n, kind, p)
        for v, n, kind, p in items
    ]


def _card_only(payload: dict[str, Any]) -> bool:
    return not payload.get("customer_id")


_COPIES = """
SELECT n.nspname FROM pg_namespace n
WHERE n.nspname <> 'public' AND to_regclass(quote_ident(n.nspname) || '.profiles') IS NOT NULL
  AND to_regclass(quote_ident(n.nspname) || '.projection_tracking') IS NOT NULL
"""


def scrub_copies(conn: Connection[Any], customer_id: str) -> list[str]:
    """Forget a customer in the projection copies made before (`ledger replay` schemas),
    which no projector brings up to date: the fold's own `customer_forgotten` step on the
    profile, membership's own `erase` on each audience row, and the reasons of the copy's
    outbox (never published: it keeps every change); return the copies' names."""
    schemas = [row[0] for row in conn.execute(_COPIES).fetchall()]
    now = datetime.now(UTC)
    for schema in schemas:
        with conn.cursor(row_factory=dict_row) as curs:
            set_json_loads(orjson.loads, curs)
            curs.execute(SQL("SET LOCAL search_path TO {}").format(Identifier(schema)))
            curs.execute("SELECT state FROM profiles WHERE customer_id = %s", (customer_id,))
            for row in curs.fetchall():
                state = row["state"]
                fold.apply(state, CUSTOMER_FORGOTTEN, {})
                curs.execute(
                    "UPDATE profiles SET state = %s, profile = %s WHERE customer_id = %s",
                    (jsonb(state), jsonb(fold.render(state)), customer_id),
                )
            curs.execute(
                f"SELECT {COLUMNS} FROM audience_members WHERE customer_id = %s", (customer_id,)
            )
            write(curs, [erase(Membership(**r), now)[0] for r in curs.fetchall()], [])
            curs.execute(
                "UPDATE audience_outbox SET reason = %s WHERE customer_id = %s",
                (ERASED, customer_id),
            )
    return schemas
