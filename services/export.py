"""Use case: `ledger export ID` and `GET /customers/{id}/export`: everything the ledger
holds about a person, in one document (GDPR articles 15 and 20): the profile, every
recorded event with its personal fields opened, where the person stands in each audience
and why, the history of their consent, and the messages about them the ledger rejected
(dead letters keep the bytes as sent).

A forgotten customer is refused: the ledger can no longer open their personal data, and
what it still holds about them (counts and sums under a bare id) is in their profile.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection, IsolationLevel

from domain.aggregates import CUSTOMER_FORGOTTEN, customer_stream
from domain.cards import claimed_card
from domain.forgetting import identifying, names_person
from domain.profile import instant, utc_text
from projections import audiences, history, positions, profiles
from services.ports import Ports
from store import dead_letters as dead_letter_rows
from store import merges

_CONSENT_KINDS = ("customer_enrolled", "consent_changed")


class CustomerErased(Exception):
    """The customer was forgotten: nothing personal is left to export."""


def export(conn: Connection[Any], customer_id: str) -> dict[str, Any] | None:
    """The export document (None: no such customer); read it in one REPEATABLE READ
    transaction so that its parts agree. Raises `CustomerErased` for a forgotten one. A
    merged customer's is its root's, which covers the whole tree (contract section 8)."""
    events = history.customer_events(conn, customer_id)  # the tree's, of the same snapshot
    if not any(e["stream"] == customer_stream(customer_id) for e in events):
        return None
    customer_id, tree = merges.tree(conn, customer_id)
    owns = {customer_stream(c) for c in tree}
    gone = next((e for e in events if e["type"] == CUSTOMER_FORGOTTEN), None)
    if gone is not None:
        raise CustomerErased(
            f"customer {customer_id!r} was forgotten at {gone['recorded_at']}: the ledger "
            "can no longer read their personal data, so there is nothing to export"
        )
    consent = sorted(
        (
            {
                "marketing_consent": bool(e["payload"].get("marketing_consent", False)),
                "occurred_at": e["occurred_at"],
                "type": e["type"],
                "event_id": e["event_id"],
            }
            for e in events
            if e["stream"] in owns and e["type"] in _CONSENT_KINDS
        ),
        key=lambda c: (instant(c["occurred_at"]), c["event_id"].lower()),
    )
    return {
        "customer_id": customer_id,
        "position": positions.position(conn),
        "profile": profiles.profile(conn, customer_id),
        "history": events,
        "audiences": audiences.standing(conn, customer_id),
        "consent": consent,
        "dead_letters": _dead_letters(conn, tree, events),
    }


def read_export(ports: Ports, customer_id: str) -> dict[str, Any] | None:
    """The export document, read on a connection of its own in one snapshot."""
    with ports.connect() as conn:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ  # one snapshot for every part
        return export(conn, customer_id)


def _dead_letters(
    conn: Connection[Any], tree: list[str], events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rejected messages that name the customers of the tree or their cards, or hold
    their names or e-mails (the same test `ledger forget` empties them by)."""
    ids = {*tree} | {c for e in events if (c := claimed_card(e["type"], e["payload"]))}
    personal = identifying(e["payload"] for e in events if e["type"] == "customer_enrolled")
    rows = dead_letter_rows.with_values(conn)
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
