"""Use case: look at the dead letters (contract section 8), for `ledger dead-letters` and
`GET /dead-letters`: counts by error type, then the latest first, a page at a time.

The answers' shapes are pydantic models here, so the CLI's `--json` and the HTTP API
validate with the same ones (as `projections.models` does for the projections' answers).
A page's `next` is an opaque cursor naming the last dead letter of the page by its place in
the newest-first order, so a page stays valid while new dead letters arrive and old ones
are redriven.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import Connection
from pydantic import BaseModel, ConfigDict, Field

from domain.profile import utc_text
from store import dead_letters
from store.dead_letters import Listed, Place

DEFAULT_LIMIT = 20
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CURSOR = r"^-?\d{1,16}\.\d{1,9}\.\d{1,18}\.[^\x00]*$"
"""A page cursor: every text it matches is a place in the order (parts in range of
datetime and of the table's int and bigint), so no well-formed cursor fails a read."""


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_partition: int
    source_offset: int
    event_id: str | None
    error_type: str = Field(description="malformed, invalid, rule, conflict or internal")
    error: str
    dead_lettered_at: str = Field(description="RFC 3339, UTC: when the ledger rejected it")
    redriven: bool = Field(description="published again by `ledger redrive`")


class DeadLetters(BaseModel):
    """`ledger dead-letters --json`."""

    model_config = ConfigDict(extra="forbid")

    counts: dict[str, int] = Field(description="every dead letter, redriven or not, by type")
    dead_letters: list[DeadLetter]


class DeadLettersPage(BaseModel):
    """`GET /dead-letters`: pass `next` as `after` for the following (older) page."""

    model_config = ConfigDict(extra="forbid")

    dead_letters: list[DeadLetter]
    next: str | None


class BadCursor(ValueError):
    """An `after` that no page of this API gave."""


def overview(
    conn: Connection[Any], topic: str, error_type: str | None, limit: int = DEFAULT_LIMIT
) -> dict[str, Any]:
    """`{"counts", "dead_letters"}`: the dead letters of `topic` (the inbound topic) by
    error type, and the latest `limit` of them, newest first."""
    listed = dead_letters.latest(conn, topic, error_type, limit, None)
    document = {
        "counts": dead_letters.counts(conn, topic, error_type),
        "dead_letters": [_shown(d) for d in listed],
    }
    return DeadLetters.model_validate(document).model_dump(mode="json")


def page(
    conn: Connection[Any], topic: str, error_type: str | None, limit: int, after: str | None
) -> dict[str, Any]:
    """`{"dead_letters", "next"}`: `limit` dead letters, newest first, from just after the
    cursor `after` (BadCursor if it is not one)."""
    listed = dead_letters.latest(conn, topic, error_type, limit + 1, place_of(after))
    more = len(listed) > limit
    listed = listed[:limit]
    document = {
        "dead_letters": [_shown(d) for d in listed],
        "next": cursor_of(listed[-1]) if more else None,
    }
    return DeadLettersPage.model_validate(document).model_dump(mode="json")


def _shown(listed: Listed) -> dict[str, Any]:
    return {
        "source_partition": listed.source_partition,
        "source_offset": listed.source_offset,
        "event_id": listed.event_id,
        "error_type": listed.error_type,
        "error": listed.error,
        "dead_lettered_at": utc_text(listed.dead_lettered_at),
        "redriven": listed.redriven,
    }


def cursor_of(listed: Listed) -> str:
    """The place of a dead letter as text: `{microseconds since 1970}.{partition}.{offset}.{log}`
    (the log id last: it may hold dots). Any text of `CURSOR` is a valid place."""
    micros = (listed.dead_lettered_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{listed.source_partition}.{listed.source_offset}.{listed.source_log}"


def place_of(cursor: str | None) -> Place | None:
    """The place a cursor names (None: from the newest); BadCursor for other text."""
    if cursor is None:
        return None
    if not re.fullmatch(CURSOR, cursor):
        raise BadCursor(f"{cursor!r} is not a cursor this API gave (use a page's `next`)")
    micros, partition, offset, log = cursor.split(".", 3)
    return (EPOCH + timedelta(microseconds=int(micros)), log, int(partition), int(offset))
