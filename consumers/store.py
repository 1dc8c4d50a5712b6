"""The one store adapter's write: a batch's events and, in the same transaction, what the
ledger keeps beside them (no dual write).

Two typed writes ride with the events: `IngestWrite` (a batch: the offsets'
compare-and-set, the cards its enrollments hold, the interaction index, the dead letters,
the batch-size histogram) and
`ForgetWrite` (`ledger forget`: the index row, the key destroyed, the digests erased, the
dead letters about the person emptied). Each table's SQL lives with its owner in `store/`
(`interaction_index`, `dead_letters`, `offsets`, `card_holdings`, `ingest_batches`, `keys`);
this module
only orders the calls. `LedgerApplication.record` is the one typed way in.

`IngestRecorder` is the library's PostgreSQL application recorder with one more method,
`record_rows(rows, write)`: the events as encoded rows and the typed write, in one
transaction (`LedgerApplication.record` is its caller). The library's own `save()` path
still carries a typed write too: its `_insert_events(curs, stored_events, **kwargs)` hook
(a no-op in the library, there to be overridden) reads it under the keyword `WRITE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier, Literal

from domain.aggregates import card_stream, customer_stream
from domain.cards import Retirement
from domain.decision import Claim
from domain.forgetting import ERASED_DIGEST, ERASED_ERROR, names_person
from domain.merges import MergeChange
from store import card_holdings, dead_letters, ingest_batches, interaction_index, merges, offsets
from store.dead_letters import DeadLetterRow
from store.interaction_index import IndexRow
from store.keys import destroy_key
from store.offsets import OffsetMove
from store.transcoding import COPY_COLUMNS, CopyRows, StoredRow

WRITE = "ledger_write"
"""The keyword under which `save()` hands the recorder its typed write."""


@dataclass
class IngestWrite:
    """Everything a batch writes beside its events."""

    index: list[IndexRow] = field(default_factory=list)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    offsets: list[OffsetMove] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    retirements: list[Retirement] = field(default_factory=list)
    merges: list[MergeChange] = field(default_factory=list)
    unretired: set[str] = field(default_factory=set)  # checked once the table lock is held
    records: int = 0  # Kafka records the batch consumed (for the batch-size histogram)


@dataclass(frozen=True)
class ForgetWrite:
    """A forgotten customer: `customer_forgotten` is indexed, its key is destroyed, the
    content digests of its interactions go, and the dead letters about it lose their
    original bytes and reason."""

    index: IndexRow
    customer_id: str
    card_ids: list[str]
    personal: list[str]  # the person's names and e-mails, to find dead letters by
    root: bool = True  # False: a member of a tree forgotten with its root


def write_ingest(curs: Cursor[DictRow], write: IngestWrite) -> None:
    """A batch's offsets (compare-and-set first, so a late writer stops at once), its card
    claims and retirements and its merges (before the events: a claim or a merge lost to
    another worker raises `card_holdings.ClaimsLost` or `merges.MergesLost` before anything
    else is written), its size in the
    histogram, its index rows and its dead letters."""
    offsets.move(curs, write.offsets)
    card_holdings.claim(curs, write.claims)
    card_holdings.retire(curs, write.retirements)
    merges.record(curs, write.merges)
    if write.records:
        ingest_batches.count_batch(curs, write.records)
    interaction_index.insert(curs, write.index)
    dead_letters.insert(curs, write.dead_letters)


def write_forget(curs: Cursor[DictRow], write: ForgetWrite) -> None:
    """Index the forgetting, destroy the key, drop the digests (the forgetting's own too),
    and empty every dead letter about the person (`domain.forgetting.names_person`): they
    were kept in the clear, and their reason may quote a field."""
    merges.hold_for_forget(curs, write.customer_id, as_root=write.root)
    interaction_index.insert(curs, [write.index])
    destroy_key(curs, write.customer_id)
    ids = [write.customer_id, *write.card_ids]
    streams = [customer_stream(write.customer_id), *map(card_stream, write.card_ids)]
    interaction_index.erase_digests(curs, streams, ERASED_DIGEST)

    def about(key: bytes, value: bytes) -> bool:
        return (
            names_person(value, ids, write.personal)
            or key.decode("utf-8", "replace").strip() in ids
        )

    dead_letters.redact(curs, about, ERASED_ERROR)


class IngestRecorder(PostgresApplicationRecorder):
    """The library's recorder, with the ledger's own way to write a batch: `record_rows`.

    The library's `insert_events` takes `StoredEvent`s (made by its mapper from event
    objects) and inserts them with parameters rendered by psycopg inside the table lock;
    on ingest that path cost ~30 us per interaction. `record_rows` takes rows already
    encoded (`store.transcoding.stored_row`, byte for byte the mapper's) and writes them
    with a binary COPY prepared before the lock is taken. What the library's recorder
    guarantees stays: the same `ledger_events` table, the typed write in the same
    transaction, its table lock (so notification ids follow commit order), its NOTIFY,
    its retry on a lost connection, its `IntegrityError` when a stream's version is taken,
    and the notification ids of the rows returned. (The library has no hook for this, so
    the method is the ledger's; the library's `insert_events` keeps working, the typed
    write through its `_insert_events` hook, for anything calling `save()`.)
    """

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        assert datastore.originator_id_type == "uuid", "the ledger's streams are UUIDs"
        table = Identifier(self.datastore.schema, self.events_table_name)
        self.copy_statement = SQL("COPY {table} ({columns}) FROM STDIN (FORMAT binary)").format(
            table=table, columns=SQL(", ").join(map(Identifier, COPY_COLUMNS))
        )
        # The rows' notification ids, taken from the column's sequence at once while the
        # table lock is held: the last of `n` values. A writer taking values without the
        # lock would meet the unique index on notification_id, never a silent overlap.
        self.reserve_ids_statement = SQL(
            "SELECT setval(seq, nextval(seq) + %s - 1) AS last FROM "
            "(SELECT pg_get_serial_sequence({table}, 'notification_id')::regclass AS seq) AS s"
        ).format(table=Literal(_qualified(self.datastore.schema, self.events_table_name)))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def record_rows(self, rows: Sequence[StoredRow], write: IngestWrite | ForgetWrite) -> list[int]:
        """Write `rows` and `write` in one transaction; the rows' notification ids."""
        copy_rows = CopyRows(rows)
        error: Exception | None = None
        last = 0
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            with conn.pipeline():
                try:
                    _write(curs, write)
                    if copy_rows:
                        self._lock_table(curs)
                        if isinstance(write, IngestWrite):
                            card_holdings.check_not_retired(curs, write.unretired)
                        self._notify_channel(curs)
                        curs.execute(self.reserve_ids_statement, (len(copy_rows),), prepare=True)
                        fetched = curs.fetchone()
                        assert fetched is not None
                        last = fetched["last"]
                except Exception as e:  # raised once out of the pipeline (psycopg warns)
                    error = e
            if error is not None:
                raise error
            if copy_rows:
                with curs.copy(self.copy_statement) as copy:
                    copy.write(copy_rows.with_ids(last - len(copy_rows) + 1))
        return list(range(last - len(copy_rows) + 1, last + 1))

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        write = kwargs.get(WRITE)
        if write is not None:
            _write(curs, write)
        super()._insert_events(curs, stored_events, **kwargs)


def _write(curs: Cursor[DictRow], write: IngestWrite | ForgetWrite) -> None:
    if isinstance(write, IngestWrite):
        write_ingest(curs, write)
    else:
        write_forget(curs, write)


def _qualified(schema: str, table: str) -> str:
    """`schema.table` as PostgreSQL parses a qualified name (each part quoted)."""
    return ".".join('"' + name.replace('"', '""') + '"' for name in (schema, table))
