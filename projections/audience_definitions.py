"""Keeping membership true when the definitions change (a new `LEDGER_AUDIENCES` file).

Profile changes and the clock only re-evaluate the audiences in force; an audience that is
new or whose condition changed must be evaluated for every stored profile once, and one
that is gone must let its members go. `audience_definitions` records the fingerprint of
each condition membership was last reconciled with; it is written after the whole pass,
so a pass cut short by a crash runs again (re-evaluating is idempotent).
"""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

from domain.audiences import Audience
from domain.membership import fingerprint, leave, step
from projections.audiences import AudienceBook, evaluated_at, held, record_clock, stored, write
from projections.profiles import page_after

TRIGGER = "definition change"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS audience_definitions (
    audience text PRIMARY KEY,
    fingerprint text NOT NULL
);
"""


def reconcile(book: AudienceBook, conn: Connection[Any], batch: int = 5_000) -> int:
    """Evaluate new and changed audiences for every profile and retire removed ones;
    return how many memberships changed."""
    stored = applied(conn)
    current = {a.name: fingerprint(a) for a in book.audiences}
    changed = [a for a in book.audiences if stored.get(a.name) != current[a.name]]
    removed = [name for name in stored if name not in current]
    now = book.now()
    last = evaluated_at(conn)
    if last is not None and now < last:
        # The clock went back (LEDGER_NOW set earlier than before): the stored flip times
        # only look forward, so every audience that reads the clock is evaluated afresh.
        changed += [a for a in book.audiences if a.uses_clock and a not in changed]
    if not changed and not removed:
        book.reconciled(last)
        return 0
    count = _retire(conn, removed, now) + _evaluate_all(conn, changed, now, batch)
    with conn.transaction():
        record_clock(conn, now)
        conn.execute("DELETE FROM audience_definitions")
        for name, value in current.items():
            conn.execute("INSERT INTO audience_definitions VALUES (%s, %s)", (name, value))
    book.reconciled(now)  # every row a clock test reads was evaluated at `now` or before
    return count


def applied(conn: Connection[Any]) -> dict[str, str]:
    """The fingerprint of each audience condition membership was last reconciled with."""
    return dict(conn.execute("SELECT audience, fingerprint FROM audience_definitions").fetchall())


def _retire(conn: Connection[Any], names: list[str], now: Any) -> int:
    if not names:
        return 0
    with conn.transaction(), conn.cursor(row_factory=dict_row) as curs:
        reason = f"audience no longer defined, by {TRIGGER}"
        results = [leave(row, now, reason) for row in held(curs, names)]
        changes = [change for _, change in results if change is not None]
        write(curs, [row for row, _ in results], changes)
    return len(changes)


def _evaluate_all(conn: Connection[Any], audiences: list[Audience], now: Any, batch: int) -> int:
    """Every stored profile through these audiences, a batch of customers per transaction."""
    if not audiences:
        return 0
    names = [a.name for a in audiences]
    after, count = "", 0
    while True:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as curs:
            set_json_loads(orjson.loads, curs)
            profiles = page_after(curs, after, batch)
            if not profiles:
                return count
            rows_now = stored(curs, list(profiles), names)
            rows, changes = [], []
            for customer_id, profile in profiles.items():
                for audience in audiences:
                    current = rows_now.get((audience.name, customer_id))
                    row, change = step(audience, customer_id, current, profile, now, TRIGGER)
                    rows += [row] if row is not None else []
                    changes += [change] if change is not None else []
            write(curs, rows, changes)
            count += len(changes)
            after = next(reversed(profiles))  # the last in the database's own order
