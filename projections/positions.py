"""Where the projections stand: our reads of the library's tracking table.

The library's tracking recorder (`PostgresTrackingRecorder`) owns `projection_tracking`: it
creates it and writes a projection's position in the same transaction as the rows the page
wrote (`projections.runner`). This module names the table for the recorder and holds every
read of positions we make beside the recorder's own, as SQL expressions, so an answer can
take its position in the same statement (hence the same snapshot) as its rows.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Connection

from store.event_store import HEAD_SQL

TRACKING_TABLE = "projection_tracking"
PROFILES = "profiles"
PARTNERS = "partners"
PROJECTIONS = (PROFILES, PARTNERS)
"""The projections `ledger project` runs; the position is the lowest of theirs."""

POSITION_SQL = """(SELECT coalesce(min(reached), 0) FROM (
    SELECT coalesce((SELECT max(notification_id) FROM projection_tracking
                     WHERE application_name = name), 0) AS reached
    FROM unnest(%s::text[]) AS name) AS projections)"""
"""The position every projection has reached, as an SQL expression (one index probe per
projection; its parameter: `list(PROJECTIONS)`)."""

REACHED_SQL = """coalesce((SELECT max(notification_id) FROM projection_tracking
    WHERE application_name = %s), 0)"""
"""The position one projection has reached, as an SQL expression (its parameter: the name)."""


def tracking_recorder(datastore: PostgresDatastore) -> PostgresTrackingRecorder:
    """The library's tracking recorder of the projections' positions, on `datastore` (the
    live one shares the event store's pool; a replay's has a scratch schema)."""
    return PostgresTrackingRecorder(datastore, tracking_table_name=TRACKING_TABLE)


def position(conn: Connection[Any]) -> int:
    """The position every projection has reached (0 before the first page)."""
    row = conn.execute(f"SELECT {POSITION_SQL}", (list(PROJECTIONS),)).fetchone()
    return int(row[0]) if row else 0


def holds_replay(conn: Connection[Any], schema: str) -> tuple[bool, bool]:
    """(whether `schema` exists, whether it holds a tracking table: an earlier replay)."""
    row = conn.execute(
        "SELECT to_regnamespace(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
        (schema, f'"{schema}".{TRACKING_TABLE}'),
    ).fetchone()
    return (bool(row[0]), bool(row[1])) if row else (False, False)


def position_and_head_query() -> tuple[str, tuple[Any, ...]]:
    """The projections' position and the ledger's head, in one statement (`ledger serve`'s
    wait for `min_position`); `position_and_head` reads its row."""
    return f"SELECT {POSITION_SQL}, {HEAD_SQL}", (list(PROJECTIONS),)


def position_and_head(row: tuple[Any, ...] | None) -> tuple[int, int]:
    assert row is not None
    return int(row[0]), int(row[1])
