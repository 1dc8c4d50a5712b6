"""The partner status projection: one row per partner, folded in the ledger's order."""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import Cursor
from psycopg.types.json import set_json_loads

from domain import partner as fold
from projections.audiences import jsonb

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS partners (
    partner_id text PRIMARY KEY,
    state jsonb NOT NULL,
    status jsonb NOT NULL,
    position bigint NOT NULL
);
"""

_UPSERT = """
INSERT INTO partners (partner_id, state, status, position)
SELECT * FROM unnest(%b::text[], %b::jsonb[], %b::jsonb[], %b::bigint[])
ON CONFLICT (partner_id) DO UPDATE
    SET state = EXCLUDED.state, status = EXCLUDED.status, position = EXCLUDED.position
"""


class PartnerProjection:
    name = "partners"

    def process_page(self, curs: Cursor[Any], events: list[tuple[int, Any]]) -> None:
        items = [(position, e) for position, e in events if e.kind in fold.PARTNER_KINDS]
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
            fold.apply(state, event.kind, event.payload)
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
