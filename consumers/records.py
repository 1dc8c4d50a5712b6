"""Inbound Kafka records, and the dead-letter rows made of the ones the ledger rejects."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

import orjson

from consumers.erasure import ERASED_ERROR
from consumers.store import DeadLetterRow
from domain.aggregates import Card, Customer, LedgerStream, card_stream, customer_stream
from domain.forgetting import mentioned_ids


@dataclass(frozen=True)
class InboundRecord:
    """One Kafka record, as the ingest worker received it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


def dead_letter(
    rec: InboundRecord, event_id: str | None, error_type: str, reason: str
) -> DeadLetterRow:
    return DeadLetterRow(
        source_topic=rec.topic,
        source_partition=rec.partition,
        source_offset=rec.offset,
        event_id=event_id,
        error_type=error_type,
        error=reason,
        key=rec.key,
        value=rec.value,
        headers=[(name, value.hex()) for name, value in rec.headers],
    )


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
    return event_id[:200] if isinstance(event_id, str) else None
