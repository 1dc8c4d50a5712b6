"""Reading the inbound partitions' stored offsets, and deciding where to resume.

Where a worker resumes is decided by PostgreSQL, never by Kafka's committed offsets: the
stored offset moved in the same transaction as the events it produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class StoredOffset:
    partition: int
    next_offset: int | None  # as stored (None: no row yet): the compare-and-set's expected value
    cluster_id: str


class OffsetBeyondEnd(Exception):
    """A stored offset lies past the end of its partition on the same cluster."""


def read_offsets(
    conn: psycopg.Connection[Any], topic: str, partitions: list[int]
) -> dict[int, StoredOffset]:
    rows = conn.execute(
        "SELECT partition, next_offset, cluster_id FROM ledger_offsets "
        "WHERE topic = %s AND partition = ANY(%s)",
        (topic, partitions),
    ).fetchall()
    conn.commit()
    found = {row[0]: StoredOffset(row[0], row[1], row[2]) for row in rows}
    return {p: found.get(p, StoredOffset(p, None, "")) for p in partitions}


def resume_at(stored: StoredOffset, cluster_id: str, end_offset: int, topic: str) -> int:
    """Where to read next. An offset stored against another cluster (a restarted embedded
    broker, whose topics start empty) restarts at 0; one past the end of the same
    cluster's partition is refused with a readable reason rather than waited on."""
    if stored.next_offset is None or stored.cluster_id != cluster_id:
        return 0
    if stored.next_offset > end_offset:
        raise OffsetBeyondEnd(
            f"the ledger has read {topic}[{stored.partition}] up to offset {stored.next_offset}, "
            f"but the partition ends at {end_offset}: the topic was deleted or truncated; "
            "point LEDGER_KAFKA_BOOTSTRAP at the original cluster or reset ledger_offsets"
        )
    return stored.next_offset
