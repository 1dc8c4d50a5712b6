"""The one outbox relay: rows written in a transaction, published to Kafka after its commit.

Both outboxes of the ledger (dead letters, `consumers.relay`; audience changes,
`projections.audience_outbox`) are published the same way, and only their tables differ:

1. take the outbox's session advisory lock (`store.locks`), or return at once: another
   relay is publishing and takes our rows too; one publisher keeps each key in order;
2. claim a chunk of rows, in publishing order (the outbox's own SQL);
3. send a record for each, flush, and wait for every acknowledgement: a failed send
   raises here, before anything is settled, so a row is never settled unsent;
4. settle the chunk (mark it published, or delete it); repeat until a claim is empty;
5. release the lock.

A crash between 3 and 4 sends the chunk again: the outbox decides what that means
(the dead letters look on their topic first, the audience changes carry a `seq`).

The relay holds one autocommit connection between calls, opened on first use and again
after it was lost (a relay runs after every page or batch, and a connection costs ~4 ms),
and closed, with the producer, by `close()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

import psycopg
from kafka import KafkaProducer

from store.locks import Lock, try_lock, unlock

ACK_TIMEOUT = 30.0
"""Seconds to wait for one record's acknowledgement before the relay gives up (raises)."""

Row = TypeVar("Row")


class OutboxRecord(Protocol):
    """What goes to Kafka for one row."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class Outbox(Protocol[Row]):
    """One outbox table: how its rows are claimed, turned into records and settled."""

    @property
    def lock(self) -> Lock:
        """The session advisory lock that keeps this outbox's relays to one at a time."""
        ...

    @property
    def refused(self) -> tuple[type[Exception], ...]:
        """What Kafka may answer about one record that `instead` can replace ((): none)."""
        ...

    def claim(self, conn: psycopg.Connection[Any]) -> list[Row]:
        """The next chunk of unsettled rows, in publishing order; [] when none is left."""
        ...

    def records(self, rows: list[Row]) -> list[OutboxRecord]:
        """The records to send for these rows (an outbox may leave some out)."""
        ...

    def instead(self, record: OutboxRecord, refusal: Exception) -> OutboxRecord:
        """The record to send in place of one Kafka refused with `refusal`."""
        ...

    def settle(self, conn: psycopg.Connection[Any], rows: list[Row]) -> None:
        """Mark these rows published, or delete them: every record of theirs was acked."""
        ...


class OutboxRelay(Generic[Row]):
    """Publishes an outbox's rows to `topic`; `publish_pending` returns how many it sent."""

    def __init__(
        self, database_url: str, producer: KafkaProducer, topic: str, outbox: Outbox[Row]
    ) -> None:
        self._database_url = database_url
        self._producer = producer
        self._topic = topic
        self._outbox = outbox
        self._conn: psycopg.Connection[Any] | None = None

    def publish_pending(self) -> int:
        """Publish every unsettled row of the outbox; return how many records were sent."""
        conn = self._connection()
        if not try_lock(conn, self._outbox.lock):
            return 0  # another relay is publishing; it takes our rows too
        sent = 0
        try:
            while rows := self._outbox.claim(conn):
                sent += self._publish(rows)
                self._outbox.settle(conn, rows)
            return sent
        finally:
            if not conn.closed:  # a lost connection released the lock with its session
                unlock(conn, self._outbox.lock)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._producer.close()

    def _publish(self, rows: list[Row]) -> int:
        """Send the chunk's records and wait for every acknowledgement."""
        futures = [(record, self._send(record)) for record in self._outbox.records(rows)]
        self._producer.flush()
        for record, future in futures:
            try:
                future.get(timeout=ACK_TIMEOUT)  # raise here, before settling, if a send failed
            except self._outbox.refused as refusal:
                self._produce(self._outbox.instead(record, refusal)).get(timeout=ACK_TIMEOUT)
        return len(futures)

    def _send(self, record: OutboxRecord) -> Any:
        """Send one record; one the client refuses at once goes as the outbox says instead."""
        try:
            return self._produce(record)
        except self._outbox.refused as refusal:
            return self._produce(self._outbox.instead(record, refusal))

    def _produce(self, record: OutboxRecord) -> Any:
        return self._producer.send(
            self._topic, key=record.key, value=record.value, headers=list(record.headers)
        )

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._database_url, autocommit=True)
        return self._conn
