"""Reading the event store for the audit: every stream's chain, and the stream heads that
the digest covers.

Rows come straight from the store's table (`store.event_store`), in stream and
version order, streamed by COPY in one pass (each stream is checked once its last record
is read, so memory holds one stream), and are decoded by `store.event_rows`
(`chain_record`, `recorded_hash`) rather than through the library's mapper: a tampered
row must become a finding, and the mapper would raise on it, or build an event that hides
the change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from uuid import UUID

from psycopg import Connection

from domain import merkle
from domain.chain_check import Finding, Stored, check_stream
from store import event_store, interaction_index
from store.event_rows import chain_record, recorded_hash

BATCH = 5_000


Missing = dict[UUID, dict[int, tuple[str, str]]]
"""Per stream, per version: (event_id, stream name) the interaction index holds and the
store does not."""


def missing_records(conn: Connection[Any]) -> Missing:
    """The records the interaction index names and the store lacks."""
    found: Missing = {}
    for originator_id, version, event_id, stream in interaction_index.missing_from_store(conn):
        found.setdefault(originator_id, {})[version] = (event_id, stream)
    return found


def check_chains(
    conn: Connection[Any],
    progress: Callable[[int], object] = lambda n: None,
    *,
    share: tuple[int, int] = (0, 1),
    absent: Missing | None = None,
) -> Iterator[Finding]:
    """Every finding in every stream (`progress` gets the count of records read so far);
    with `share` (part, parts), in the streams of that part (`event_store.share_of`), and
    `absent`: what `missing_records` found, read once for every part."""
    part, parts = share
    missing = dict(absent) if absent is not None else missing_records(conn)
    if parts > 1:
        missing = {o: v for o, v in missing.items() if event_store.share_of(o, parts) == part}
    read = 0
    found: list[Finding] = []  # named once the read is over: no query runs during a COPY
    for originator_id, records in _streams(conn, share):
        gone = missing.pop(originator_id, {})
        found += check_stream(originator_id, records, {v: a[0] for v, a in gone.items()})
        for version, (event_id, stream) in sorted(gone.items()):
            if version > records[-1].version:  # a removed tail
                found.append(_removed(originator_id, stream, version, event_id))
        read += len(records)
        progress(read)
    yield from _named(conn, found)
    for originator_id, versions in missing.items():  # a whole stream removed
        for version, (event_id, stream) in sorted(versions.items()):
            yield _removed(originator_id, stream, version, event_id)


def _named(conn: Connection[Any], found: list[Finding]) -> list[Finding]:
    """Findings with the event_id the interaction index holds where the record gave none
    (one query per stream that has such findings)."""
    unnamed: dict[str, list[int]] = {}
    for f in found:
        if f.event_id is None:
            unnamed.setdefault(f.stream_id, []).append(f.version)
    names = {
        (stream, version): event_id
        for stream, versions in unnamed.items()
        for version, event_id in interaction_index.event_ids_at(
            conn, UUID(stream), versions
        ).items()
    }
    return [
        replace(f, event_id=names.get((f.stream_id, f.version))) if f.event_id is None else f
        for f in found
    ]


def _removed(originator_id: UUID, stream: str | None, version: int, event_id: str) -> Finding:
    return Finding(
        "removed",
        str(originator_id),
        stream,
        version,
        event_id,
        "the interaction index holds it; the store does not",
    )


def _streams(conn: Connection[Any], share: tuple[int, int]) -> Iterator[tuple[UUID, list[Stored]]]:
    """(originator_id, its records in version order), stream by stream."""
    current: UUID | None = None
    records: list[Stored] = []
    for row in event_store.copy_in_stream_order(conn, share):
        if row.originator_id != current:
            if current is not None:
                yield current, records
            current, records = row.originator_id, []
        records.append(chain_record(row))
    if current is not None:
        yield current, records


def digest(conn: Connection[Any], position: int | None = None) -> dict[str, Any]:
    """`{position, streams, root}`: the Merkle root (`domain.merkle`) over the head of every
    stream as of `position` (default: the ledger's head), read in one snapshot."""
    with conn.transaction():
        position, heads = event_store.stream_heads(conn, position)
        leaves = [
            merkle.leaf(str(originator_id), version, recorded_hash(state))
            for originator_id, version, state in heads
        ]
    return {"position": position, "streams": len(leaves), "root": merkle.root(leaves)}
