"""What the ingest worker keeps in PostgreSQL beside the events, in the events' transaction.

- `ledger_interactions`: the interaction index (event_id -> content digest and the stream
  position it was recorded at): duplicates and conflicts are decided against it, and
  `GET /interactions/{event_id}` reads it.
- `ledger_dead_letters`: the dead-letter outbox, one row per rejected Kafka record
  (primary key: source log id, topic, partition, offset: a restarted embedded broker, or
  a topic deleted and created again, reuses offsets; see `consumers.offsets`), published
  to the DLQ topic by the relay. Any bytes a Kafka record can carry are kept: key and
  value as `bytea`, headers as `[{"name": hex, "value": hex or null}]` (header names may
  hold NUL or be no UTF-8).
- `ledger_offsets`: the next offset to read per inbound partition, and the log id it
  refers to (column `cluster_id`, named when it held only the cluster's id).

`IngestRecorder` is the library's PostgreSQL application recorder with its documented
hook, `_insert_events(curs, stored_events, **kwargs)`, writing these rows in the same
transaction as the events: no dual write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg.errors
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from psycopg.types.json import Jsonb

from consumers.erasure import Erasure, erase

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS ledger_interactions (
    event_id text PRIMARY KEY,
    digest text NOT NULL,
    type text NOT NULL,
    stream text NOT NULL,
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
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
CREATE TABLE IF NOT EXISTS ledger_offsets (
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    cluster_id text NOT NULL DEFAULT '',
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS ledger_ingest_batches (
    le bigint PRIMARY KEY,
    batches bigint NOT NULL,
    records bigint NOT NULL
);
"""


class OffsetConflict(Exception):
    """The stored offset moved since this worker read it: it lost the partition."""


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


@dataclass(frozen=True)
class IndexRow:
    event_id: str
    digest: str
    type: str
    stream: str
    originator_id: Any
    originator_version: int


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


@dataclass(frozen=True)
class OffsetMove:
    """Compare-and-set of one partition's stored offset (expected None: no row yet)."""

    topic: str
    partition: int
    expected: int | None
    next_offset: int
    log_id: str


@dataclass
class IngestWrite:
    """Everything a batch (or `ledger forget`) writes beside its events."""

    index: list[IndexRow] = field(default_factory=list)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    offsets: list[OffsetMove] = field(default_factory=list)
    records: int = 0  # Kafka records the batch consumed (for the batch-size histogram)
    erasure: Erasure | None = None


BATCH_BUCKETS = (1, 10, 100, 500, 1_000, 2_000, 5_000, 10_000)
"""Upper bounds of the ingest batch-size histogram (`ledger_ingest_batches`)."""
_BEYOND = 2**62  # the +Inf bucket

_COUNT_BATCH = """
INSERT INTO ledger_ingest_batches AS b (le, batches, records) VALUES (%s, 1, %s)
ON CONFLICT (le) DO UPDATE SET batches = b.batches + 1, records = b.records + EXCLUDED.records
"""


_INSERT_INDEX = """
INSERT INTO ledger_interactions
    (event_id, digest, type, stream, originator_id, originator_version)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::uuid[], %b::bigint[])
"""

_INSERT_DEAD_LETTERS = """
INSERT INTO ledger_dead_letters
    (source_log, source_topic, source_partition, source_offset, event_id, error_type,
     error, key, value, headers)
SELECT * FROM unnest(%b::text[], %b::text[], %b::int[], %b::bigint[], %b::text[], %b::text[],
                     %b::text[], %b::bytea[], %b::bytea[], %b::jsonb[])
"""
# No `ON CONFLICT DO NOTHING`: a record is dead-lettered once, in the transaction that moves
# its partition's offset past it, so a second row for one source position is a bug, and
# must fail the batch loudly rather than print a dead letter that was never stored.


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


_MOVE_OFFSET = """
INSERT INTO ledger_offsets AS o (topic, partition, next_offset, cluster_id)
VALUES (%(topic)s, %(partition)s, %(next)s, %(cluster)s)
ON CONFLICT (topic, partition) DO UPDATE
    SET next_offset = EXCLUDED.next_offset, cluster_id = EXCLUDED.cluster_id
    WHERE o.next_offset = %(expected)s
RETURNING 1
"""


def write_ingest(curs: Cursor[DictRow], write: IngestWrite) -> None:
    """Write a batch's offsets (compare-and-set first, so a late writer stops at once),
    index rows, dead letters, and its size in the batch-size histogram (kept in PostgreSQL
    so that `/metrics` of any API process shows every ingest worker's batches)."""
    for move in write.offsets:
        curs.execute(
            _MOVE_OFFSET,
            {
                "topic": move.topic,
                "partition": move.partition,
                "next": move.next_offset,
                "cluster": move.log_id,
                "expected": move.expected,
            },
        )
        if curs.fetchone() is None:
            raise OffsetConflict(
                f"{move.topic}[{move.partition}] moved past {move.expected}: partition lost"
            )
    if write.records:
        bound = next((b for b in BATCH_BUCKETS if write.records <= b), _BEYOND)
        curs.execute(_COUNT_BATCH, (bound, write.records))
    if write.index:
        rows = write.index
        curs.execute(
            _INSERT_INDEX,
            (
                [r.event_id for r in rows],
                [r.digest for r in rows],
                [r.type for r in rows],
                [r.stream for r in rows],
                [r.originator_id for r in rows],
                [r.originator_version for r in rows],
            ),
        )
    if write.erasure is not None:
        erase(curs, write.erasure)
    if write.dead_letters:
        dls = write.dead_letters
        curs.execute(
            _INSERT_DEAD_LETTERS,
            (
                [d.source_log for d in dls],
                [d.source_topic for d in dls],
                [d.source_partition for d in dls],
                [d.source_offset for d in dls],
                [d.event_id for d in dls],
                [d.error_type for d in dls],
                [d.error for d in dls],
                [d.key for d in dls],
                [d.value for d in dls],
                [stored_headers(d.headers) for d in dls],
            ),
        )


class IngestRecorder(PostgresApplicationRecorder):
    """The library's recorder, plus the ingest rows in the same transaction.

    It also inserts the events as four binary arrays instead of the library's array of a
    composite type, which psycopg renders as text in Python: that was a fifth of ingest
    time. Same table, same lock, same NOTIFY, same RETURNING of notification ids.
    """

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self.insert_events_statement,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
        )

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        write: IngestWrite | None = kwargs.get("ingest")
        if write is not None:
            write_ingest(curs, write)
        super()._insert_events(curs, stored_events, **kwargs)
