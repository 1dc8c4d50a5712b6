"""Reading the projections: the queries behind the CLI (and the HTTP API), one per answer."""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg import Connection

from domain import partner as partner_fold
from domain import profile as profile_fold
from domain.audiences import Audience
from domain.partner import renewal_due
from domain.profile import utc_text
from projections.partners import PartnerProjection
from projections.profiles import ProfileProjection
from store import dead_letters, ingest_batches, interaction_index, offsets

PROJECTIONS = (ProfileProjection.name, PartnerProjection.name)
"""The projections `ledger project` runs; the position is the lowest of theirs."""


def partner(conn: Connection[Any], partner_id: str, today: date) -> dict[str, Any] | None:
    """The partner status, with the active contracts due for renewal as of `today`."""
    row = conn.execute(
        "SELECT status FROM partners WHERE partner_id = %s", (partner_id,)
    ).fetchone()
    if row is None:
        return None
    status = partner_fold.in_order(row[0])
    return {**status, "renewal_due": renewal_due(status, today)}


def partner_statuses(conn: Connection[Any]) -> dict[str, int]:
    """How many partners are in each status."""
    rows = conn.execute(
        "SELECT status->>'status', count(*) FROM partners GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {status: count for status, count in rows}


def audience_sizes(conn: Connection[Any], audiences: list[Audience]) -> list[dict[str, Any]]:
    """`[{name, description, size}]` in definition order."""
    rows = conn.execute(
        "SELECT audience, count(*) FROM audience_members WHERE member GROUP BY audience"
    ).fetchall()
    sizes = dict(rows)
    return [
        {"name": a.name, "description": a.description, "size": sizes.get(a.name, 0)}
        for a in audiences
    ]


def audience_members(
    conn: Connection[Any], name: str, *, limit: int | None = None, after: str | None = None
) -> list[dict[str, Any]]:
    """Members ordered by customer id, from just after `after`: a cursor that stays valid
    while members come and go."""
    rows = conn.execute(
        "SELECT customer_id, since, reason FROM audience_members "
        "WHERE audience = %s AND member AND customer_id > %s ORDER BY customer_id LIMIT %s",
        (name, after or "", limit),
    ).fetchall()
    return [
        {"customer_id": customer_id, "since": utc_text(since), "reason": reason}
        for customer_id, since, reason in rows
    ]


_POSITION = """(SELECT coalesce(min(reached), 0) FROM (
    SELECT coalesce((SELECT max(notification_id) FROM projection_tracking
                     WHERE application_name = name), 0) AS reached
    FROM unnest(%s::text[]) AS name) AS projections)"""
"""The position every projection has reached, as an SQL expression (one index probe per
projection), so a read can take it in the same statement, hence the same snapshot."""


def position(conn: Connection[Any]) -> int:
    """The position every projection has reached (0 before the first page)."""
    row = conn.execute(f"SELECT {_POSITION}", (list(PROJECTIONS),)).fetchone()
    return int(row[0]) if row else 0


_REACHED = """coalesce((SELECT max(notification_id) FROM projection_tracking
    WHERE application_name = %s), 0)"""
"""The position one projection has reached, as an SQL expression."""


def profile_with_position_query(customer_id: str) -> tuple[str, tuple[Any, ...]]:
    """The profile, the position it reflects, and the profiles projection's own position,
    in one statement (one snapshot, one round trip: the API's hottest read);
    `profile_with_position` reads its row."""
    return (
        f"SELECT {_POSITION}, {_REACHED}, (SELECT profile FROM profiles WHERE customer_id = %s)",
        (list(PROJECTIONS), ProfileProjection.name, customer_id),
    )


def profile(conn: Connection[Any], customer_id: str) -> dict[str, Any] | None:
    """The stored profile (the CLI's read; the API runs the same query asynchronously)."""
    return profile_with_position(
        conn.execute(*profile_with_position_query(customer_id)).fetchone()
    )[2]


def profile_with_position(
    row: tuple[Any, ...] | None,
) -> tuple[int, int, dict[str, Any] | None]:
    """(position, the profiles projection's position, the profile or None)."""
    assert row is not None
    return int(row[0]), int(row[1]), None if row[2] is None else profile_fold.in_order(row[2])


def profile_changes_query(since: int | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    """The position, the profiles projection's position, and (up to `limit` of) the
    customers whose profile rows a page after `since` wrote, in one snapshot: what the
    API's profile cache needs to stay exact (`ledger.profile_cache`)."""
    if since is None:
        return f"SELECT {_POSITION}, {_REACHED}, '{{}}'::text[]", (
            list(PROJECTIONS),
            ProfileProjection.name,
        )
    return (
        f"SELECT {_POSITION}, {_REACHED}, "
        "ARRAY(SELECT customer_id FROM profiles WHERE position > %s LIMIT %s)",
        (list(PROJECTIONS), ProfileProjection.name, since, limit),
    )


def profile_changes(row: tuple[Any, ...] | None) -> tuple[int, int, list[str]]:
    assert row is not None
    return int(row[0]), int(row[1]), list(row[2])


def position_and_head_query() -> tuple[str, tuple[Any, ...]]:
    """The projections' position and the ledger's head, in one statement (`ledger serve`'s
    wait for `min_position`); `position_and_head` reads its row."""
    return (
        f"SELECT {_POSITION}, (SELECT coalesce(max(notification_id), 0) FROM ledger_events)",
        (list(PROJECTIONS),),
    )


def position_and_head(row: tuple[Any, ...] | None) -> tuple[int, int]:
    assert row is not None
    return int(row[0]), int(row[1])


def head(conn: Connection[Any]) -> int:
    """The ledger's last notification id."""
    row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM ledger_events").fetchone()
    return int(row[0]) if row else 0


def interaction_fate(conn: Connection[Any], event_id: str) -> dict[str, Any] | None:
    """What became of a published interaction: recorded (at which position) or dead-lettered
    (with its error); None while the ledger has not seen it."""
    position = interaction_index.position_of(conn, event_id)
    if position is not None:
        return {"status": "recorded", "position": position}
    fate = dead_letters.latest_fate(conn, event_id)
    if fate is not None:
        return {"status": "dead_lettered", "error_type": fate[0], "error": fate[1]}
    return None


def recorded_offsets(conn: Connection[Any], topic: str) -> dict[int, int]:
    """The next offset to read per partition of the inbound topic, as the ledger stored it."""
    return offsets.recorded_offsets(conn, topic)


def counts(conn: Connection[Any], topic: str) -> tuple[dict[str, int], dict[str, int]]:
    """Interactions recorded by type, and dead-lettered by error type (for /metrics)."""
    return interaction_index.counts_by_type(conn), dead_letters.counts_by_error(conn, topic)


def batch_sizes(conn: Connection[Any]) -> list[tuple[int, int, int]]:
    """The ingest batch-size histogram: (upper bound, batches, records) per bucket."""
    return ingest_batches.batch_sizes(conn)
