"""The interaction index, `ledger_interactions`: its one owner (DDL, writes and reads).

One row per recorded interaction: event_id -> content digest and the stream position it
was recorded at. Ingest decides duplicates and conflicts against it, `GET
/interactions/{event_id}` reads it, forgetting erases its digests, and the audit checks
the store against it. Here in `store/` because both sides use it: the ingest side writes,
the read side and the audit read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from psycopg import Connection, Cursor

from domain.decision import Recorded

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS ledger_interactions (
    event_id text PRIMARY KEY,
    digest text NOT NULL,
    type text NOT NULL,
    stream text NOT NULL,
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
"""


IndexRow = Recorded
"""A row: an interaction recorded, its content digest and where its event is."""


_INSERT = """
INSERT INTO ledger_interactions
    (event_id, digest, type, stream, originator_id, originator_version)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::uuid[], %b::bigint[])
"""

_POSITION = """
SELECT e.notification_id FROM ledger_interactions i JOIN ledger_events e
ON e.originator_id = i.originator_id AND e.originator_version = i.originator_version
WHERE i.event_id = %s
"""

_MISSING_FROM_STORE = """
SELECT i.originator_id, i.originator_version, i.event_id, i.stream
FROM ledger_interactions i
WHERE NOT EXISTS (SELECT FROM ledger_events e WHERE e.originator_id = i.originator_id
                  AND e.originator_version = i.originator_version)
ORDER BY i.originator_id, i.originator_version
"""


def insert(curs: Cursor[Any], rows: Sequence[IndexRow]) -> None:
    """Index a batch's interactions (binary arrays: one statement for the batch)."""
    if not rows:
        return
    curs.execute(
        _INSERT,
        (
            [r.event_id for r in rows],
            [r.digest for r in rows],
            [r.type for r in rows],
            [r.stream for r in rows],
            [r.originator_id for r in rows],
            [r.originator_version for r in rows],
        ),
    )


def digests(curs: Cursor[Any], event_ids: Iterable[str]) -> dict[str, str]:
    """Content digests of the event ids already recorded."""
    ids = list(set(event_ids))
    if not ids:
        return {}
    curs.execute(
        "SELECT event_id, digest FROM ledger_interactions WHERE event_id = ANY(%s)", (ids,)
    )
    return {row[0]: row[1] for row in _tuples(curs.fetchall(), "event_id", "digest")}


def erase_digests(curs: Cursor[Any], streams: list[str], erased: str) -> None:
    """Replace the digests of every interaction on these streams (a forgotten person's)."""
    curs.execute(
        "UPDATE ledger_interactions SET digest = %s WHERE stream = ANY(%s)", (erased, streams)
    )


def position_of(conn: Connection[Any] | Cursor[Any], event_id: str) -> int | None:
    """The notification id an interaction was recorded at (None: not recorded)."""
    row = conn.execute(_POSITION, (event_id,)).fetchone()
    if row is None:
        return None
    return int(row["notification_id"] if isinstance(row, dict) else row[0])


def counts_by_type(conn: Connection[Any]) -> dict[str, int]:
    """Interactions recorded, by type."""
    return dict(
        conn.execute("SELECT type, count(*) FROM ledger_interactions GROUP BY type").fetchall()
    )


def count(conn: Connection[Any]) -> int:
    """Interactions recorded."""
    row = conn.execute("SELECT count(*) FROM ledger_interactions").fetchone()
    return int(row[0]) if row else 0


def count_by_type(conn: Connection[Any]) -> dict[str, int]:
    """Interactions recorded, per type (`customer_forgotten` too), most first."""
    rows = conn.execute(
        "SELECT type, count(*) FROM ledger_interactions GROUP BY type ORDER BY 2 DESC, 1"
    ).fetchall()
    return {kind: int(n) for kind, n in rows}


def event_ids_at(conn: Connection[Any], originator_id: UUID, versions: list[int]) -> dict[int, str]:
    """The event ids indexed at these versions of one stream."""
    rows = conn.execute(
        "SELECT originator_version, event_id FROM ledger_interactions "
        "WHERE originator_id = %s AND originator_version = ANY(%s)",
        (originator_id, versions),
    ).fetchall()
    return dict(rows)


def _tuples(rows: list[Any], *names: str) -> list[tuple[Any, ...]]:
    """Rows as tuples, whether the cursor made dicts (the library's) or tuples."""
    return [tuple(r[n] for n in names) if isinstance(r, dict) else tuple(r) for r in rows]


def missing_from_store(conn: Connection[Any]) -> list[tuple[Any, int, str, str]]:
    """(originator_id, version, event_id, stream) of the interactions the index says were
    recorded whose record is not in the store (`ledger verify`'s chain scan)."""
    return conn.execute(_MISSING_FROM_STORE).fetchall()
