"""The one decoder of stored event rows: a row of `ledger_events` into what its reader needs.

A stored row is (originator_id, originator_version, topic, state), the state being the
event's attributes as JSON (`store.transcoding`). Readers want one of three things:

- `domain_event`: the domain event, through the application's mapper (the library's own
  way: the topic names the class): for rebuilding streams and for the projections;
- `event_state`: the attributes as a dict (timestamp restored), with no application or
  aggregate class needed: for showing a history as recorded;
- `chain_record`, `recorded_hash`: the chain fields for `ledger verify` and the digest,
  decoded leniently: a tampered row must become a finding, where the mapper would raise
  or build an event that hides the change.

`COLUMNS` selects a row in `EventRow`'s order, so `EventRow(*row)` (a tuple row) or
`EventRow(**row)` (a dict row) reads it.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import resolve_topic

from domain.chain_check import Stored
from store.transcoding import OrjsonTranscoder

COLUMNS = "originator_id, originator_version, topic, state"
"""The stored row's columns, in `EventRow`'s order."""

_TRANSCODER = OrjsonTranscoder()


class EventRow(NamedTuple):
    """One row of the events table as the store returns it."""

    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes | memoryview | None  # NULL only in a tampered ledger


def stored_event(row: EventRow | StoredEvent) -> StoredEvent:
    """The library's `StoredEvent` of a row (a `StoredEvent`, notifications too, as it is)."""
    if isinstance(row, StoredEvent):
        return row
    return StoredEvent(
        originator_id=row.originator_id,
        originator_version=row.originator_version,
        topic=row.topic,
        state=bytes(row.state or b""),
    )


def domain_event(mapper: Mapper[Any], row: EventRow | StoredEvent) -> Any:
    """The domain event of a row, through the application's mapper (raises on a row it
    cannot read: the caller decides whether that stops it or is skipped)."""
    return mapper.to_domain_event(stored_event(row))


def event_state(state: bytes | memoryview) -> dict[str, Any]:
    """A row's event attributes (`kind`, `event_id`, `payload`, `prev_hash`, `hash`,
    `timestamp` as a datetime, and `stream` at version 1), without an event class."""
    decoded: dict[str, Any] = _TRANSCODER.decode(bytes(state))
    return decoded


def chain_record(row: EventRow) -> Stored:
    """The record as the chain check reads it: its version, topic and decoded JSON, or why
    it could not be decoded (empty, or not JSON)."""
    version, topic = row.originator_version, row.topic
    if row.state is None:
        return Stored(version, None, "the stored record is empty (NULL)", topic)
    try:
        return Stored(version, orjson.loads(bytes(row.state)), None, topic)
    except orjson.JSONDecodeError as error:
        return Stored(version, None, f"the stored record is not JSON ({error})", topic)


def recorded_hash(state: bytes | memoryview | None) -> str:
    """The record's chain hash; an unreadable record stands in as the SHA-256 of its bytes
    (it is a finding of the chain check, and changes a digest as any change would)."""
    raw = bytes(state or b"")
    try:
        found = orjson.loads(raw).get("hash")
    except (orjson.JSONDecodeError, AttributeError):
        found = None
    if isinstance(found, str):
        return found
    return "unreadable:" + hashlib.sha256(raw).hexdigest()


_READABLE_TOPICS: dict[str | None, bool] = {None: False}


def rebuild_state(topic: str | None, state: bytes | memoryview | None) -> dict[str, Any] | None:
    """A row's attributes as the application's mapper reads them (`kind`, `payload`,
    `timestamp` restored...), or None where the mapper could not build an event of it: a
    topic naming no class, a state that is not a JSON object. The bulk rebuilds read rows
    by COPY and fold these attributes directly: the mapper's event objects cost a fifth of
    a page-at-a-time replay, and they carry nothing the folds read besides these."""
    readable = _READABLE_TOPICS.get(topic)
    if readable is None:
        try:
            resolve_topic(topic or "")
            readable = True
        except Exception:  # whatever the library raises for a topic it cannot resolve
            readable = False
        _READABLE_TOPICS[topic] = readable
    if not readable or state is None:
        return None
    try:
        decoded = _TRANSCODER.decode(bytes(state))
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None
    return decoded if isinstance(decoded, dict) else None
