"""The ingest worker: Kafka's inbound topic into the ledger, one transaction per poll.

An entry point: the Kafka loop around the ingest use case (`services.ingest`). A record's
way: worker (poll) → loader → decide → store (one transaction) → relay (its dead letters).

Responsibilities:
- join the consumer group `{prefix}-ingest`; Kafka spreads the partitions over the workers;
- on every assignment, seek to the offsets stored in PostgreSQL and drop cached streams
  (the rebalance listener only flags it: kafka-python 3 runs listeners on its IO thread,
  where blocking calls such as `end_offsets` are refused);
- per poll, parse the records (while the previous poll's transaction commits on a second
  thread), then decide them and commit events, index, dead letters and the compare-and-set
  offsets in one transaction;
- after the commit, publish the batch's dead letters (the relay) and hint Kafka's
  committed offsets (only a hint: PostgreSQL decides where a worker resumes);
- a lost partition (offset compare-and-set failed) or a stream extended by another worker
  (integrity error): roll back, re-seek to the stored offsets, go on;
- stop cleanly on request (SIGTERM) between polls; `until_idle` returns once every
  partition's stored offset reached the topic's end;
- notice a stall: owning no partition while records wait and no worker records any
  (a consumer group stuck on its broker) is said in one line, and ends `until_idle`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from eventsourcing.persistence import IntegrityError
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from consumers.log_ids import check_within, resume_at
from consumers.records import inbound_record
from consumers.relay import DeadLetterRelay
from ledger.collector import collecting_less
from ledger.stall import Progress, StallWatch
from services.ingest import BatchResult, Ingest
from store.dead_letters import refuse_dead_letter_collision
from store.offsets import OffsetConflict, OffsetMove, StoredOffset, read_offsets

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 20


@dataclass
class IngestStats:
    batches: int = 0
    recorded: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    retries: int = 0  # batches rolled back and read again from the stored offsets
    stream_conflicts: int = 0  # of which: another writer had extended one of its streams
    redecided: int = 0  # records decided again after a card claim lost to another worker
    first_poll_at: float | None = None  # time.perf_counter() of the first poll with records
    last_commit_at: float | None = None  # time.perf_counter() of the last committed batch


class IngestStalled(Exception):
    """The worker owns no partition while records wait and nobody records them."""


class IngestWorker:
    def __init__(
        self,
        ingest: Ingest,
        consumer: KafkaConsumer,
        relay: DeadLetterRelay,
        database_url: str,
        topic: str,
        log_id: str,
        max_records: int = 5000,
        stall_after: float = 30.0,
    ) -> None:
        self._ingest = ingest
        self._consumer = consumer
        self._relay = relay
        self._conn = psycopg.connect(database_url)
        self._topic = topic
        self._group = consumer.config.get("group_id")
        self._log_id = log_id  # `consumers.log_ids`: cluster and topic incarnation
        self._max_records = max_records
        self._expected: dict[int, int | None] = {}
        self._assignments: queue.SimpleQueue[list[TopicPartition]] = queue.SimpleQueue()
        self._joined = False  # idle only counts once the group gave this worker its share
        self._unverified: dict[TopicPartition, int] = {}  # resumed offsets to check
        self._in_flight: tuple[Future[BatchResult], list[OffsetMove]] | None = None
        self._failures = 0  # consecutive failed commits
        self._stall = StallWatch(stall_after, self._progress)
        self.stats = IngestStats()

    def run(self, stop: threading.Event, *, until_idle: bool = False) -> IngestStats:
        with collecting_less():
            return self._run(stop, until_idle)

    def _run(self, stop: threading.Event, until_idle: bool) -> IngestStats:
        self._consumer.subscribe([self._topic], listener=_Rebalance(self))
        self._relay.publish_pending()  # what a crashed worker left behind
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="ledger-commit") as committer:
                while not stop.is_set():
                    polled = self._consumer.poll(timeout_ms=500, max_records=self._max_records)
                    assigned = self._latest_assignment()
                    if assigned is not None:
                        # Records fetched before the seek come from Kafka's committed
                        # offsets: drop them and resume where PostgreSQL says.
                        self._settle()
                        self._seek_stored(assigned)
                        self._joined = True
                        continue
                    self._check_resumed_within()
                    self._watch_for_stall(until_idle)
                    if not polled:
                        self._settle()
                        if until_idle and self._idle():
                            self._relay.publish_pending()
                            return self.stats
                        continue
                    if self.stats.first_poll_at is None:
                        self.stats.first_poll_at = time.perf_counter()
                    records = [
                        inbound_record(self._log_id, m)
                        for messages in polled.values()
                        for m in messages
                    ]
                    parsed = self._ingest.parse(records)  # overlaps the previous batch's commit
                    if not self._settle():
                        continue  # that commit failed: this poll was dropped by the re-seek
                    moves = self._moves(polled)
                    decision = self._ingest.decide(parsed, moves)
                    self._in_flight = (committer.submit(self._ingest.commit, decision), moves)
                self._settle()
            return self.stats
        finally:
            self._consumer.close(autocommit=False)
            self._relay.close()
            self._conn.close()

    def _moves(self, polled: dict[TopicPartition, list[Any]]) -> list[OffsetMove]:
        """Each polled partition's offset compare-and-set: from the stored value to past
        its last record."""
        return [
            OffsetMove(
                self._topic,
                tp.partition,
                self._expected.get(tp.partition),
                messages[-1].offset + 1,
                self._log_id,
            )
            for tp, messages in polled.items()
            if messages
        ]

    def _settle(self) -> bool:
        """Wait for the batch being committed, if any; False if its commit failed, in which
        case every partition was re-seeked to its stored offset."""
        if self._in_flight is None:
            return True
        future, moves = self._in_flight
        self._in_flight = None
        try:
            result = future.result()
        except (OffsetConflict, IntegrityError) as lost:
            refuse_dead_letter_collision(lost)
            self._failures += 1
            self.stats.retries += 1
            self.stats.stream_conflicts += isinstance(lost, IntegrityError)
            if self._failures > MAX_CONSECUTIVE_FAILURES:
                raise
            log.info("batch not recorded (%s); resuming from stored offsets", lost)
            self._seek_stored(list(self._consumer.assignment()))
            return False
        self._failures = 0
        self._after_commit(result, moves)
        return True

    def _after_commit(self, result: BatchResult, moves: list[OffsetMove]) -> None:
        for move in moves:
            self._expected[move.partition] = move.next_offset
        self.stats.batches += 1
        self.stats.recorded += result.recorded
        self.stats.duplicates += result.duplicates
        self.stats.redecided += result.redecided
        self.stats.rejected.update(result.rejected)
        self.stats.last_commit_at = time.perf_counter()
        self._consumer.commit_async(
            {
                TopicPartition(self._topic, m.partition): OffsetAndMetadata(m.next_offset, "", -1)
                for m in moves
            }
        )
        if result.dead_lettered:
            self._relay.publish_pending()

    def _seek_stored(self, assigned: list[TopicPartition]) -> None:
        """Seek each assigned partition to where PostgreSQL says to resume."""
        self._ingest.reset()
        if not assigned:
            return
        stored: dict[int, StoredOffset] = read_offsets(
            self._conn, self._topic, [tp.partition for tp in assigned]
        )
        self._unverified.clear()
        for tp in assigned:
            offset = resume_at(stored[tp.partition], self._log_id)
            self._expected[tp.partition] = stored[tp.partition].next_offset
            self._consumer.seek(tp, offset)
            if offset > 0:
                self._unverified[tp] = offset

    def _check_resumed_within(self) -> None:
        """Once a fetch reported a resumed partition's end, check the resume point."""
        assigned = self._consumer.assignment()
        for tp, offset in list(self._unverified.items()):
            if tp not in assigned:
                del self._unverified[tp]
                continue
            high_watermark = self._consumer.highwater(tp)
            if high_watermark is not None:
                check_within(self._topic, tp.partition, offset, high_watermark)
                del self._unverified[tp]

    def _watch_for_stall(self, until_idle: bool) -> None:
        """Say so, once, when this worker owns no partition while records wait and no
        worker records any; with `until_idle`, stop there (it would wait for ever)."""
        stalled = self._stall.check(bool(self._consumer.assignment()))
        if stalled is None:
            return
        line = (
            f"ingest stalled: this worker has owned no partition of {self._topic} for "
            f"{stalled.seconds:.0f} s while records wait (at least {stalled.waiting:,}) and no "
            f"worker recorded any; the consumer group {self._group} is stuck on its broker "
            "(see the README, 'A stuck consumer group')"
        )
        if until_idle:
            raise IngestStalled(line)
        log.warning("%s", line)

    def _progress(self) -> Progress:
        """Records on the inbound topic past the stored offsets (in this log), and
        those offsets."""
        partitions = sorted(self._consumer.partitions_for_topic(self._topic) or ())
        if not partitions:
            return 0, ()
        tps = [TopicPartition(self._topic, p) for p in partitions]
        ends = self._consumer.end_offsets(tps)
        stored = read_offsets(self._conn, self._topic, partitions)
        done = [resume_at(stored[p], self._log_id) for p in partitions]
        waiting = sum(max(ends[tp] - d, 0) for tp, d in zip(tps, done, strict=True))
        return waiting, tuple(done)

    def _idle(self) -> bool:
        """True once every partition's stored offset (in this log) reached its end."""
        partitions = sorted(self._consumer.partitions_for_topic(self._topic) or ())
        if not partitions:
            return False
        if not self._joined or self._unverified:
            return False
        tps = [TopicPartition(self._topic, p) for p in partitions]
        ends = self._consumer.end_offsets(tps)
        assigned = self._consumer.assignment()
        stored = read_offsets(self._conn, self._topic, partitions)
        for tp in tps:
            # Tansu answers ListOffsets with the last batch's base offset + 1; the high
            # watermark of our own fetches is exact, so take the larger of the two.
            own = self._consumer.highwater(tp) if tp in assigned else None
            end = max(ends[tp], own or 0)
            if resume_at(stored[tp.partition], self._log_id) < end:
                return False
        return True

    def _latest_assignment(self) -> list[TopicPartition] | None:
        """The newest assignment handed over by the listener since the last look, if any."""
        latest = None
        while not self._assignments.empty():
            latest = self._assignments.get()
        return latest

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        """Runs on the client's IO thread, where blocking calls are refused: hand over only."""
        self._assignments.put(list(assigned))

    def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing to do: a batch of a revoked partition fails its offset compare-and-set."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: IngestWorker) -> None:
        self._worker = worker

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._worker.on_revoked(revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._worker.on_assigned(assigned)
