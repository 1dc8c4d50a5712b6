"""The ingest side's reads behind the API and the CLI (what became of an interaction, the
offsets and counts of /metrics and /health); the projections' reads live with the table
each reads (`projections.profiles`, `partners`, `audiences`, `positions`, `event_store`)."""

from __future__ import annotations

from typing import Any

from psycopg import Connection


def interaction_fate(conn: Connection[Any], event_id: str) -> dict[str, Any] | None:
    """What became of a published interaction: recorded (at which position) or dead-lettered
    (with its error); None while the ledger has not seen it."""
    row = conn.execute(
        "SELECT e.notification_id FROM ledger_interactions i JOIN ledger_events e "
        "ON e.originator_id = i.originator_id AND e.originator_version = i.originator_version "
        "WHERE i.event_id = %s",
        (event_id,),
    ).fetchone()
    if row is not None:
        return {"status": "recorded", "position": row[0]}
    row = conn.execute(
        "SELECT error_type, error FROM ledger_dead_letters WHERE event_id = %s "
        "ORDER BY recorded_at DESC LIMIT 1",
        (event_id,),
    ).fetchone()
    if row is not None:
        return {"status": "dead_lettered", "error_type": row[0], "error": row[1]}
    return None


def recorded_offsets(conn: Connection[Any], topic: str) -> dict[int, int]:
    """The next offset to read per partition of the inbound topic, as the ledger stored it."""
    rows = conn.execute(
        "SELECT partition, next_offset FROM ledger_offsets WHERE topic = %s", (topic,)
    ).fetchall()
    return {int(partition): int(offset) for partition, offset in rows}


def counts(conn: Connection[Any], topic: str) -> tuple[dict[str, int], dict[str, int]]:
    """Interactions recorded by type, and dead-lettered by error type (for /metrics)."""
    recorded = dict(
        conn.execute("SELECT type, count(*) FROM ledger_interactions GROUP BY type").fetchall()
    )
    dead = dict(
        conn.execute(
            "SELECT error_type, count(*) FROM ledger_dead_letters WHERE source_topic = %s "
            "GROUP BY error_type",
            (topic,),
        ).fetchall()
    )
    return recorded, dead


def batch_sizes(conn: Connection[Any]) -> list[tuple[int, int, int]]:
    """The ingest batch-size histogram: (upper bound, batches, records) per bucket."""
    rows = conn.execute(
        "SELECT le, batches, records FROM ledger_ingest_batches ORDER BY le"
    ).fetchall()
    return [(int(le), int(batches), int(records)) for le, batches, records in rows]
