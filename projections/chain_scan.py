"""Reading the event store for the audit: every stream's chain, and the stream heads that
the digest covers.

Rows come straight from the store's table (`projections.event_store`), in stream and
version order, and are decoded with orjson (the store's encoding, `store.transcoding`)
here rather than through the library's mapper: a tampered row must become a finding, and
the mapper would raise on it, or build an event that hides the change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from uuid import UUID

import orjson
from psycopg import Connection

from domain import merkle
from domain.chain_check import Finding, Stored, check_stream
from projections import event_store


def check_chains(
    conn: Connection[Any], progress: Callable[[int], object] = lambda n: None
) -> Iterator[Finding]:
    """Every finding in every stream (`progress` gets the count of records read so far)."""
    missing: dict[UUID, dict[int, tuple[str, str]]] = {}
    for originator_id, version, event_id, stream in event_store.missing(conn):
        missing.setdefault(originator_id, {})[version] = (event_id, stream)
    read = 0
    for originator_id, records in _streams(conn):
        absent = missing.pop(originator_id, {})
        found = check_stream(originator_id, records, {v: a[0] for v, a in absent.items()})
        yield from _named(conn, found)
        for version, (event_id, stream) in sorted(absent.items()):
            if version > records[-1].version:  # a removed tail
                yield _removed(originator_id, stream, version, event_id)
        read += len(records)
        progress(read)
    for originator_id, versions in missing.items():  # a whole stream removed
        for version, (event_id, stream) in sorted(versions.items()):
            yield _removed(originator_id, stream, version, event_id)


def _named(conn: Connection[Any], found: list[Finding]) -> list[Finding]:
    """Findings with the event_id the interaction index holds where the record gave none."""
    unnamed = [f for f in found if f.event_id is None]
    if not unnamed:
        return found
    rows = conn.execute(
        "SELECT originator_version, event_id FROM ledger_interactions "
        "WHERE originator_id = %s AND originator_version = ANY(%s)",
        (UUID(unnamed[0].stream_id), [f.version for f in unnamed]),
    ).fetchall()
    index = dict(rows)
    return [replace(f, event_id=index.get(f.version)) if f.event_id is None else f for f in found]


def _removed(originator_id: UUID, stream: str | None, version: int, event_id: str) -> Finding:
    return Finding(
        "removed",
        str(originator_id),
        stream,
        version,
        event_id,
        "the interaction index holds it; the store does not",
    )


def _streams(conn: Connection[Any]) -> Iterator[tuple[UUID, list[Stored]]]:
    """(originator_id, its records in version order), stream by stream."""
    current: UUID | None = None
    records: list[Stored] = []
    for originator_id, version, state, topic in event_store.in_stream_order(conn):
        if originator_id != current:
            if current is not None:
                yield current, records
            current, records = originator_id, []
        records.append(replace(_decode(version, state), topic=topic))
    if current is not None:
        yield current, records


def _decode(version: int, state: bytes | None) -> Stored:
    if state is None:
        return Stored(version, None, "the stored record is empty (NULL)")
    try:
        return Stored(version, orjson.loads(state))
    except orjson.JSONDecodeError as error:
        return Stored(version, None, f"the stored record is not JSON ({error})")


def digest(conn: Connection[Any], position: int | None = None) -> dict[str, Any]:
    """`{position, streams, root}`: the Merkle root (`domain.merkle`) over the head of every
    stream as of `position` (default: the ledger's head), read in one snapshot."""
    with conn.transaction():
        position, heads = event_store.stream_heads(conn, position)
        leaves = [
            merkle.leaf(str(originator_id), version, _head_hash(state))
            for originator_id, version, state in heads
        ]
    return {"position": position, "streams": len(leaves), "root": merkle.root(leaves)}


def _head_hash(state: bytes | None) -> str:
    """The record's chain hash; an unreadable record stands in as the SHA-256 of its bytes
    (it is a finding of the chain check, and changes the root as any change would)."""
    try:
        found = orjson.loads(state or b"").get("hash")
    except (orjson.JSONDecodeError, AttributeError):
        found = None
    if isinstance(found, str):
        return found
    return "unreadable:" + hashlib.sha256(state or b"").hexdigest()
