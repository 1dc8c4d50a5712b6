"""The audience outbox, `audience_outbox`: its one owner (DDL, the changes appended in each
projection page's transaction, their reasons erased in a replay's copy), and its relay to
`{prefix}.audiences`, at least once.

A change is written to the outbox in the transaction that changed the membership. The
relay publishes the oldest rows, waits for every acknowledgement, and only then deletes
them, so a crash in between sends those rows again but never loses one; each carries its
`seq`, increasing per audience and customer, so a reader drops a repeat. A session
advisory lock keeps relays to one at a time (PostgreSQL releases it if the holder dies),
which keeps each key's changes in `seq` order on its partition. The claim, send and
delete are the one outbox relay's (`store.outbox_relay`); this module holds the outbox's
SQL and the message of contract section 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from kafka import KafkaProducer

from domain.membership import Change
from domain.profile import utc_text
from store.locks import Lock
from store.outbox_relay import OutboxRecord, OutboxRelay

_CHUNK = 5_000

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS audience_outbox (
    id bigserial PRIMARY KEY,
    audience text NOT NULL,
    customer_id text NOT NULL,
    change text NOT NULL,
    at timestamptz NOT NULL,
    reason text NOT NULL,
    seq bigint NOT NULL
);
"""

_APPEND = """
INSERT INTO audience_outbox (audience, customer_id, change, at, reason, seq)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::text[],
                     %b::bigint[])
"""
_CLAIM = (
    "SELECT id, audience, customer_id, change, at, reason, seq FROM audience_outbox "
    "ORDER BY id LIMIT %s"
)
_DELETE = "DELETE FROM audience_outbox WHERE id = ANY(%s)"


def append(curs: psycopg.Cursor[Any], changes: list[Change]) -> None:
    """Add a page's membership changes, in the page's transaction."""
    curs.execute(
        _APPEND,
        (
            [c.audience for c in changes],
            [c.customer_id for c in changes],
            [c.change for c in changes],
            [c.at for c in changes],
            [c.reason for c in changes],
            [c.seq for c in changes],
        ),
    )


def erase_reasons(curs: psycopg.Cursor[Any], customer_id: str, erased: str) -> None:
    """Empty the reasons of a forgotten customer's changes (a replay's copy: never
    published, it keeps every change)."""
    curs.execute(
        "UPDATE audience_outbox SET reason = %s WHERE customer_id = %s", (erased, customer_id)
    )


def message(row: tuple[Any, ...]) -> tuple[bytes, bytes]:
    """The key and value of one change, as contract section 3 says."""
    audience, customer_id, change, at, reason, seq = row
    value = {
        "audience": audience,
        "customer_id": customer_id,
        "change": change,
        "at": utc_text(at),
        "reason": reason,
        "seq": seq,
    }
    return f"{audience}:{customer_id}".encode(), orjson.dumps(value)


@dataclass(frozen=True)
class AudienceChange:
    """One change as it goes to the audiences topic (no headers)."""

    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class AudienceOutbox:
    """`audience_outbox` as an outbox: oldest first, deleted once Kafka acknowledged it."""

    lock = Lock.AUDIENCE_RELAY
    refused: tuple[type[Exception], ...] = ()  # a change Kafka refuses stops the relay

    def claim(self, conn: psycopg.Connection[Any]) -> list[Any]:
        return conn.execute(_CLAIM, (_CHUNK,)).fetchall()

    def records(self, rows: list[Any]) -> list[OutboxRecord]:
        return [AudienceChange(*message(row[1:])) for row in rows]

    def instead(self, record: OutboxRecord, refusal: Exception) -> OutboxRecord:
        raise refusal  # never called: nothing is in `refused`

    def settle(self, conn: psycopg.Connection[Any], rows: list[Any]) -> None:
        conn.execute(_DELETE, ([row[0] for row in rows],))


class AudienceRelay(OutboxRelay[Any]):
    """The audience outbox published by the one relay (`store.outbox_relay`)."""

    def __init__(self, database_url: str, producer: KafkaProducer, topic: str) -> None:
        super().__init__(database_url, producer, topic, AudienceOutbox())
