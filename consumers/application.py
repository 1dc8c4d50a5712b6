"""The ledger application: records a batch of inbound Kafka records in one transaction.

One shape, as in the library's examples: get the streams, call the command, save. What
is special is the batch: every record of a poll is decided in memory against the streams
as they stand (the library's aggregate cache, for the single writer of a partition), then
the new events, the interaction index, the dead letters and the partitions' offsets are
written by one `save()` (see `consumers.store.IngestRecorder`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast
from uuid import UUID

import cachetools
from eventsourcing.application import Application, LRUCache
from eventsourcing.persistence import StoredEvent
from psycopg import sql

from consumers.erasure import ERASED_DIGEST
from consumers.records import (
    InboundRecord,
    Unforeseen,
    about_the_forgotten,
    dead_letter,
    event_id_of,
)
from consumers.store import IndexRow, IngestWrite, OffsetMove
from domain.aggregates import LedgerStream, stream_id
from domain.canonical import canonical_bytes
from domain.errors import CustomerForgotten, RuleViolation
from domain.interactions import Interaction, RejectedInteraction, parse_interaction
from domain.recording import record, streams_named
from domain.shredding import seal, sealed_fields
from store.keys import KeyStore

CACHE_MAXSIZE = 100_000
"""Streams kept in memory per worker: bounds memory, so it stays flat over a long run."""


@dataclass
class BatchResult:
    recorded: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def dead_lettered(self) -> int:
        return sum(self.rejected.values())


Parsed = tuple[InboundRecord, Interaction | RejectedInteraction]


@dataclass
class Decision:
    """A decided batch, ready to commit: the streams that gained events and the rows."""

    streams: list[LedgerStream]
    write: IngestWrite
    result: BatchResult


class _Poisoned(Exception):
    """Record `index` of a batch failed unforeseen while it was being recorded."""

    def __init__(self, index: int, rejection: Unforeseen) -> None:
        super().__init__(rejection.reason)
        self.index = index
        self.rejection = rejection


class LedgerApplication(Application[UUID]):
    """The event-sourced ledger: customer, card and partner streams."""

    name = "Ledger"  # events table: ledger_events
    keys: KeyStore | None = None
    """Customers' data keys: personal fields are sealed with them before they are recorded
    (`domain.shredding`). The composition root sets it; None records them in the clear
    (the encryption benchmark's baseline)."""
    _key_cache: cachetools.LRUCache[str, bytes] | None = None

    @staticmethod
    def parse(records: Sequence[InboundRecord]) -> list[Parsed]:
        """Validate each record on its own (pure: no stream, no database). Whatever goes
        wrong with one record is that record's fate, never the batch's."""
        parsed: list[Parsed] = []
        for rec in records:
            try:
                parsed.append((rec, parse_interaction(rec.value or b"")))
            except RejectedInteraction as rejection:
                rejection.event_id = event_id_of(rec.value)
                parsed.append((rec, rejection))
            except Exception as error:  # a bug met by one record: dead-letter it, go on
                parsed.append((rec, Unforeseen.of(error, event_id_of(rec.value))))
        return parsed

    def decide(self, parsed: list[Parsed], offsets: list[OffsetMove]) -> Decision:
        """Decide each parsed record against the streams as they stand, in order.

        The cached streams gain the batch's events in memory; `commit` writes them. On any
        failure until that commit succeeds the cache is dropped, so a retry starts from
        the stored truth.
        """
        try:
            return self._decide(parsed, offsets)
        except BaseException:
            self.reset_cache()
            raise

    def commit(self, decision: Decision) -> BatchResult:
        """Write a decided batch in one transaction.

        Raises `OffsetConflict` when a partition was taken over by another worker, and the
        store's `IntegrityError` when another writer extended a stream first.
        """
        try:
            self.save(*decision.streams, ingest=decision.write)
        except BaseException:
            self.reset_cache()
            raise
        return decision.result

    def _decide(self, parsed: list[Parsed], offsets: list[OffsetMove]) -> Decision:
        """Decide the batch; a record whose command fails unforeseen is dead-lettered
        (`internal`) and the batch decided again from the stored streams without it, since
        the failure may have left its streams half-changed in memory."""
        poisoned: dict[int, Unforeseen] = {}
        while True:
            try:
                return self._decide_once(parsed, offsets, poisoned)
            except _Poisoned as poison:
                self.reset_cache()
                poisoned[poison.index] = poison.rejection

    def _decide_once(
        self, parsed: list[Parsed], offsets: list[OffsetMove], poisoned: dict[int, Unforeseen]
    ) -> Decision:
        parsed = [(rec, poisoned.get(i, item)) for i, (rec, item) in enumerate(parsed)]
        valid = [item for _, item in parsed if isinstance(item, Interaction)]
        keys = self._keys_for(valid)
        seen = self.known_digests(ix.event_id for ix in valid)
        streams: dict[str, LedgerStream | None] = self.load_streams(
            {name for ix in valid for name in streams_named(ix)}
        )
        result = BatchResult()
        write = IngestWrite(offsets=offsets, records=len(parsed))
        touched: dict[UUID, LedgerStream] = {}
        for index, (rec, item) in enumerate(parsed):
            if isinstance(item, RejectedInteraction):
                self._reject(write, result, rec, item.event_id, item.error_type, item.reason)
                continue
            known = seen.get(item.event_id)
            if known is not None:
                # A forgotten customer's digest is gone: what comes again is not recorded.
                if known in (item.digest, ERASED_DIGEST):
                    result.duplicates += 1
                else:
                    reason = f"event_id {item.event_id} was already recorded with other content"
                    self._reject(write, result, rec, item.event_id, "conflict", reason)
                continue
            try:
                gained = record(self._sealed(item, keys), streams)
            except CustomerForgotten as forgotten:
                # Nothing about a forgotten person is kept: not even the message's bytes.
                gone = replace(rec, key=None, value=None, headers=())
                self._reject(write, result, gone, item.event_id, "rule", forgotten.reason)
                continue
            except RuleViolation as violation:
                self._reject(write, result, rec, item.event_id, "rule", violation.reason)
                continue
            except Exception as error:
                raise _Poisoned(index, Unforeseen.of(error, item.event_id)) from error
            for stream in gained:
                streams[stream.stream] = stream
                touched[stream.id] = stream
            home = gained[0]
            write.index.append(
                IndexRow(item.event_id, item.digest, item.type, home.stream, home.id, home.version)
            )
            seen[item.event_id] = item.digest
            result.recorded += 1
        write.dead_letters = about_the_forgotten(write.dead_letters, self.load_streams)
        return Decision(list(touched.values()), write, result)

    def _keys_for(self, valid: list[Interaction]) -> dict[str, bytes | None]:
        """The keys of the customers whose personal data this batch carries: from memory,
        else in one round trip to the key store.

        A key in memory may have been destroyed since (`ledger forget`, in another
        process). It cannot reach the store: a sealed payload is only ever recorded on its
        customer's stream, and the forgetting extended that stream, so the batch fails on
        the stream's version and is decided again from the stored truth."""
        if self.keys is None:
            return {}
        wanted = {
            ix.customer_id for ix in valid if ix.customer_id and sealed_fields(ix.type, ix.payload)
        }
        known = self._known_keys
        found: dict[str, bytes | None] = {c: known[c] for c in wanted if c in known}
        if len(found) < len(wanted):
            fetched = self.keys.keys(wanted - found.keys())
            known.update((c, k) for c, k in fetched.items() if k is not None)
            found |= fetched
        return found

    def _sealed(self, ix: Interaction, keys: dict[str, bytes | None]) -> Interaction:
        """`ix` with its personal fields sealed with its customer's key."""
        if self.keys is None or not ix.customer_id or not sealed_fields(ix.type, ix.payload):
            return ix
        key = keys.get(ix.customer_id)
        if key is None:
            raise CustomerForgotten(f"customer {ix.customer_id!r} was forgotten")
        payload = seal(ix.type, ix.payload, ix.customer_id, key)
        return replace(ix, payload=payload, canonical=canonical_bytes(payload))

    @staticmethod
    def _reject(
        write: IngestWrite,
        result: BatchResult,
        rec: InboundRecord,
        event_id: str | None,
        error_type: str,
        reason: str,
    ) -> None:
        write.dead_letters.append(dead_letter(rec, event_id, error_type, reason))
        result.rejected[error_type] += 1

    def known_digests(self, event_ids: Iterable[str]) -> dict[str, str]:
        """Content digests of the event ids already recorded."""
        ids = list(set(event_ids))
        if not ids:
            return {}
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT event_id, digest FROM ledger_interactions WHERE event_id = ANY(%s)",
                (ids,),
            )
            return {row["event_id"]: row["digest"] for row in curs.fetchall()}

    def load_streams(self, names: set[str]) -> dict[str, LedgerStream | None]:
        """The named streams as they stand: from the cache, else all misses in one query.

        The library's `repository.get()` reads one stream per query (and deep-copies from
        the cache); a batch names hundreds of streams, most of them new, so one
        `originator_id = ANY(...)` query replaces hundreds of round trips.
        """
        cache = self._cache
        found: dict[str, LedgerStream | None] = {}
        missing: dict[UUID, str] = {}
        for name in names:
            sid = stream_id(name)
            try:
                found[name] = cast(LedgerStream, cache.get(sid))
            except KeyError:
                missing[sid] = name
                found[name] = None
        if missing:
            for sid, events in self.select_events(list(missing)).items():
                aggregate: Any = None
                for event in events:
                    aggregate = event.mutate(aggregate)
                cache.put(sid, aggregate)
                found[missing[sid]] = aggregate
        return found

    def select_events(self, ids: list[UUID]) -> dict[UUID, list[Any]]:
        """The stored events of these streams, as domain events, in version order."""
        table = sql.Identifier(self.recorder.events_table_name)  # type: ignore[attr-defined]
        query = sql.SQL(
            "SELECT originator_id, originator_version, topic, state FROM {} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(table)
        events: dict[UUID, list[Any]] = {}
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(query, (ids,))
            for row in curs.fetchall():
                stored = StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                events.setdefault(row["originator_id"], []).append(
                    self.mapper.to_domain_event(stored)
                )
        return events

    @property
    def _datastore(self) -> Any:
        return self.recorder.datastore  # type: ignore[attr-defined]

    @property
    def _cache(self) -> LRUCache[UUID, Any]:
        cache = self.repository.cache
        assert isinstance(cache, LRUCache), "set AGGREGATE_CACHE_MAXSIZE"
        return cache

    @property
    def _known_keys(self) -> cachetools.LRUCache[str, bytes]:
        if self._key_cache is None:
            self._key_cache = cachetools.LRUCache(maxsize=CACHE_MAXSIZE)
        return self._key_cache

    def reset_cache(self) -> None:
        """Forget every cached stream and key (after a failed write or a partition
        reassignment)."""
        self.repository.cache = LRUCache(maxsize=CACHE_MAXSIZE)
        self._key_cache = None
