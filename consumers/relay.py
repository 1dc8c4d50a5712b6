"""The dead-letter relay: outbox rows to `{prefix}.interactions.dlq`, each exactly once.

A rejection is written to `ledger_dead_letters` in its batch's transaction. The relay
publishes unpublished rows after the commit and then marks them. A crash between the
publish and the mark would publish again, so before publishing a row that was already
attempted once (`attempts` > 0), the relay reads the dead-letter topic and skips the rows
already there (by their `source_*` headers). A session advisory lock lets only one relay
publish at a time, and is released by PostgreSQL if its holder dies. The claim, send and
mark are the one outbox relay's (`store.outbox_relay`), the claim's and the mark's SQL the
table owner's (`store.dead_letters`); this module holds what a dead letter looks like on
its topic.

What the dead-letter topic cannot take is left out of the published record and named in
its `omitted` header, and stays whole in `ledger_dead_letters` (see `dlq_record`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import InvalidRecordError, MessageSizeTooLargeError, RecordListTooLargeError

from store import dead_letters
from store.dead_letters import Header, headers_of
from store.locks import Lock
from store.outbox_relay import OutboxRecord, OutboxRelay

_CHUNK = 2_000

DLQ_MAX_BYTES = 1_000_000
"""The most key, value and header bytes one dead-letter record carries: under Kafka's
default limits (the producer's `max.request.size`, 1 MiB, and a topic's
`max.message.bytes`, 1 MB), with room for the record's own framing."""

SourceId = tuple[str, str, int, int]  # log id, topic, partition, offset

REFUSED = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidRecordError)
"""What the client or the broker answers about one record's size or content (a topic's
`max.message.bytes` may be set lower than Kafka's default): that dead letter goes bare."""


def bare(record: DeadLetterRecord, refused: Exception) -> DeadLetterRecord:
    """Only the ledger's own headers, with `omitted` saying why: a dead letter that Kafka
    refused must still reach the topic once, or the relay would stop on it for ever."""
    ours = [(n, v) for n, v in record.ours if n != "omitted"]
    reason = type(refused).__name__
    note = (
        f"the key, the value and the original headers (Kafka refused the record: {reason}): "
        "kept whole in the ledger's database (ledger_dead_letters)"
    )
    return DeadLetterRecord(None, b"", [], [*ours, ("omitted", note.encode())])


@dataclass(frozen=True)
class DeadLetterRecord:
    """A dead letter as it goes to the dead-letter topic."""

    key: bytes | None
    value: bytes | None
    original: list[tuple[str, bytes]]  # the rejected record's own headers
    ours: list[tuple[str, bytes]]  # `error`, `error_type`, `source_*`, `omitted`

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        return self.original + self.ours


_RECORD_FRAMING = 128  # a record's and its batch's own fields
_HEADER_FRAMING = 10  # a header's name and value lengths (two varints)
_NOTE_ROOM = 1_024  # the `omitted` header: at most 5 headers named, 60 characters each


def dlq_record(
    source: SourceId,
    error_type: str,
    error: str,
    key: bytes | None,
    value: bytes | None,
    headers: list[Header],
) -> DeadLetterRecord:
    """The record publishing one dead letter: the original key, bytes and headers, then
    the contract's `error`, `error_type` and `source_*` headers, and `source_log`.

    What the topic or the client cannot carry is left out and named, in one line, by an
    `omitted` header: a header whose name is not UTF-8 or whose value is null (kafka-python
    can send neither), then the value, the original headers and the key, in that order,
    while the record (framing and the `omitted` header counted) is over `DLQ_MAX_BYTES`.
    """
    log, topic, partition, offset = source
    unsendable: list[str] = []
    kept: list[tuple[str, bytes]] = []
    for name, header_value in headers:
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            unsendable.append(f"header {_short(name)} (its name is not UTF-8)")
            continue
        if header_value is None:
            unsendable.append(f"header {_short(text)} (its value is null)")
            continue
        kept.append((text, header_value))
    omitted = unsendable[:5]
    if len(unsendable) > 5:
        omitted.append(f"{len(unsendable) - 5:,} more such header(s)")
    ours: list[tuple[str, bytes]] = [
        ("error", error.encode()),
        ("error_type", error_type.encode()),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
        ("source_log", log.encode()),
    ]

    def size() -> int:
        """Bytes on the wire, as an upper bound: each header's two lengths (varints) and
        the record's own framing counted, and room for the `omitted` header."""
        pairs = kept + ours
        framing = _RECORD_FRAMING + _HEADER_FRAMING * (len(pairs) + 1) + _NOTE_ROOM
        body = len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in pairs)
        return framing + body

    if size() > DLQ_MAX_BYTES and value:
        omitted.append(f"the value ({len(value):,} bytes)")
        value = b""
    if size() > DLQ_MAX_BYTES and kept:
        header_bytes = sum(len(n) + len(v) for n, v in kept)
        omitted.append(f"{len(kept):,} header(s) ({header_bytes:,} bytes)")
        kept = []
    if size() > DLQ_MAX_BYTES and key:
        omitted.append(f"the key ({len(key):,} bytes)")
        key = b""
    if omitted:
        note = "; ".join(omitted) + ": kept whole in the ledger's database (ledger_dead_letters)"
        ours.append(("omitted", note.encode()))
    if key is None and value is None:
        # Emptied (a forgotten customer's) or sent with neither: Kafka needs one.
        value = b""
    return DeadLetterRecord(key, value, kept, ours)


def _short(name: str | bytes) -> str:
    """A header name as the `omitted` header names it: its repr, cut at 60 characters."""
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."


def _source_of(headers: dict[str, bytes]) -> SourceId | None:
    """The source a record on the dead-letter topic names, or None for one that names
    none readably (another writer's): records published before dead letters named their
    log have the log '' like their rows."""
    try:
        return (
            (headers.get("source_log") or b"").decode(),
            headers["source_topic"].decode(),
            int(headers["source_partition"]),
            int(headers["source_offset"]),
        )
    except (KeyError, ValueError):  # a UnicodeDecodeError is a ValueError too
        return None


class DeadLetterOutbox:
    """`ledger_dead_letters` as an outbox: claimed oldest first (`attempts` counted), each
    row sent once (what a crashed relay already sent is looked up on the topic), marked
    published; a record Kafka refuses goes bare."""

    lock = Lock.DEAD_LETTER_RELAY
    refused = REFUSED

    def __init__(self, bootstrap: str, source_topic: str, dlq_topic: str) -> None:
        self._bootstrap = bootstrap
        self._source_topic = source_topic
        self._dlq_topic = dlq_topic

    def claim(self, conn: psycopg.Connection[Any]) -> list[Any]:
        return dead_letters.claim(conn, self._source_topic, _CHUNK)

    def records(self, rows: list[Any]) -> list[OutboxRecord]:
        already = self._already_published() if any(row[9] > 1 for row in rows) else set()
        records: list[OutboxRecord] = []
        for log, topic, partition, offset, error_type, error, key, value, headers, _ in rows:
            source = (log, topic, partition, offset)
            if source in already:
                continue
            records.append(
                dlq_record(
                    source,
                    error_type,
                    error,
                    None if key is None else bytes(key),
                    None if value is None else bytes(value),
                    headers_of(headers),
                )
            )
        return records

    def instead(self, record: OutboxRecord, refusal: Exception) -> OutboxRecord:
        assert isinstance(record, DeadLetterRecord)
        return bare(record, refusal)

    def settle(self, conn: psycopg.Connection[Any], rows: list[Any]) -> None:
        dead_letters.mark_published(conn, self._source_topic, [(r[0], r[2], r[3]) for r in rows])

    def _already_published(self) -> set[SourceId]:
        """The source ids already on the dead-letter topic (read to its current end).

        Only needed after a crash mid-publish, so a full read is acceptable here.
        """
        consumer = KafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
        )
        try:
            partitions = consumer.partitions_for_topic(self._dlq_topic) or set()
            tps = [TopicPartition(self._dlq_topic, p) for p in partitions]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            remaining = {tp for tp in tps if ends[tp] > 0}
            found: set[SourceId] = set()
            deadline = time.monotonic() + 120
            while remaining:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {self._dlq_topic} to its end in 120 s")
                for tp, records in consumer.poll(timeout_ms=1000).items():
                    for rec in records:
                        source = _source_of(dict(rec.headers))
                        if source is not None:
                            found.add(source)
                    if consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
            return found
        finally:
            consumer.close()


class DeadLetterRelay(OutboxRelay[Any]):
    """The dead-letter outbox published by the one relay (`store.outbox_relay`)."""

    def __init__(
        self,
        database_url: str,
        producer: KafkaProducer,
        bootstrap: str,
        source_topic: str,
        dlq_topic: str,
    ) -> None:
        outbox = DeadLetterOutbox(bootstrap, source_topic, dlq_topic)
        super().__init__(database_url, producer, dlq_topic, outbox)
