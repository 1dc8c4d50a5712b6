"""Inbound Kafka records: parsed one by one, and the dead-letter rows made of the ones the
ledger rejects."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from consumers.kafka_headers import raw_name
from domain.aggregates import Card, Customer, LedgerStream, card_stream, customer_stream
from domain.decision import Parsed, Unforeseen
from domain.forgetting import ERASED_ERROR, mentioned_ids
from domain.interactions import RejectedInteraction, parse_interaction
from store.dead_letters import DeadLetterRow, Header


@dataclass(slots=True)
class InboundRecord:
    """One Kafka record, as the ingest worker received it: its place (its log too: a
    restarted broker or a topic created again reuses offsets) and its bytes, header names
    included. Never changed once made (`dataclasses.replace` makes another); not declared
    frozen for speed: a frozen dataclass's `__init__` cost ~1 us more per record."""

    log: str  # the inbound topic's log id: `{cluster id}/{topic id}` (see `consumers.log_ids`)
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[Header] = ()


def parse_records(records: Sequence[InboundRecord]) -> list[tuple[InboundRecord, Parsed]]:
    """Validate each record on its own (pure: no stream, no database). Whatever goes
    wrong with one record is that record's fate, never the batch's."""
    parsed: list[tuple[InboundRecord, Parsed]] = []
    for rec in records:
        try:
            parsed.append((rec, parse_interaction(rec.value or b"")))
        except RejectedInteraction as rejection:
            rejection.event_id = event_id_of(rec.value)
            parsed.append((rec, rejection))
        except Exception as error:  # a bug met by one record: dead-letter it, go on
            parsed.append((rec, Unforeseen.of(error, event_id_of(rec.value))))
    return parsed


def inbound_record(log: str, message: Any) -> InboundRecord:
    """A kafka-python `ConsumerRecord` as the ledger keeps it (header names as bytes)."""
    return InboundRecord(
        log,
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        [(raw_name(name), value) for name, value in message.headers] if message.headers else (),
    )


def dead_letter(
    rec: InboundRecord, event_id: str | None, error_type: str, reason: str
) -> DeadLetterRow:
    return DeadLetterRow(
        source_log=rec.log,
        source_topic=rec.topic,
        source_partition=rec.partition,
        source_offset=rec.offset,
        event_id=storable_text(event_id) if event_id is not None else None,
        error_type=error_type,
        error=storable_text(reason),
        key=rec.key,
        value=rec.value,
        headers=list(rec.headers),
    )


def storable_text(text: str) -> str:
    """`text` as PostgreSQL's `text` can hold it: NUL written as `\\x00`, and what is no
    Unicode scalar (a lone surrogate) replaced. A reason may quote any input."""
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "replace").decode("utf-8")


def about_the_forgotten(
    rows: list[DeadLetterRow],
    load: Callable[[set[str]], dict[str, LedgerStream | None]],
) -> list[DeadLetterRow]:
    """The rows, those naming a forgotten customer or card (an invalid message, say)
    emptied of their bytes and of their reason, which may quote a field. `load` gives the
    named streams as they stand."""
    named = {i: mentioned_ids(row.value) for i, row in enumerate(rows) if row.value}
    names = {n for ids in named.values() for n in _streams_of(ids)}
    if not names:
        return rows
    gone = {
        stream.named_id
        for stream in load(names).values()
        if isinstance(stream, Customer | Card) and stream.forgotten
    }
    return [
        replace(row, key=None, value=None, headers=[], error=ERASED_ERROR)
        if named.get(i, set()) & gone
        else row
        for i, row in enumerate(rows)
    ]


def mentioned_streams(value: bytes | None) -> list[str]:
    """The streams a raw message might be about (`domain.forgetting.mentioned_ids`)."""
    return _streams_of(mentioned_ids(value))


def _streams_of(ids: Collection[str]) -> list[str]:
    return [name for i in ids for name in (customer_stream(i), card_stream(i))]


def event_id_of(value: bytes | None) -> str | None:
    """The `event_id` of a rejected message, if it is a JSON object with a string one, so
    that a producer can ask for the fate of what it sent (`GET /interactions/{event_id}`)."""
    try:
        obj = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    event_id = obj.get("event_id") if isinstance(obj, dict) else None
    if not isinstance(event_id, str) or "\x00" in event_id:
        return None  # no id anyone could ask about (the API refuses NUL in an id)
    return event_id[:200]
