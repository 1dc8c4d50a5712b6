"""The inbound partitions' stored offsets, `ledger_offsets`: its one owner.

The next offset to read per inbound partition, and the log id it refers to (column
`cluster_id`, named when it held only the cluster's id; see `consumers.log_ids`). Moved
by compare-and-set in each batch's transaction, so PostgreSQL, never Kafka, decides where
a worker resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import Cursor

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS ledger_offsets (
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    cluster_id text NOT NULL DEFAULT '',
    PRIMARY KEY (topic, partition)
);
"""


class OffsetConflict(Exception):
    """The stored offset moved since this worker read it: it lost the partition."""


@dataclass(frozen=True)
class OffsetMove:
    """Compare-and-set of one partition's stored offset (expected None: no row yet)."""

    topic: str
    partition: int
    expected: int | None
    next_offset: int
    log_id: str


@dataclass(frozen=True)
class StoredOffset:
    partition: int
    next_offset: int | None  # as stored (None: no row yet): the compare-and-set's expected value
    log_id: str  # the `cluster_id` column: which incarnation of the topic the offset is in


_MOVE_OFFSET = """
INSERT INTO ledger_offsets AS o (topic, partition, next_offset, cluster_id)
VALUES (%(topic)s, %(partition)s, %(next)s, %(cluster)s)
ON CONFLICT (topic, partition) DO UPDATE
    SET next_offset = EXCLUDED.next_offset, cluster_id = EXCLUDED.cluster_id
    WHERE o.next_offset = %(expected)s
RETURNING 1
"""


def move(curs: Cursor[Any], moves: list[OffsetMove]) -> None:
    """Move each partition's offset, or raise `OffsetConflict` if another worker did."""
    for m in moves:
        curs.execute(
            _MOVE_OFFSET,
            {
                "topic": m.topic,
                "partition": m.partition,
                "next": m.next_offset,
                "cluster": m.log_id,
                "expected": m.expected,
            },
        )
        if curs.fetchone() is None:
            raise OffsetConflict(
                f"{m.topic}[{m.partition}] moved past {m.expected}: partition lost"
            )


def read_offsets(
    conn: psycopg.Connection[Any], topic: str, partitions: list[int]
) -> dict[int, StoredOffset]:
    """The stored offsets of these partitions (a partition with no row: next_offset None)."""
    rows = conn.execute(
        "SELECT partition, next_offset, cluster_id FROM ledger_offsets "
        "WHERE topic = %s AND partition = ANY(%s)",
        (topic, partitions),
    ).fetchall()
    conn.commit()
    found = {row[0]: StoredOffset(row[0], row[1], row[2]) for row in rows}
    return {p: found.get(p, StoredOffset(p, None, "")) for p in partitions}


def recorded_offsets(conn: psycopg.Connection[Any], topic: str) -> dict[int, int]:
    """The next offset to read per partition of the inbound topic, as the ledger stored it."""
    rows = conn.execute(
        "SELECT partition, next_offset FROM ledger_offsets WHERE topic = %s", (topic,)
    ).fetchall()
    return {int(partition): int(offset) for partition, offset in rows}
