"""The ledger application: the event store of customer, card and partner streams.

One shape, as in the library's examples: get the streams, decide, save. Getting is the
loader's (`consumers.loader`), deciding the domain's (`domain.decision`); this class holds
the library's repository (its aggregate cache, for the single writer of a partition) and
the one typed way to write: `record(streams, write)`, which commits the streams' new events
and the write (`consumers.store`) in one transaction.

The recorder and the transcoder are wired by class through the library's public
`construct_recorder` and `construct_transcoder` hooks, not by topic strings in the
environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application, LRUCache
from eventsourcing.persistence import ApplicationRecorder, Recording, Transcoder
from eventsourcing.postgres import PostgresFactory

from consumers.store import WRITE, ForgetWrite, IngestRecorder, IngestWrite
from domain.aggregates import LedgerStream
from store import event_store
from store.card_holdings import ClaimsLost
from store.event_rows import domain_event
from store.transcoding import OrjsonTranscoder

CACHE_MAXSIZE = 100_000
"""Streams kept in memory per worker: bounds memory, so it stays flat over a long run."""


class LedgerApplication(Application[UUID]):
    """The event-sourced ledger: customer, card and partner streams."""

    name = "Ledger"  # events table: ledger_events

    def construct_transcoder(self) -> Transcoder:
        """orjson (`store.transcoding`): the library's JSON transcoder was an eighth of
        ingest time."""
        return OrjsonTranscoder()

    def construct_recorder(self) -> ApplicationRecorder:
        """`IngestRecorder`, made as the library's PostgreSQL factory makes its own."""
        factory = self.factory
        assert isinstance(factory, PostgresFactory), "the ledger runs on PostgreSQL"
        recorder = IngestRecorder(
            factory.datastore, events_table_name=f"{self.name.lower()}_events"
        )
        if factory.env_create_table():
            recorder.create_table()
        return recorder

    def record(
        self,
        streams: Sequence[LedgerStream],
        write: IngestWrite | ForgetWrite,
        events: Sequence[Any] = (),
    ) -> list[Recording[UUID]]:
        """Commit the streams' new events and `write` in one transaction. `events`: the
        streams' new events when the caller collected them already (ingest keeps them, to
        commit them again after a lost card claim); the streams are then only cached.

        Raises `store.offsets.OffsetConflict` when a partition was taken over by another
        worker, the library's `IntegrityError` when another writer extended a stream
        first (the cache is dropped: a retry starts from the stored truth), and
        `store.card_holdings.ClaimsLost` when another worker held a card first (the cache
        is kept: the caller evicts the streams involved).
        """
        try:
            return self.save(*streams, *events, **{WRITE: write})
        except ClaimsLost:
            raise
        except BaseException:
            self.reset_cache()
            raise

    def select_events(self, ids: list[UUID]) -> dict[UUID, list[Any]]:
        """The stored events of these streams, as domain events, in version order: one
        `originator_id = ANY(...)` query, where the library's `repository.get()` reads one
        stream per query."""
        events: dict[UUID, list[Any]] = {}
        with self.datastore.transaction(commit=False) as curs:
            for row in event_store.of_streams_in_order(curs, ids):
                events.setdefault(row.originator_id, []).append(domain_event(self.mapper, row))
        return events

    @property
    def datastore(self) -> Any:
        """The library's PostgreSQL datastore (its connection pool)."""
        return self.recorder.datastore  # type: ignore[attr-defined]

    @property
    def cache(self) -> LRUCache[UUID, Any]:
        """The repository's aggregate cache: the streams as this worker last saw them."""
        cache = self.repository.cache
        assert isinstance(cache, LRUCache), "set AGGREGATE_CACHE_MAXSIZE"
        return cache

    def reset_cache(self) -> None:
        """Forget every cached stream (after a failed write or a partition reassignment)."""
        self.repository.cache = LRUCache(maxsize=CACHE_MAXSIZE)
