"""The partner status projection: the `partners` table (one row per partner, folded in
the ledger's order), its DDL, writes and reads."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import orjson
from psycopg import Connection, Cursor
from psycopg.types.json import set_json_loads

from domain import partner as fold
from domain.partner import renewal_due
from domain.schema import on_partner_stream
from projections import copy_text
from projections.audiences import jsonb
from projections.positions import PARTNERS

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS partners (
    partner_id text PRIMARY KEY,
    state jsonb NOT NULL,
    status jsonb NOT NULL,
    position bigint NOT NULL
);
-- Contract v1.1 (section 8) fields on statuses stored before them (no note yet).
UPDATE partners SET status = status || '{"notes_count": 0, "last_note_at": null, "stage": null}'
WHERE NOT status ? 'notes_count';
"""

COMPARED: tuple[tuple[str, str], ...] = (
    ("partner", 'SELECT partner_id COLLATE "C", status::text, state::text FROM {}.partners'),
)
"""What `ledger verify` compares of this table (`projections.compare`)."""

_UPSERT = """
INSERT INTO partners (partner_id, state, status, position)
SELECT * FROM unnest(%b::text[], %b::jsonb[], %b::jsonb[], %b::bigint[])
ON CONFLICT (partner_id) DO UPDATE
    SET state = EXCLUDED.state, status = EXCLUDED.status, position = EXCLUDED.position
"""


class PartnerProjection:
    name = PARTNERS

    def process_page(self, curs: Cursor[Any], events: list[tuple[int, Any]]) -> None:
        items = [(position, e) for position, e in events if on_partner_stream(e.type, e.payload)]
        if not items:
            return
        set_json_loads(orjson.loads, curs)
        wanted = list({e.payload["partner_id"] for _, e in items})
        curs.execute("SELECT partner_id, state FROM partners WHERE partner_id = ANY(%s)", (wanted,))
        states: dict[str, fold.State] = {row["partner_id"]: row["state"] for row in curs}
        changed: dict[str, int] = {}
        for position, event in items:
            partner_id = event.payload["partner_id"]
            state = states.get(partner_id)
            if state is None:
                state = states[partner_id] = fold.new_state(partner_id)
            fold.apply(state, event.type, event.payload)
            changed[partner_id] = position
        ids = list(changed)
        curs.execute(
            _UPSERT,
            (
                ids,
                [jsonb(states[p]) for p in ids],
                [jsonb(fold.render(states[p])) for p in ids],
                [changed[p] for p in ids],
            ),
        )


def status(conn: Connection[Any], partner_id: str, today: date) -> dict[str, Any] | None:
    """The partner status, with the active contracts due for renewal as of `today`."""
    row = conn.execute(
        "SELECT status FROM partners WHERE partner_id = %s", (partner_id,)
    ).fetchone()
    if row is None:
        return None
    found = fold.in_order(row[0])
    return {**found, "renewal_due": renewal_due(found, today)}


def statuses(conn: Connection[Any]) -> dict[str, int]:
    """How many partners are in each status."""
    rows = conn.execute(
        "SELECT status->>'status', count(*) FROM partners GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {name: n for name, n in rows}


def count(conn: Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM partners").fetchone()
    return int(row[0]) if row else 0


def copy_rows(curs: Cursor[Any], rows: Iterable[tuple[str, fold.State, int]]) -> None:
    """Bulk-load final (partner id, state, position) rows into an empty `partners` (a
    rebuild, `projections.rebuild`): the status is rendered here, as pages do."""
    t = copy_text
    lines = (
        t.line((t.text(p), t.json(s), t.json(fold.render(s)), t.number(n))) for p, s, n in rows
    )
    with curs.copy("COPY partners (partner_id, state, status, position) FROM STDIN") as copy:
        for chunk in t.chunks(lines):
            copy.write(chunk)
