"""How events are encoded in the event store: orjson, with event timestamps restored.

The library's `JSONTranscoder` runs a Python hook for every JSON object it decodes and
encodes with the standard library; on this ledger's events (a payload dict each) that was
an eighth of ingest and of projection time. This transcoder keeps the same shape (a JSON
object of the event's attributes) with orjson, which writes `datetime` as RFC 3339 and
`UUID` as text natively; decoding turns the event's top-level `timestamp` back into a
`datetime`. Business payloads are plain JSON, so nothing else needs restoring. Selected
by class through the library's `construct_transcoder` hook (`consumers.application`).

Ingest writes its rows without the library's event objects and mapper (`stored_row`), in
PostgreSQL's binary COPY format (`CopyRows`), byte for byte what the mapper would store.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper, Transcoder
from eventsourcing.utils import get_topic

from domain.aggregates import Unsaved


class OrjsonTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        state = orjson.loads(data)
        if isinstance(state, dict) and isinstance(state.get("timestamp"), str):
            state["timestamp"] = datetime.fromisoformat(state["timestamp"])
        return state


class StoredRow(NamedTuple):
    """A row of the events table, as the library's mapper makes it of a domain event."""

    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


_CLASSES: dict[type[Any], tuple[str, int]] = {}
"""Per event class: its topic and class version, once its state order was checked."""


def stored_row(mapper: Mapper[Any], unsaved: Unsaved) -> StoredRow:
    """The row the library's `Mapper.to_stored_event` would make of `unsaved.event()`,
    made without building the event (ingest's hot path; see
    `domain.aggregates.LedgerStream`). Byte for byte the same: the state is the event's
    attributes in its dataclass field order less originator id and version (checked on a
    class's first event: the aggregates build each class's state in one place), the class
    version when above 1, then the mapper's transcoder, compressor and cipher (a unit test
    compares the two paths)."""
    event_class, state = unsaved.event_class, unsaved.state
    known = _CLASSES.get(event_class)
    if known is None:
        known = _CLASSES[event_class] = _class_info(event_class, state)
    topic, class_version = known
    if class_version > 1:
        state = {**state, "class_version": class_version}
    encoded = mapper.transcoder.encode(state)
    if mapper.compressor:
        encoded = mapper.compressor.compress(encoded)
    if mapper.cipher:
        encoded = mapper.cipher.encrypt(encoded)
    return StoredRow(unsaved.originator_id, unsaved.originator_version, topic, encoded)


def _class_info(event_class: type[Any], state: dict[str, Any]) -> tuple[str, int]:
    skip = ("originator_id", "originator_version")
    names = tuple(f.name for f in dataclasses.fields(event_class) if f.name not in skip)
    if tuple(state) != names:
        raise ValueError(f"{event_class.__qualname__}: state {tuple(state)}, fields {names}")
    return get_topic(event_class), getattr(event_class, "class_version", 1)


# PostgreSQL's binary COPY format: a header, then per row a field count and each field as
# a 4-byte length and its binary value, then -1 as a field count.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_ROW_START = struct.pack(">hi", 5, 8)  # 5 fields; notification_id's length (its value next)
_ID = struct.Struct(">q")
_NO_ID = bytes(_ID.size)  # its place, until the ids are known
_ROW_FIXED = struct.Struct(">i16siqi")  # originator_id (uuid), version (bigint), topic length
_LENGTH = struct.Struct(">i")
COPY_COLUMNS = ("notification_id", "originator_id", "originator_version", "topic", "state")
"""The events table's columns in the order `CopyRows` writes them."""


class CopyRows:
    """Rows of the events table in PostgreSQL's binary COPY format (`COPY_COLUMNS`), all
    encoded up front but their notification ids, which are only known once the table lock
    is held: `with_ids` writes them into their places."""

    def __init__(self, rows: Sequence[StoredRow]) -> None:
        topics: dict[str, bytes] = {}
        data = bytearray(_COPY_HEADER)
        places: list[int] = []
        for row in rows:
            topic = topics.get(row.topic)
            if topic is None:
                topic = topics[row.topic] = row.topic.encode("utf-8")
            data += _ROW_START
            places.append(len(data))
            data += _NO_ID
            data += _ROW_FIXED.pack(
                16, row.originator_id.bytes, 8, row.originator_version, len(topic)
            )
            data += topic
            data += _LENGTH.pack(len(row.state))
            data += row.state
        data += _COPY_TRAILER
        self._data = data
        self._places = places

    def __len__(self) -> int:
        return len(self._places)

    def with_ids(self, first_id: int) -> bytearray:
        """The COPY data, the rows numbered from `first_id` on."""
        pack_into, data = _ID.pack_into, self._data
        for number, place in enumerate(self._places, first_id):
            pack_into(data, place, number)
        return data
