"""Inbound Kafka records, and the dead-letter rows made of the ones the ledger rejects."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from consumers.erasure import ERASED_ERROR
from consumers.kafka_headers import raw_name
from consumers.store import DeadLetterRow, Header
from domain.aggregates import Card, Customer, LedgerStream, card_stream, customer_stream
from domain.forgetting import mentioned_ids
from domain.interactions import RejectedInteraction


@dataclass(frozen=True)
class InboundRecord:
    """One Kafka record, as the ingest worker received it: its place (its log too: a
    restarted broker or a topic created again reuses offsets) and its bytes, header names
    included."""

    log: str  # the inbound topic's log id: `{cluster id}/{topic id}` (see `consumers.offsets`)
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[Header] = ()


class Unforeseen(RejectedInteraction):
    """A record the ledger failed to decide for a reason nobody foresaw (a bug): it is
    dead-lettered as `internal` with the failure, so that it can be redriven once fixed,
    and the rest of its batch is recorded."""

    error_type = "internal"

    @classmethod
    def of(cls, error: BaseException, event_id: str | None) -> Unforeseen:
        text = f"{type(error).__name__}: {error}"[:300]
        rejection = cls(f"the ledger failed to decide this message ({text})")
        rejection.event_id = event_id
        return rejection


def inbound_record(log: str, message: Any) -> InboundRecord:
    """A kafka-python `ConsumerRecord` as the ledger keeps it (header names as bytes)."""
    return InboundRecord(
        log,
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        [(raw_name(name), value) for name, value in message.headers or ()],
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
    names = {n for ids in named.values() for n in _streams(ids)}
    if not names:
        return rows
    gone = {
        stream.stream.split("-", 1)[1]
        for stream in load(names).values()
        if isinstance(stream, Customer | Card) and stream.forgotten
    }
    return [
        replace(row, key=None, value=None, headers=[], error=ERASED_ERROR)
        if named.get(i, set()) & gone
        else row
        for i, row in enumerate(rows)
    ]


def _streams(ids: Collection[str]) -> list[str]:
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
