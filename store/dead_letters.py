"""The dead-letter outbox, `ledger_dead_letters`: its one owner (DDL, writes and reads,
the relay's claim and publish marks included: `consumers.relay` is the outbox's relay).

One row per rejected Kafka record (primary key: source log id, topic, partition, offset: a
restarted embedded broker, or a topic deleted and created again, reuses offsets; see
`consumers.log_ids`), written in its batch's transaction and published to the DLQ topic by
the relay. Any bytes a Kafka record can carry are kept: key and value as `bytea`, headers as
`[{"name": hex, "value": hex or null}]` (header names may hold NUL or be no UTF-8). Here in
`store/` because the read side (fates, export, metrics) reads it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg.errors
from psycopg import Connection, Cursor
from psycopg.types.json import Jsonb

from domain.forgetting import ERASED_ERROR

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS ledger_dead_letters (
    source_log text NOT NULL,
    source_topic text NOT NULL,
    source_partition int NOT NULL,
    source_offset bigint NOT NULL,
    event_id text,
    error_type text NOT NULL,
    error text NOT NULL,
    key bytea,
    value bytea,
    headers jsonb NOT NULL DEFAULT '[]',
    attempts int NOT NULL DEFAULT 0,
    published boolean NOT NULL DEFAULT false,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_log, source_topic, source_partition, source_offset)
);
DO $$
BEGIN
    -- A table made before dead letters named their log (and stored header names as
    -- text): its rows get the log '' (unknown), their headers hex.
    IF NOT EXISTS (
        SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
        AND table_name = 'ledger_dead_letters' AND column_name = 'source_log'
    ) THEN
        ALTER TABLE ledger_dead_letters ADD COLUMN source_log text NOT NULL DEFAULT '';
        ALTER TABLE ledger_dead_letters ALTER COLUMN source_log DROP DEFAULT;
        ALTER TABLE ledger_dead_letters DROP CONSTRAINT ledger_dead_letters_pkey;
        ALTER TABLE ledger_dead_letters
            ADD PRIMARY KEY (source_log, source_topic, source_partition, source_offset);
        UPDATE ledger_dead_letters SET headers = (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                'name', encode(convert_to(h ->> 0, 'UTF8'), 'hex'), 'value', h -> 1)), '[]')
            FROM jsonb_array_elements(headers) AS h
        ) WHERE headers <> '[]';
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS ledger_dead_letters_unpublished
    ON ledger_dead_letters (recorded_at) WHERE NOT published;
CREATE INDEX IF NOT EXISTS ledger_dead_letters_event_id ON ledger_dead_letters (event_id);
-- Redrive (`services.redrive`): when the row was published again to the inbound topic
-- (NULL: never). Added, not created, so an older ledger upgrades on `ledger init`.
ALTER TABLE ledger_dead_letters ADD COLUMN IF NOT EXISTS redriven_at timestamptz;
CREATE INDEX IF NOT EXISTS ledger_dead_letters_latest
    ON ledger_dead_letters (source_topic, recorded_at, source_log, source_partition, source_offset);
"""

Header = tuple[bytes, bytes | None]
"""A Kafka record header as the wire carries it: a name (meant to be UTF-8, not always)
and a value that may be null."""


@dataclass(frozen=True)
class DeadLetterRow:
    source_log: str
    source_topic: str
    source_partition: int
    source_offset: int
    event_id: str | None
    error_type: str
    error: str
    key: bytes | None
    value: bytes | None
    headers: list[Header]


class DeadLetterCollision(Exception):
    """A second dead letter for one source record: a bug, never ignored."""


def refuse_dead_letter_collision(error: BaseException) -> None:
    """Raise `DeadLetterCollision` if a failed batch's integrity error was a dead letter
    stored twice (not another writer extending a stream first, which a retry settles)."""
    cause = error.__cause__
    if (
        isinstance(cause, psycopg.errors.UniqueViolation)
        and cause.diag.constraint_name == "ledger_dead_letters_pkey"
    ):
        raise DeadLetterCollision(
            f"a dead letter was already stored for the same Kafka record "
            f"({cause.diag.message_detail}): refusing to record the batch"
        ) from error


def stored_headers(headers: Sequence[Header]) -> Jsonb:
    """Headers as `ledger_dead_letters.headers` keeps them (hex: jsonb holds no NUL)."""
    return Jsonb(
        [
            {"name": name.hex(), "value": None if value is None else value.hex()}
            for name, value in headers
        ]
    )


def headers_of(stored: Any) -> list[Header]:
    """The headers of a stored dead letter, as the Kafka record carried them."""
    return [
        (bytes.fromhex(h["name"]), None if h["value"] is None else bytes.fromhex(h["value"]))
        for h in stored or ()
    ]


_INSERT = """
INSERT INTO ledger_dead_letters
    (source_log, source_topic, source_partition, source_offset, event_id, error_type,
     error, key, value, headers)
SELECT * FROM unnest(%b::text[], %b::text[], %b::int[], %b::bigint[], %b::text[], %b::text[],
                     %b::text[], %b::bytea[], %b::bytea[], %b::jsonb[])
"""
# No `ON CONFLICT DO NOTHING`: a record is dead-lettered once, in the transaction that moves
# its partition's offset past it, so a second row for one source position is a bug, and
# must fail the batch loudly rather than print a dead letter that was never stored.


def insert(curs: Cursor[Any], rows: list[DeadLetterRow]) -> None:
    if not rows:
        return
    curs.execute(
        _INSERT,
        (
            [d.source_log for d in rows],
            [d.source_topic for d in rows],
            [d.source_partition for d in rows],
            [d.source_offset for d in rows],
            [d.event_id for d in rows],
            [d.error_type for d in rows],
            [d.error for d in rows],
            [d.key for d in rows],
            [d.value for d in rows],
            [stored_headers(d.headers) for d in rows],
        ),
    )


_REDACT = """
UPDATE ledger_dead_letters AS d
SET key = NULL, value = NULL, headers = '[]', error = %s
FROM unnest(%s::text[], %s::text[], %s::int[], %s::bigint[]) AS h(log, topic, part, off)
WHERE (d.source_log, d.source_topic, d.source_partition, d.source_offset)
    = (h.log, h.topic, h.part, h.off)
"""


def redact(curs: Cursor[Any], about: Callable[[bytes, bytes], bool], error: str) -> None:
    """Empty every dead letter for which `about(key, value)` holds of its bytes and set
    its reason to `error`; its error type and source position stay."""
    curs.execute(
        "SELECT source_log, source_topic, source_partition, source_offset, key, value "
        "FROM ledger_dead_letters WHERE value IS NOT NULL OR key IS NOT NULL"
    )
    rows = [
        r for r in curs.fetchall() if about(_bytes(_at(r, 4, "key")), _bytes(_at(r, 5, "value")))
    ]
    if rows:
        curs.execute(
            _REDACT,
            (
                error,
                [_at(r, 0, "source_log") for r in rows],
                [_at(r, 1, "source_topic") for r in rows],
                [_at(r, 2, "source_partition") for r in rows],
                [_at(r, 3, "source_offset") for r in rows],
            ),
        )


def latest_fate(conn: Connection[Any], event_id: str) -> tuple[str, str] | None:
    """The error type and reason of the last dead letter of this event id, if any."""
    row = conn.execute(
        "SELECT error_type, error FROM ledger_dead_letters WHERE event_id = %s "
        "ORDER BY recorded_at DESC, source_offset DESC LIMIT 1",
        (event_id,),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def counts_by_error(conn: Connection[Any], topic: str) -> dict[str, int]:
    """Dead letters of records from `topic`, by error type."""
    return dict(
        conn.execute(
            "SELECT error_type, count(*) FROM ledger_dead_letters WHERE source_topic = %s "
            "GROUP BY error_type",
            (topic,),
        ).fetchall()
    )


def summary(conn: Connection[Any], topic: str) -> list[tuple[str, int, str]]:
    """(error type, count, an example reason) of the dead letters from `topic`."""
    return conn.execute(
        "SELECT error_type, count(*), min(error) FROM ledger_dead_letters "
        "WHERE source_topic = %s GROUP BY error_type ORDER BY error_type",
        (topic,),
    ).fetchall()


def with_values(conn: Connection[Any]) -> list[tuple[Any, ...]]:
    """Every dead letter that still holds its value: (source topic, partition, offset,
    event id, error type, error, value, recorded at), in the order they were recorded."""
    return conn.execute(
        "SELECT source_topic, source_partition, source_offset, event_id, error_type, error, "
        "value, recorded_at FROM ledger_dead_letters WHERE value IS NOT NULL "
        "ORDER BY recorded_at, source_topic, source_partition, source_offset"
    ).fetchall()


def _at(row: Any, index: int, name: str) -> Any:
    return row[name] if isinstance(row, dict) else row[index]


def _bytes(value: Any) -> bytes:
    return b"" if value is None else bytes(value)


_CLAIM = """
WITH claimed AS (
    UPDATE ledger_dead_letters SET attempts = attempts + 1
    WHERE (source_log, source_topic, source_partition, source_offset) IN (
        SELECT source_log, source_topic, source_partition, source_offset
        FROM ledger_dead_letters WHERE NOT published AND source_topic = %s
        ORDER BY recorded_at, source_partition, source_offset LIMIT %s)
    RETURNING *
)
SELECT source_log, source_topic, source_partition, source_offset, error_type, error, key,
       value, headers, attempts
FROM claimed ORDER BY recorded_at, source_partition, source_offset
"""
# Ordered outside the UPDATE (RETURNING keeps no order), so a key's dead letters reach the
# topic in the order they were rejected.

_MARK = """
UPDATE ledger_dead_letters SET published = true
WHERE source_topic = %s AND (source_log, source_partition, source_offset) IN (
    SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[]))
"""


def claim(conn: Connection[Any], source_topic: str, limit: int) -> list[Any]:
    """The next `limit` unpublished dead letters of `source_topic`, oldest first, each
    counted as attempted once more: (source_log, source_topic, source_partition,
    source_offset, error_type, error, key, value, headers, attempts)."""
    return conn.execute(_CLAIM, (source_topic, limit)).fetchall()


def mark_published(
    conn: Connection[Any], source_topic: str, sources: list[tuple[str, int, int]]
) -> None:
    """Mark these dead letters of `source_topic` (log id, partition, offset) published."""
    conn.execute(
        _MARK,
        (
            source_topic,
            [log for log, _, _ in sources],
            [partition for _, partition, _ in sources],
            [offset for _, _, offset in sources],
        ),
    )


# Look and redrive (contract section 8): the reads of `services.dead_letter_list` and the
# claim and mark of `services.redrive`. A dead letter is redriven at most once: its
# `redriven_at` is set in the transaction that locked it, after Kafka acknowledged the send.


@dataclass(frozen=True)
class Listed:
    """One dead letter as `ledger dead-letters` lists it."""

    source_log: str
    source_partition: int
    source_offset: int
    event_id: str | None
    error_type: str
    error: str
    dead_lettered_at: datetime
    redriven: bool


Place = tuple[datetime, str, int, int]
"""Where a dead letter stands in the newest-first order: (recorded at, log, partition,
offset), a key of the table within one source topic, so a page cursor stays valid."""

_LATEST = """
SELECT source_log, source_partition, source_offset, event_id, error_type, error, recorded_at,
       redriven_at IS NOT NULL
FROM ledger_dead_letters
WHERE source_topic = %(topic)s AND (%(type)s::text IS NULL OR error_type = %(type)s)
  AND (%(at)s::timestamptz IS NULL
       OR (recorded_at, source_log, source_partition, source_offset)
          < (%(at)s::timestamptz, %(log)s::text, %(part)s::int, %(off)s::bigint))
ORDER BY recorded_at DESC, source_log DESC, source_partition DESC, source_offset DESC
LIMIT %(limit)s
"""


def latest(
    conn: Connection[Any], topic: str, error_type: str | None, limit: int, after: Place | None
) -> list[Listed]:
    """The dead letters of `topic` (of one error type, if given), newest first, from just
    after `after`."""
    at, log, part, off = after or (None, None, None, None)
    params: dict[str, Any] = {"topic": topic, "type": error_type, "limit": limit}
    params |= {"at": at, "log": log, "part": part, "off": off}
    return [Listed(*row) for row in conn.execute(_LATEST, params).fetchall()]


def counts(conn: Connection[Any], topic: str, error_type: str | None) -> dict[str, int]:
    """Every dead letter of `topic` (of one error type, if given), redriven or not, by
    error type."""
    return dict(
        conn.execute(
            "SELECT error_type, count(*) FROM ledger_dead_letters WHERE source_topic = %s "
            "AND (%s::text IS NULL OR error_type = %s) GROUP BY error_type ORDER BY error_type",
            (topic, error_type, error_type),
        ).fetchall()
    )


Source = tuple[str, int, int]
"""A dead letter of a known source topic: its log id, partition and offset."""

_ERASED = "(key IS NULL AND value IS NULL AND (error = %(erased)s OR error_type = 'rule'))"
"""Emptied by a forget: by `ledger forget` afterwards (its error replaced), or at ingest (a
`rule` rejection about a forgotten customer, kept without its bytes: a rule rejection
always had a parsed message, so no other one has none)."""

_NOT_REDRIVEN = f"""
SELECT source_log, source_partition, source_offset, error_type, {_ERASED}
FROM ledger_dead_letters
WHERE source_topic = %(topic)s AND redriven_at IS NULL
  AND (%(type)s::text IS NULL OR error_type = %(type)s)
  AND (%(since)s::timestamptz IS NULL OR recorded_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR recorded_at < %(until)s::timestamptz)
ORDER BY recorded_at, source_log, source_partition, source_offset
"""


def not_redriven(
    conn: Connection[Any],
    topic: str,
    error_type: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[tuple[Source, str, bool]]:
    """(source, error type, emptied by a forget) of every dead letter of `topic` not
    redriven yet and dead-lettered in [since, until), oldest first: the order a key's
    messages were rejected in, so they go back in that order."""
    params = {"topic": topic, "type": error_type, "since": since, "until": until}
    rows = conn.execute(_NOT_REDRIVEN, params | {"erased": ERASED_ERROR}).fetchall()
    return [((log, part, off), error_type_, erased) for log, part, off, error_type_, erased in rows]


@dataclass(frozen=True)
class Redrivable:
    """A dead letter locked for redrive: what the original record carried."""

    source: Source
    error_type: str
    erased: bool  # emptied by a forget: nothing left to send
    key: bytes | None
    value: bytes | None
    headers: list[Header]


_LOCK_FOR_REDRIVE = f"""
SELECT source_log, source_partition, source_offset, error_type, {_ERASED}, key, value, headers
FROM ledger_dead_letters
WHERE source_topic = %(topic)s AND redriven_at IS NULL
  AND (source_log, source_partition, source_offset) IN (
      SELECT * FROM unnest(%(logs)s::text[], %(parts)s::int[], %(offs)s::bigint[]))
ORDER BY recorded_at, source_log, source_partition, source_offset
FOR UPDATE
"""
# FOR UPDATE: a second redrive waits here, then finds the row redriven and leaves it.


def lock_for_redrive(
    conn: Connection[Any], topic: str, sources: Sequence[Source]
) -> list[Redrivable]:
    """Lock these dead letters of `topic` until the transaction ends, leaving out those
    redriven meanwhile; oldest first."""
    params = _sources(sources) | {"topic": topic, "erased": ERASED_ERROR}
    return [
        Redrivable(
            (log, part, off),
            error_type,
            erased,
            None if key is None else bytes(key),
            None if value is None else bytes(value),
            headers_of(headers),
        )
        for log, part, off, error_type, erased, key, value, headers in conn.execute(
            _LOCK_FOR_REDRIVE, params
        ).fetchall()
    ]


def mark_redriven(conn: Connection[Any], topic: str, sources: Sequence[Source]) -> None:
    """Mark these dead letters of `topic` redriven (now)."""
    conn.execute(
        "UPDATE ledger_dead_letters SET redriven_at = now() WHERE source_topic = %(topic)s "
        "AND (source_log, source_partition, source_offset) IN ("
        "SELECT * FROM unnest(%(logs)s::text[], %(parts)s::int[], %(offs)s::bigint[]))",
        _sources(sources) | {"topic": topic},
    )


def _sources(sources: Sequence[Source]) -> dict[str, list[Any]]:
    return {
        "logs": [log for log, _, _ in sources],
        "parts": [part for _, part, _ in sources],
        "offs": [off for _, _, off in sources],
    }
