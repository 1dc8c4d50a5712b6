"""The ledger application: the event store of customer, card and partner streams.

One shape, as in the library's examples: get the streams, decide, save. Getting is the
loader's (`consumers.loader`), deciding the domain's (`domain.decision`); this class holds
the library's repository (its aggregate cache, for the single writer of a partition) and
the one typed way to write: `record(streams, write)`, which commits the streams' new events
and the write (`consumers.store`) in one transaction, past the library's `save()` (see
there why).

The recorder and the transcoder are wired by class through the library's public
`construct_recorder` and `construct_transcoder` hooks, not by topic strings in the
environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple
from typing import Any, overload
from uuid import UUID

from eventsourcing.application import Application, LRUCache
from eventsourcing.persistence import (
    ApplicationRecorder,
    Mapper,
    Notification,
    Recording,
    Transcoder,
)
from eventsourcing.postgres import PostgresFactory

from consumers.store import ForgetWrite, IngestRecorder, IngestWrite
from domain.aggregates import LedgerStream
from store import event_store
from store.card_holdings import ClaimsLost
from store.event_rows import domain_event
from store.transcoding import OrjsonTranscoder, StoredRow, stored_row

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
        rows: Sequence[StoredRow] | None = None,
    ) -> Sequence[Recording[UUID]]:
        """Commit the streams' new events and `write` in one transaction; the recordings
        (built when read: ingest reads none, `ledger forget` one). `rows`: the streams' new
        events as rows (`rows()`), when the caller took them already (ingest keeps them, to
        commit them again after a lost card claim).

        The library's `save()` is bypassed here, for speed: it would build an event object
        per new event, check each aggregate against runtime protocols, map the events to
        `StoredEvent`s and build a `Recording` per event (~20-40 us per interaction in all).
        The streams hold their new events' attributes (`LedgerStream.take_unsaved`), which
        become the rows the mapper would make (`store.transcoding.stored_row`), written by
        the recorder (`IngestRecorder.record_rows`). What else `save()` does is not used by
        the ledger (snapshots are off, `notify` and `_notify` are the library's no-ops)
        or done here: the saved streams go into the aggregate cache (fast-forward is off).

        Raises `store.offsets.OffsetConflict` when a partition was taken over by another
        worker, the library's `IntegrityError` when another writer extended a stream
        first (the cache is dropped: a retry starts from the stored truth), and
        `store.card_holdings.ClaimsLost` when another worker held a card first (the cache
        is kept: the caller evicts the streams involved).
        """
        try:
            if rows is None:
                rows = self.rows(streams)
            assert isinstance(self.recorder, IngestRecorder)
            ids = self.recorder.record_rows(rows, write)
        except ClaimsLost:
            raise
        except BaseException:
            self.reset_cache()
            raise
        cache = self.repository.cache
        if cache is not None and not self.repository.fastforward:  # as `save()` does
            for stream in streams:
                cache.put(stream.id, stream)
        return _Recordings(self.mapper, list(rows), ids)

    def rows(self, streams: Sequence[LedgerStream]) -> list[StoredRow]:
        """The rows of the streams' new events (taken: the streams keep none)."""
        return [row for stream in streams for row in self._rows(stream)]

    def _rows(self, stream: LedgerStream) -> list[StoredRow]:
        """The rows of the stream's new events, in version order."""
        if not stream.pending_events:
            return [stored_row(self.mapper, unsaved) for unsaved in stream.take_unsaved()]
        # An event triggered the library's way (`trigger_event`; the ledger's own commands
        # do not): the library's mapper writes them all, so none is left behind.
        events = sorted(stream.collect_events(), key=lambda e: e.originator_version)
        return [StoredRow(*astuple(self.mapper.to_stored_event(e))) for e in events]

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


class _Recordings(Sequence[Recording[UUID]]):
    """The library's recordings of rows just written, each built when it is read."""

    def __init__(self, mapper: Mapper[UUID], rows: list[StoredRow], ids: list[int]) -> None:
        self._mapper = mapper
        self._rows = rows
        self._ids = ids

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Recording[UUID]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Recording[UUID]]: ...
    def __getitem__(self, index: int | slice) -> Recording[UUID] | Sequence[Recording[UUID]]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        row = self._rows[index]
        notification = Notification(
            id=self._ids[index],
            originator_id=row.originator_id,
            originator_version=row.originator_version,
            topic=row.topic,
            state=row.state,
        )
        return Recording(self._mapper.to_domain_event(notification), notification)
