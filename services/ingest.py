"""Ingest a batch: parse → load → decide → store. The relay publishes the dead letters
after the commit (the worker calls it: `ledger.ingest_worker`).

Each record of a poll is parsed on its own (`parse`, pure: the worker overlaps it with the
previous batch's commit), then the batch is decided in memory against what one loader
fetched (`decide`: `consumers.loader`, then the pure `domain.decision.decide`), then the
new events, the index rows, the dead letters and the partitions' offsets are written in one
transaction (`commit`). On any failure before that commit succeeds the caches are dropped,
so a retry starts from the stored truth, but one: a card claim lost to another worker
(two customers enrolling one card in the same moment), or a merge lost to another worker,
decides again only the records it involves, evicting only their streams, and commits the
rest as decided (`domain.decision.involved`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from consumers.application import LedgerApplication
from consumers.loader import BatchLoader
from consumers.records import InboundRecord, about_the_forgotten, dead_letter, parse_records
from consumers.store import IngestWrite
from domain import decision
from domain.aggregates import LedgerStream, stream_id
from domain.decision import Loaded, Parsed, Poisoned
from store.card_holdings import ClaimsLost
from store.dead_letters import DeadLetterRow
from store.merges import MergesLost
from store.offsets import OffsetMove
from store.transcoding import StoredRow

Batch = list[tuple[InboundRecord, Parsed]]


@dataclass
class BatchResult:
    recorded: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    redecided: int = 0  # records decided again after lost card claims

    @property
    def dead_lettered(self) -> int:
        return sum(self.rejected.values())


@dataclass
class Decided:
    """A decided batch, ready to commit: the streams that gained events, their new events
    as rows (taken, so that they can be committed again), the other rows, and how it was
    decided."""

    streams: list[LedgerStream]
    rows: list[StoredRow]
    write: IngestWrite
    result: BatchResult
    batch: Batch
    made: decision.Decision
    loaded: Loaded


class Ingest:
    """The ingest use case over its ports: the event store and the batch loader."""

    def __init__(self, app: LedgerApplication, loader: BatchLoader) -> None:
        self._app = app
        self._loader = loader

    @staticmethod
    def parse(records: Sequence[InboundRecord]) -> Batch:
        return parse_records(records)

    def decide(self, batch: Batch, offsets: list[OffsetMove]) -> Decided:
        """Decide the batch. A record whose command fails unforeseen is dead-lettered
        (`internal`) and the batch decided again from the stored streams without it, since
        the failure may have left its streams half-changed in memory."""
        try:
            while True:
                try:
                    return self._decide_once(batch, offsets)
                except Poisoned as poison:
                    self._loader.reset()
                    batch = [
                        (rec, poison.rejection if i == poison.index else item)
                        for i, (rec, item) in enumerate(batch)
                    ]
        except BaseException:
            self._loader.reset()
            raise

    def commit(self, decided: Decided) -> BatchResult:
        """Write a decided batch in one transaction (see `LedgerApplication.record`); when
        card claims were lost, decide again the records they involve and write again."""
        redecided = 0
        try:
            while True:
                try:
                    self._app.record(decided.streams, decided.write, decided.rows)
                except (ClaimsLost, MergesLost) as lost:
                    decided = self._again(decided, lost)
                    redecided += decided.result.redecided
                    continue
                decided.result.redecided = redecided
                return decided.result
        except BaseException:
            self._loader.reset()
            raise

    def reset(self) -> None:
        """Drop the cached streams and keys (a partition reassignment, a failed commit)."""
        self._loader.reset()

    def _decide_once(self, batch: Batch, offsets: list[OffsetMove]) -> Decided:
        loaded = self._loader.load(batch)
        made = decision.decide([item for _, item in batch], loaded)
        return self._decided(batch, offsets, loaded, made, self._app.rows(made.streams))

    def _again(self, decided: Decided, lost: ClaimsLost | MergesLost) -> Decided:
        """`decided` with the records that lost card claims or merges involve decided again
        against the store (their streams evicted and read again, the cards' holders and the
        merges as now)."""
        batch = decided.batch
        items = [item for _, item in batch]
        if isinstance(lost, MergesLost):
            redone, names = decision.involved(items, decided.made, lost_merges=lost.lost)
        else:
            redone, names = decision.involved(items, decided.made, lost.lost.keys())
        self._loader.evict(names)
        sub = [batch[i] for i in redone]
        try:
            loaded = self._loader.load(sub)
            again = decision.decide([item for _, item in sub], loaded)
        except Poisoned:  # rare within rare: decide the whole batch again
            self._loader.reset()
            return self.decide(batch, decided.write.offsets)
        ids = {stream_id(name) for name in names}
        made = decision.merged(decided.made, again, redone, len(items))
        made.streams = [s for s in decided.streams if s.id not in ids] + again.streams
        rows = [row for row in decided.rows if row.originator_id not in ids]
        rows += self._app.rows(again.streams)
        both = replace(decided.loaded, streams=decided.loaded.streams | loaded.streams)
        remade = self._decided(batch, decided.write.offsets, both, made, rows)
        remade.result.redecided = len(redone)
        return remade

    def _decided(
        self,
        batch: Batch,
        offsets: list[OffsetMove],
        loaded: Loaded,
        made: decision.Decision,
        rows: list[StoredRow],
    ) -> Decided:
        result = BatchResult(recorded=len(made.recorded), duplicates=made.duplicates)
        dead: list[DeadLetterRow] = []
        for r in made.rejections:
            rec = batch[r.index][0]
            if r.forgotten:  # nothing about a forgotten person is kept: not even the bytes
                rec = replace(rec, key=None, value=None, headers=())
            dead.append(dead_letter(rec, r.event_id, r.error_type, r.reason))
            result.rejected[r.error_type] += 1
        write = IngestWrite(
            index=made.recorded,
            dead_letters=about_the_forgotten(dead, partial(_known_first, loaded, self._loader)),
            offsets=offsets,
            claims=made.claims,
            retirements=made.retirements,
            merges=made.merges,
            unretired=made.unretired(),
            records=len(batch),
        )
        return Decided(made.streams, rows, write, result, batch, made, loaded)


def _known_first(
    loaded: Loaded, loader: BatchLoader, names: set[str]
) -> dict[str, LedgerStream | None]:
    """The named streams as the decision left them (`loaded`, which it extended), and the
    others from the loader: a rejected message may name streams the batch did not load."""
    known = {name: loaded.streams[name] for name in names & loaded.streams.keys()}
    return known | loader.streams(names - known.keys())
