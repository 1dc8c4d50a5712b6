"""The dead letters that name a customer, for `ledger export` (`services.export`)."""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from domain.aggregates import CARD_CLAIMED
from domain.forgetting import identifying, names_person
from domain.profile import utc_text


def dead_letters(
    conn: Connection[Any], customer_id: str, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rejected messages that name the customer or its cards, or hold its name or
    e-mail (the same test `ledger forget` empties them by)."""
    ids = {customer_id} | {e["payload"]["card_id"] for e in events if e["type"] == CARD_CLAIMED}
    personal = identifying(e["payload"] for e in events if e["type"] == "customer_enrolled")
    rows = conn.execute(
        "SELECT source_topic, source_partition, source_offset, event_id, error_type, error, "
        "value, recorded_at FROM ledger_dead_letters WHERE value IS NOT NULL "
        "ORDER BY recorded_at, source_topic, source_partition, source_offset"
    ).fetchall()
    return [
        {
            "source_topic": topic,
            "source_partition": partition,
            "source_offset": offset,
            "event_id": event_id,
            "error_type": error_type,
            "error": error,
            "value": bytes(value).decode("utf-8", "replace"),
            "recorded_at": utc_text(recorded_at),
        }
        for topic, partition, offset, event_id, error_type, error, value, recorded_at in rows
        if names_person(bytes(value), ids, personal)
    ]
