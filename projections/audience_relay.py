"""The audience relay: `audience_outbox` rows to `{prefix}.audiences`, at least once.

A change is written to the outbox in the transaction that changed the membership. The
relay publishes the oldest rows, waits for every acknowledgement, and only then deletes
them, so a crash in between sends those rows again but never loses one; each carries its
`seq`, increasing per audience and customer, so a reader drops a repeat. A session
advisory lock keeps relays to one at a time (PostgreSQL releases it if the holder dies),
which keeps each key's changes in `seq` order on its partition.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from kafka import KafkaProducer

from domain.profile import utc_text
from store.locks import Lock, try_lock, unlock

_CHUNK = 5_000


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


class AudienceRelay:
    def __init__(self, database_url: str, producer: KafkaProducer, topic: str) -> None:
        self._database_url = database_url
        self._producer = producer
        self._topic = topic
        self._conn: psycopg.Connection[Any] | None = None

    def publish_pending(self) -> int:
        """Publish every change in the outbox; return how many were sent."""
        conn = self._connection()
        if not try_lock(conn, Lock.AUDIENCE_RELAY):
            return 0  # another relay is publishing; it takes our rows too
        sent = 0
        try:
            while True:
                rows = conn.execute(
                    "SELECT id, audience, customer_id, change, at, reason, seq "
                    "FROM audience_outbox ORDER BY id LIMIT %s",
                    (_CHUNK,),
                ).fetchall()
                if not rows:
                    return sent
                futures = []
                for row in rows:
                    key, value = message(row[1:])
                    futures.append(self._producer.send(self._topic, key=key, value=value))
                self._producer.flush()
                for future in futures:
                    future.get(timeout=30)  # raise here, before deleting, if any send failed
                conn.execute(
                    "DELETE FROM audience_outbox WHERE id = ANY(%s)", ([row[0] for row in rows],)
                )
                sent += len(rows)
        finally:
            unlock(conn, Lock.AUDIENCE_RELAY)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._database_url, autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._producer.close()
