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

`IngestRecorder` is the library's PostgreSQL application recorder; its `_insert_events(curs,
stored_events, **kwargs)` is the library's documented hook for writing more rows in the
events' transaction (a no-op in the library, there to be overridden), and `save(**kwargs)`
is how an application hands it what to write: the only way through, so the typed write
travels under one keyword, `WRITE`, set and read only here and in `consumers.application`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from domain.aggregates import card_stream, customer_stream
from domain.decision import Claim
from domain.forgetting import ERASED_DIGEST, ERASED_ERROR, names_person
from store import card_holdings, dead_letters, ingest_batches, interaction_index, offsets
from store.dead_letters import DeadLetterRow
from store.interaction_index import IndexRow
from store.keys import destroy_key
from store.offsets import OffsetMove

WRITE = "ledger_write"
"""The keyword under which `save()` hands the recorder its typed write."""


@dataclass
class IngestWrite:
    """Everything a batch writes beside its events."""

    index: list[IndexRow] = field(default_factory=list)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    offsets: list[OffsetMove] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
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


def write_ingest(curs: Cursor[DictRow], write: IngestWrite) -> None:
    """A batch's offsets (compare-and-set first, so a late writer stops at once), its card
    claims (before the events: a claim lost to another worker raises
    `card_holdings.ClaimsLost` before anything else is written), its size in the
    histogram, its index rows and its dead letters."""
    offsets.move(curs, write.offsets)
    card_holdings.claim(curs, write.claims)
    if write.records:
        ingest_batches.count_batch(curs, write.records)
    interaction_index.insert(curs, write.index)
    dead_letters.insert(curs, write.dead_letters)


def write_forget(curs: Cursor[DictRow], write: ForgetWrite) -> None:
    """Index the forgetting, destroy the key, drop the digests (the forgetting's own too),
    and empty every dead letter about the person (`domain.forgetting.names_person`): they
    were kept in the clear, and their reason may quote a field."""
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
    """The library's recorder, plus the typed write in the same transaction.

    It also inserts the events as four binary arrays instead of the library's array of a
    composite type, which psycopg renders as text in Python: that was a fifth of ingest
    time. Same table, same lock, same NOTIFY, same RETURNING of notification ids. (The
    library has no public hook for the insert statement's parameters, so
    `_insert_stored_events` is overridden: the one private override, for speed.)
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
        write = kwargs.get(WRITE)
        if isinstance(write, IngestWrite):
            write_ingest(curs, write)
        elif isinstance(write, ForgetWrite):
            write_forget(curs, write)
        super()._insert_events(curs, stored_events, **kwargs)
