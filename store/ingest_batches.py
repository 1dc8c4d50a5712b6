"""The ingest batch-size histogram, `ledger_ingest_batches`: its one owner.

Kept in PostgreSQL, written in each batch's transaction, so that `/metrics` of any API
process shows every ingest worker's batches.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection, Cursor

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS ledger_ingest_batches (
    le bigint PRIMARY KEY,
    batches bigint NOT NULL,
    records bigint NOT NULL
);
"""

BATCH_BUCKETS = (1, 10, 100, 500, 1_000, 2_000, 5_000, 10_000)
"""Upper bounds of the histogram's buckets."""
_BEYOND = 2**62  # the +Inf bucket

_COUNT_BATCH = """
INSERT INTO ledger_ingest_batches AS b (le, batches, records) VALUES (%s, 1, %s)
ON CONFLICT (le) DO UPDATE SET batches = b.batches + 1, records = b.records + EXCLUDED.records
"""


def count_batch(curs: Cursor[Any], records: int) -> None:
    """Count one batch of `records` Kafka records in its bucket."""
    bound = next((b for b in BATCH_BUCKETS if records <= b), _BEYOND)
    curs.execute(_COUNT_BATCH, (bound, records))


def batch_sizes(conn: Connection[Any]) -> list[tuple[int, int, int]]:
    """The histogram: (upper bound, batches, records) per bucket."""
    rows = conn.execute(
        "SELECT le, batches, records FROM ledger_ingest_batches ORDER BY le"
    ).fetchall()
    return [(int(le), int(batches), int(records)) for le, batches, records in rows]
