"""Our reads of the event store's table, `ledger_events` (the library's: its recorder
creates and writes it): a customer's or partner's history, the chain scan and the digest.

Rows are read straight from the table here, for speed and because the audit must see a
tampered row as it is stored, where the library's mapper would raise on it or hide it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from psycopg import Connection

BATCH = 5_000

HEAD_SQL = "(SELECT coalesce(max(notification_id), 0) FROM ledger_events)"
"""The ledger's last notification id, as an SQL expression."""


def head(conn: Connection[Any]) -> int:
    """The ledger's last notification id (0: empty)."""
    row = conn.execute(f"SELECT {HEAD_SQL}").fetchone()
    return int(row[0]) if row else 0


def count(conn: Connection[Any]) -> int:
    """How many records the store holds."""
    row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
    return int(row[0]) if row else 0


def of_streams(conn: Connection[Any], ids: list[UUID]) -> list[tuple[UUID, int, bytes, int]]:
    """(originator_id, version, state, notification id) of these streams' records, in the
    order the ledger recorded them."""
    rows = conn.execute(
        "SELECT originator_id, originator_version, state, notification_id FROM ledger_events "
        "WHERE originator_id = ANY(%s) ORDER BY notification_id",
        (ids,),
    ).fetchall()
    return [(o, v, bytes(state), n) for o, v, state, n in rows]


def in_stream_order(conn: Connection[Any]) -> Iterator[tuple[UUID, int, bytes | None, str]]:
    """(originator_id, version, state, topic) of every record, stream by stream in version
    order, through a server-side cursor in a transaction of its own."""
    with conn.transaction(), conn.cursor(name="audit_chains") as curs:
        curs.execute(
            "SELECT originator_id, originator_version, state, topic FROM ledger_events "
            "ORDER BY originator_id, originator_version"
        )
        while rows := curs.fetchmany(BATCH):
            yield from rows


def stream_heads(
    conn: Connection[Any], position: int | None
) -> tuple[int, Iterator[tuple[UUID, int, bytes | None]]]:
    """The position (default: the head) and (originator_id, version, state) of the last
    record of every stream as of it; iterate inside `conn.transaction()` for one snapshot."""
    if position is None:
        position = head(conn)

    def rows() -> Iterator[tuple[UUID, int, bytes | None]]:
        with conn.cursor(name="audit_heads") as curs:
            curs.execute(
                "SELECT DISTINCT ON (originator_id) originator_id, originator_version, state "
                "FROM ledger_events WHERE notification_id <= %s "
                "ORDER BY originator_id, originator_version DESC",
                (position,),
            )
            while batch := curs.fetchmany(BATCH):
                yield from batch

    return position, rows()


def missing(conn: Connection[Any]) -> list[tuple[UUID, int, str, str]]:
    """(originator_id, version, event_id, stream) of the interactions the interaction index
    says were recorded whose record is not in the store (a join kept with the store's
    reads: it asks what the store lacks)."""
    return conn.execute(
        """
        SELECT i.originator_id, i.originator_version, i.event_id, i.stream
        FROM ledger_interactions i
        WHERE NOT EXISTS (SELECT FROM ledger_events e WHERE e.originator_id = i.originator_id
                          AND e.originator_version = i.originator_version)
        ORDER BY i.originator_id, i.originator_version
        """
    ).fetchall()
