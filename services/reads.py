"""Use cases: the answers the CLI and the HTTP API read (a profile, now or as of a moment;
a customer's or partner's history; a partner's status; audience sizes and members; what
became of an interaction; the ingest figures of `/metrics` and `/health`).

Each answer is a function of one connection, so the API can read it in the snapshot that
also gives its `X-Ledger-Position`, and the CLI on a connection of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg import Connection

from domain.audiences import Audience
from domain.membership import fingerprint
from projections import audience_definitions, audiences, history, partners, profiles
from store import (
    card_holdings,
    dead_letters,
    event_store,
    ingest_batches,
    interaction_index,
    merges,
    offsets,
)


def profile(
    conn: Connection[Any], customer_id: str, as_of: datetime | None = None
) -> dict[str, Any] | None:
    """The customer's profile (None: unknown), or what the ledger knew of them `as_of`."""
    if as_of is None:
        return profiles.profile(conn, customer_id)
    return history.profile_as_of(conn, customer_id, as_of)


def customer_history(conn: Connection[Any], customer_id: str) -> list[dict[str, Any]]:
    """The customer's recorded events and their cards' (empty: unknown)."""
    return history.customer_events(conn, customer_id)


def any_history(conn: Connection[Any], stream_of: str) -> list[dict[str, Any]]:
    """The recorded events of a customer, else of a partner, by id (empty: neither)."""
    return history.customer_events(conn, stream_of) or history.partner_events(conn, stream_of)


def partner(conn: Connection[Any], partner_id: str, today: date) -> dict[str, Any] | None:
    """The partner's status, with the contracts due for renewal as of `today`."""
    return partners.status(conn, partner_id, today)


def partner_statuses(conn: Connection[Any]) -> dict[str, int]:
    return partners.statuses(conn)


def audience_sizes(conn: Connection[Any], defined: list[Audience]) -> list[dict[str, Any]]:
    """`[{name, description, size}]` in definition order."""
    sizes = audiences.sizes(conn)
    return [
        {"name": a.name, "description": a.description, "size": sizes.get(a.name, 0)}
        for a in defined
    ]


def audience_members(
    conn: Connection[Any], name: str, *, limit: int | None = None, after: str | None = None
) -> list[dict[str, Any]]:
    """Members ordered by customer id, from just after `after`."""
    return audiences.members(conn, name, limit=limit, after=after)


@dataclass(frozen=True)
class AudienceAnswer:
    summary: dict[str, Any]  # {name, description, size}
    members: list[dict[str, Any]]
    applied: bool  # whether membership follows this definition yet (`ledger project` ran)


def audience(conn: Connection[Any], defined: list[Audience], name: str) -> AudienceAnswer | None:
    """One audience with every member (None: no such audience is defined)."""
    found = next((a for a in audience_sizes(conn, defined) if a["name"] == name), None)
    if found is None:
        return None
    definition = next(a for a in defined if a.name == name)
    applied = audience_definitions.applied(conn).get(name) == fingerprint(definition)
    return AudienceAnswer(found, audiences.members(conn, name), applied)


def interaction_fate(conn: Connection[Any], event_id: str) -> dict[str, Any] | None:
    """What became of a published interaction: recorded (at which position) or
    dead-lettered (with its error); None while the ledger has not seen it."""
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


def ingest_counts(conn: Connection[Any], topic: str) -> tuple[dict[str, int], dict[str, int]]:
    """Interactions recorded by type, and dead-lettered by error type (for /metrics)."""
    return interaction_index.counts_by_type(conn), dead_letters.counts_by_error(conn, topic)


def batch_sizes(conn: Connection[Any]) -> list[tuple[int, int, int]]:
    """The ingest batch-size histogram: (upper bound, batches, records) per bucket."""
    return ingest_batches.batch_sizes(conn)


@dataclass(frozen=True)
class Summary:
    """The ledger at a glance (`ledger demo`'s closing tables)."""

    recorded: int  # interactions recorded
    events: int  # events in the store (an enrollment records two)
    profiles: int
    dead_letters: list[tuple[str, int, str]]  # (error type, count, an example reason)
    top_spenders: list[dict[str, Any]]  # the five customers of the highest EUR spend
    by_type: dict[str, int]  # interactions recorded per type, most first
    merge: tuple[str, str] | None = None  # a merged customer and its survivor, if any
    replaced: tuple[str, str, str] | None = None  # a retired card, its holder, its new card


def summary(conn: Connection[Any], topic: str) -> Summary:
    """The ledger at a glance: counts, the dead letters of `topic` by error type, the top
    spenders."""
    return Summary(
        interaction_index.count(conn),
        event_store.count(conn),
        profiles.count(conn),
        dead_letters.summary(conn, topic),
        profiles.top_spenders(conn, 5),
        interaction_index.count_by_type(conn),
        merges.one_open(conn),
        card_holdings.one_retired(conn),
    )
