"""The customer profile projection: the `profiles` table, its DDL, writes and reads.

Interactions that name only a card count for the customer who holds the card now
(`projections.card_holders`, written in the same page transaction): the customer whose
`customer_enrolled` or `card_replaced` (its new card; in older ledgers, the card stream's
`card_claimed`) came first. A replaced card stays its last holder's: what ingest records
on it afterwards (an offline till's swipe) counts for that customer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg import Connection, Cursor
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier
from psycopg.types.json import set_json_loads

from domain import profile as fold
from domain.aggregates import CARD_CLAIMED, CUSTOMER_FORGOTTEN
from domain.cards import claimed_card
from domain.merges import MERGES
from domain.schema import on_partner_stream
from domain.shredding import sealed_fields, unseal
from projections import audiences, card_holders, copy_text, merge_tree, profile_trees
from projections.audiences import AudienceBook, jsonb
from projections.positions import POSITION_SQL, PROFILES, PROJECTIONS, REACHED_SQL
from store.keys import read_keys

Item = tuple[int, int, str, dict[str, Any]]
"""(stream version, position, type, payload) of one event of a page."""

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS profiles (
    customer_id text PRIMARY KEY,
    state jsonb NOT NULL,
    profile jsonb NOT NULL,
    position bigint NOT NULL
);
-- The API's profile cache asks which rows changed since a position (ledger/profile_cache.py).
CREATE INDEX IF NOT EXISTS profiles_by_position ON profiles (position);
-- Contract v1.1 (section 8) fields on profiles stored before them, as a fold gives them
-- (no return, no note yet), so that `ledger verify` finds them equal to a rebuild.
UPDATE profiles SET profile = profile || jsonb_build_object(
    'return_count', 0, 'total_refunded', '{}'::jsonb, 'net_spend', profile -> 'total_spend',
    'notes_count', 0, 'last_note_at', null, 'stage', null)
WHERE NOT profile ? 'return_count';
UPDATE profiles SET profile = profile || '{"retired_cards": [], "merged_ids": []}'::jsonb
WHERE NOT profile ? 'retired_cards';
-- A merged customer's row holds its root's profile, and names the root (section 8).
ALTER TABLE profiles ADD COLUMN IF NOT EXISTS root_id text;
"""

_UPSERT = """
INSERT INTO profiles (customer_id, state, profile, position, root_id)
SELECT * FROM unnest(%b::text[], %b::jsonb[], %b::jsonb[], %b::bigint[], %b::text[])
ON CONFLICT (customer_id) DO UPDATE
    SET state = EXCLUDED.state, profile = EXCLUDED.profile, position = EXCLUDED.position,
        root_id = EXCLUDED.root_id
"""


class ProfileProjection:
    """Profiles, and (with an `AudienceBook`) the audience membership that follows them."""

    name = PROFILES

    def __init__(self, audiences: AudienceBook | None = None) -> None:
        self._audiences = audiences

    def process_page(self, curs: Cursor[Any], events: list[tuple[int, Any]]) -> None:
        set_json_loads(orjson.loads, curs)  # states are read and written by the page
        items = [
            (e.originator_version, position, e.type, e.payload)
            for position, e in events
            if not on_partner_stream(e.type, e.payload)
        ]
        merges = [(n, k, p) for _, n, k, p in items if k in MERGES]
        items = [item for item in items if item[2] not in MERGES]
        if not items and not merges:
            return
        items = _opened(curs, items)
        claims: dict[str, str] = {}  # card -> customer, of the cards the page holds anew
        for _, _, k, p in items:
            if (held := claimed_card(k, p)) is not None:
                claims.setdefault(held, p["customer_id"])
        card_only = {p["card_id"] for _, _, k, p in items if k != CARD_CLAIMED and _card_only(p)}
        owners = card_holders.holders(curs, card_only - claims.keys())
        parked = card_holders.take_parked(curs, list(claims))
        wanted = {
            p["customer_id"] for _, _, k, p in items if not _card_only(p) or k == CARD_CLAIMED
        }
        wanted |= set(owners.values())
        states, before, in_trees = self._states(curs, wanted)
        changed: dict[str, int] = {}
        triggers: dict[str, str] = {}  # customer -> the last event that changed the profile
        new_parked: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}  # parked this page

        def credit(customer_id: str, type: str, payload: dict[str, Any], event: Any) -> None:
            state = states.get(customer_id)
            if state is None:
                state = states[customer_id] = fold.new_state(customer_id)
            fold.apply(state, type, payload)
            changed[customer_id] = event[0]
            # An older ledger's card claim is the card's side of an enrollment: same event_id.
            type = "customer_enrolled" if event[1] == CARD_CLAIMED else event[1]
            triggers[customer_id] = f"event {type} {event[2]['event_id']}"

        for _, position, type, payload in items:
            event = (position, type, payload)
            if _card_only(payload):
                owner = owners.get(payload["card_id"])
                if owner is None:
                    new_parked.setdefault(payload["card_id"], []).append((position, type, payload))
                else:
                    credit(owner, type, payload, event)
            elif type != CARD_CLAIMED:
                credit(payload["customer_id"], type, payload, event)
            held = claimed_card(type, payload)
            if held is not None and held not in owners:  # what waited for the card counts now
                owner = owners[held] = payload["customer_id"]
                for parked_type, parked_payload in parked.pop(held, []):
                    credit(owner, parked_type, parked_payload, event)
                for _, parked_type, parked_payload in new_parked.pop(held, []):
                    credit(owner, parked_type, parked_payload, event)
        still_parked = [(card, *row) for card, rows in new_parked.items() for row in rows]
        trees = profile_trees.page_trees(curs, in_trees, merges)
        if trees is None:
            profiles = {c: fold.render(states[c]) for c in changed}
            rows: dict[str, tuple[dict[str, Any], str | None]] = {
                c: (p, None) for c, p in profiles.items()
            }
            departed: dict[str, str] = {}
        else:

            def load(missing: set[str]) -> None:
                states.update(self._states(curs, missing)[0])

            found = profile_trees.documents(trees, states, changed, triggers, load)
            # A customer merged before the page holds its old root's document: its stored
            # audience rows were not evaluated on it, so it is evaluated afresh.
            before = {c: p for c, p in before.items() if c not in trees.before}
            rows, profiles, departed = found.rows, found.roots, found.departed
            triggers |= found.triggers
            last = max(n for n, _, _ in [*merges, *((i[1], "", {}) for i in items)])
            changed = {c: changed.get(c, last) for c in rows}
            merge_tree.write(curs, trees.before, trees.after)
        self._write(curs, states, rows, changed, claims, still_parked)
        if self._audiences is not None:
            erased = {c for c in profiles if fold.forgotten(states[c])}
            self._audiences.on_profiles(curs, profiles, before, triggers, erased, departed)

    @staticmethod
    def _states(
        curs: Cursor[Any], customers: set[str]
    ) -> tuple[dict[str, fold.State], dict[str, dict[str, Any]], set[str]]:
        """The customers' own fold states, their profiles as they are before this page, and
        those of them in a tree of merges (`projections.profile_trees`)."""
        if not customers:
            return {}, {}, set()
        curs.execute(
            "SELECT customer_id, state, profile, root_id FROM profiles WHERE customer_id = ANY(%s)",
            (list(customers),),
        )
        rows = curs.fetchall()
        return (
            {row["customer_id"]: row["state"] for row in rows},
            {row["customer_id"]: row["profile"] for row in rows},
            {
                row["customer_id"]
                for row in rows
                if row["root_id"] is not None or row["profile"].get("merged_ids")
            },
        )

    @staticmethod
    def _write(
        curs: Cursor[Any],
        states: dict[str, fold.State],
        rows: dict[str, tuple[dict[str, Any], str | None]],
        changed: dict[str, int],
        claims: dict[str, str],
        parked: list[card_holders.Parked],
    ) -> None:
        """Upsert each row: own state, profile document, position, and root (None for a
        root)."""
        if rows:
            ids = list(rows)
            curs.execute(
                _UPSERT,
                (
                    ids,
                    [jsonb(states.get(c) or fold.new_state(c)) for c in ids],
                    [jsonb(rows[c][0]) for c in ids],
                    [changed[c] for c in ids],
                    [rows[c][1] for c in ids],
                ),
            )
        card_holders.write(curs, claims, parked)


def own_states(curs: Cursor[Any], customers: list[str]) -> dict[str, fold.State]:
    """The customers' own fold states (`curs`: a tuple-row cursor)."""
    curs.execute(
        "SELECT customer_id, state FROM profiles WHERE customer_id = ANY(%s)", (customers,)
    )
    return {str(c): s for c, s in curs.fetchall()}


def set_documents(curs: Cursor[Any], rows: dict[str, tuple[dict[str, Any], str | None]]) -> None:
    """Give these rows their tree's document and root (a rebuild's trees, settled)."""
    curs.execute(
        "UPDATE profiles p SET profile = r.profile, root_id = r.root_id "
        "FROM unnest(%s::text[], %s::jsonb[], %s::text[]) AS r (customer_id, profile, root_id) "
        "WHERE p.customer_id = r.customer_id",
        (list(rows), [jsonb(d) for d, _ in rows.values()], [r for _, r in rows.values()]),
    )


def _opened(curs: Cursor[Any], items: list[Item]) -> list[Item]:
    """The page's payloads with their personal fields opened with each customer's key
    (left null once the key is destroyed: the profile forgets them)."""
    owners = {p["customer_id"] for _, _, type, p in items if sealed_fields(type, p)}
    if not owners:
        return items
    keys = read_keys(curs, owners)
    return [
        (v, n, type, unseal(type, p, p["customer_id"], keys.get(p["customer_id"])))
        if p.get("customer_id") in owners
        else (v, n, type, p)
        for v, n, type, p in items
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
            audiences.erase_in_copy(curs, customer_id, now)
    return schemas


COMPARED: tuple[tuple[str, str], ...] = (
    (
        "profile",
        'SELECT customer_id COLLATE "C", profile::text, state::text, root_id FROM {}.profiles',
    ),
)
"""What `ledger verify` compares of this table (`projections.compare`)."""

_PROFILE = "(SELECT profile FROM profiles WHERE customer_id = %s)"


def with_position_query(customer_id: str) -> tuple[str, tuple[Any, ...]]:
    """The projections' position, the profiles projection's own, and the stored profile, in
    one statement (one snapshot, one round trip: the API's hottest read)."""
    return (
        f"SELECT {POSITION_SQL}, {REACHED_SQL}, {_PROFILE}",
        (list(PROJECTIONS), PROFILES, customer_id),
    )


def with_position(row: tuple[Any, ...] | None) -> tuple[int, int, dict[str, Any] | None]:
    """(position, the profiles projection's position, the profile or None) of its row."""
    assert row is not None
    return int(row[0]), int(row[1]), None if row[2] is None else fold.in_order(row[2])


def profile(conn: Connection[Any], customer_id: str) -> dict[str, Any] | None:
    """The stored profile (the CLI's read; the API runs the same query asynchronously)."""
    return with_position(conn.execute(*with_position_query(customer_id)).fetchone())[2]


def changes_query(since: int | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    """The position, the profiles projection's position, and (up to `limit` of) the
    customers whose rows a page after `since` wrote, in one snapshot: what the API's
    profile cache needs to stay exact (`ledger.profile_cache`)."""
    if since is None:
        return f"SELECT {POSITION_SQL}, {REACHED_SQL}, '{{}}'::text[]", (
            list(PROJECTIONS),
            PROFILES,
        )
    return (
        f"SELECT {POSITION_SQL}, {REACHED_SQL}, "
        "ARRAY(SELECT customer_id FROM profiles WHERE position > %s LIMIT %s)",
        (list(PROJECTIONS), PROFILES, since, limit),
    )


def changes(row: tuple[Any, ...] | None) -> tuple[int, int, list[str]]:
    assert row is not None
    return int(row[0]), int(row[1]), list(row[2])


def count(conn: Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM profiles").fetchone()
    return int(row[0]) if row else 0


def top_spenders(conn: Connection[Any], limit: int) -> list[dict[str, Any]]:
    """The profiles of the customers with the largest EUR spend."""
    rows = conn.execute(
        "SELECT profile FROM profiles WHERE root_id IS NULL "
        "ORDER BY (profile->'total_spend'->>'EUR')::numeric DESC NULLS LAST, customer_id LIMIT %s",
        (limit,),
    ).fetchall()
    return [row[0] for row in rows]


def page_after(curs: Cursor[Any], after: str, limit: int) -> dict[str, dict[str, Any]]:
    """Up to `limit` stored profiles by customer id, in the database's order, after `after`
    (`curs`: a dict-row cursor)."""
    curs.execute(
        "SELECT customer_id, profile FROM profiles WHERE customer_id > %s "
        "ORDER BY customer_id LIMIT %s",
        (after, limit),
    )
    return {r["customer_id"]: r["profile"] for r in curs.fetchall()}


Row = tuple[str, fold.State, dict[str, Any], int]
"""(customer id, fold state, profile, position) of one stored profile."""


def copy_rows(curs: Cursor[Any], rows: Iterable[Row]) -> None:
    """Bulk-load final rows into an empty `profiles` (a rebuild, `projections.rebuild`)."""
    t = copy_text
    lines = (t.line((t.text(c), t.json(s), t.json(p), t.number(n))) for c, s, p, n in rows)
    with curs.copy("COPY profiles (customer_id, state, profile, position) FROM STDIN") as copy:
        for chunk in t.chunks(lines):
            copy.write(chunk)
