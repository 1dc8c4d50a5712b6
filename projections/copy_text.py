"""Rows in PostgreSQL's COPY text format, for the bulk loads of a rebuild.

A rebuild (`projections.rebuild`) writes each projection table once, in full: COPY takes
the rows as one stream, several times faster than the per-page upserts. The text format
is built here with byte replaces (C speed) instead of psycopg's per-value adapters: JSON
columns arrive as orjson's bytes, which hold no raw tab, newline or carriage return (JSON
escapes them), so only their backslashes need doubling.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

NULL = b"\\N"
CHUNK = 1 << 20  # bytes handed to COPY at a time


def text(value: str | None) -> bytes:
    """A text value (any characters) as a COPY text field."""
    if value is None:
        return NULL
    raw = value.encode()
    if b"\\" in raw or b"\t" in raw or b"\n" in raw or b"\r" in raw:
        raw = raw.replace(b"\\", b"\\\\").replace(b"\t", b"\\t")
        raw = raw.replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    return raw


def json(value: Any) -> bytes:
    """A JSON value (None: SQL NULL) as a COPY text field of a jsonb column."""
    if value is None:
        return NULL
    return orjson.dumps(value).replace(b"\\", b"\\\\")


def moment(value: datetime | None) -> bytes:
    return NULL if value is None else value.isoformat().encode()


def number(value: int) -> bytes:
    return b"%d" % value


def boolean(value: bool) -> bytes:
    return b"t" if value else b"f"


def line(fields: Sequence[bytes]) -> bytes:
    return b"\t".join(fields) + b"\n"


def chunks(lines: Iterable[bytes]) -> Iterable[bytes]:
    """The lines joined into buffers of about CHUNK bytes (fewer, larger writes)."""
    buffer: list[bytes] = []
    size = 0
    for one in lines:
        buffer.append(one)
        size += len(one)
        if size >= CHUNK:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)
