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


def profile(conn: Connection[Any], customer_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT profile FROM profiles WHERE customer_id = %s", (customer_id,)
    ).fetchone()
    return None if row is None else profile_fold.in_order(row[0])


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
