"""Record header names that are not UTF-8: read them instead of stopping the consumer.

Kafka's protocol calls a header name a string, but the broker never checks it, so a
buggy producer can send any bytes. kafka-python (3.0.12) decodes each name as strict
UTF-8 while it iterates a fetched batch, and turns the error into `CorruptRecordError`:
every `poll()` of that partition then fails, and ingest stops at that record for ever.

`read_undecodable_header_names()` wraps the library's record reader: when (and only when)
it fails on a name's bytes, the same record is read again here with the name kept as
`UndecodableName` (a `str` with U+FFFD in place of the bad bytes, so the library's own
size accounting still works, carrying the original bytes). The ledger dead-letters such
a record with its bytes intact (`raw_name`). This is written here because the library
offers no hook for it; it reads record format v2, which Kafka documents and keeps stable.
"""

from __future__ import annotations

from typing import Any

from kafka.record.default_records import DefaultRecord, DefaultRecordBatch
from kafka.record.util import decode_varint


class UndecodableName(str):
    """A header name that is not UTF-8: readable text, with its bytes in `raw`."""

    raw: bytes

    def __new__(cls, raw: bytes) -> UndecodableName:
        name = super().__new__(cls, raw.decode("utf-8", "replace"))
        name.raw = raw
        return name


def raw_name(name: str | bytes) -> bytes:
    """A header name's bytes as the producer sent them."""
    if isinstance(name, UndecodableName):
        return name.raw
    if isinstance(name, bytes):
        return name
    return name.encode("utf-8")


def read_undecodable_header_names() -> None:
    """Make kafka-python read records whose header names are not UTF-8 (idempotent)."""
    strict = DefaultRecordBatch._read_msg
    if getattr(strict, "lenient", False):
        return

    def _read_msg(self: Any, decode_varint: Any = decode_varint) -> Any:
        try:
            return strict(self)
        except UnicodeDecodeError:  # raised before the reader moved on: read it again
            return _read_lenient(self)

    _read_msg.lenient = True  # type: ignore[attr-defined]
    DefaultRecordBatch._read_msg = _read_msg


def _read_lenient(batch: Any) -> DefaultRecord:
    """The library's `_read_msg`, keeping undecodable header names (no control batches:
    the record that failed was an ordinary one)."""
    buffer, pos = batch._buffer, batch._pos
    length, pos = decode_varint(buffer, pos)
    start = pos
    _, pos = decode_varint(buffer, pos)  # attributes: unused in format v2
    ts_delta, pos = decode_varint(buffer, pos)
    if batch.timestamp_type == batch.LOG_APPEND_TIME:
        timestamp = batch.max_timestamp
    else:
        timestamp = batch.first_timestamp + ts_delta
    offset_delta, pos = decode_varint(buffer, pos)
    key, pos = _nullable_bytes(buffer, pos)
    value, pos = _nullable_bytes(buffer, pos)
    count, pos = decode_varint(buffer, pos)
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(max(count, 0)):
        name, pos = _nullable_bytes(buffer, pos)
        header_value, pos = _nullable_bytes(buffer, pos)
        headers.append((_name(name or b""), header_value))
    if pos - start != length:
        raise ValueError(f"record of {length} bytes read as {pos - start}")
    batch._pos = pos
    return DefaultRecord(
        length,
        batch.base_offset + offset_delta,
        timestamp,
        batch.timestamp_type,
        key,
        value,
        headers,
    )


def _nullable_bytes(buffer: Any, pos: int) -> tuple[bytes | None, int]:
    size, pos = decode_varint(buffer, pos)
    if size < 0:
        return None, pos
    return bytes(buffer[pos : pos + size]), pos + size


def _name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return UndecodableName(raw)
