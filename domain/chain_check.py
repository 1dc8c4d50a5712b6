"""Checking one stream's hash chain, as `ledger verify` does, with no I/O.

Each stored record is recomputed with `domain.canonical.chain_hash` from its own content
and stored `prev_hash`, at the version it is stored at. The outcomes:

- `edited`: the content no longer gives its stored hash; or it does, but the next
  record links to a different hash (the record was changed and re-hashed);
- `reordered`: the content gives its stored hash at another version of the stream, so it
  was recorded there and has been moved;
- `removed`: a version is missing between two stored ones (a removed tail or whole stream
  leaves no gap: `ledger verify --digest` finds those);
- `unreadable`: the stored record cannot be decoded, or the stream's name cannot be found
  (the hash covers it).

Each finding names the stream (its name and the store's `originator_id`), the version, and
the interaction's `event_id` (for a removed record, from the interaction index).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

from domain.aggregates import (
    card_stream,
    customer_stream,
    partner_stream,
    stream_class,
    stream_id,
)
from domain.canonical import GENESIS_HASH, chain_hash


class Stored(NamedTuple):
    """One stored record: its version and decoded event, or why it could not be decoded.
    A named tuple: the chain check builds one per record, and a tuple is built several
    times faster than a frozen dataclass."""

    version: int
    event: Mapping[str, Any] | None
    error: str | None = None
    topic: str | None = None  # the store's event class; None: not checked


@dataclass(frozen=True)
class Finding:
    kind: str  # edited | reordered | removed | unreadable
    stream_id: str
    stream: str | None
    version: int
    event_id: str | None
    detail: str

    def line(self) -> str:
        where = f"stream {self.stream or '(name unknown)'} ({self.stream_id})"
        return (
            f"{self.kind}: {where} version {self.version}, event_id "
            f"{self.event_id or '(unknown)'}: {self.detail}"
        )


def check_stream(
    originator_id: UUID, records: Sequence[Stored], indexed: Mapping[int, str]
) -> list[Finding]:
    """Every finding in one stream (`records` in version order; `indexed`: the event_id the
    interaction index holds per version, to name removed records)."""
    name = stream_name(originator_id, records)
    versions = [r.version for r in records]

    def finding(kind: str, record: Stored | int, detail: str) -> Finding:
        version = record if isinstance(record, int) else record.version
        event = None if isinstance(record, int) else record.event
        given = event.get("event_id") if isinstance(event, Mapping) else None
        event_id = indexed.get(version) or (given if isinstance(given, str) else None)
        return Finding(kind, str(originator_id), name, version, event_id, detail)

    found: list[Finding] = []
    if name is None:
        first = records[0] if records else 1
        return [finding("unreadable", first, "no record names the stream; no hash can be checked")]
    topics = (_topic(name, 1), _topic(name, 2))  # the first version's, every other's
    expected_version = 1
    link: str | None = GENESIS_HASH  # the hash the next record must carry (None: unknown)
    previous: Stored | None = None
    for record in records:
        if record.version > expected_version:
            found += _gap(finding, expected_version, record.version, indexed)
            link = None
        expected_version = record.version + 1
        event = record.event
        problem = record.error or _shape_problem(event)
        if problem is None:
            assert event is not None
            try:
                recomputed = _hash(name, record.version, event)
            except Exception as error:  # whatever a tampered record makes the encoder raise
                problem = f"its content cannot be encoded canonically ({error})"
        if problem is not None:
            found.append(finding("unreadable", record, problem))
            link = None
            continue
        assert event is not None
        expected = topics[record.version != 1]
        if record.topic is not None and record.topic != expected:
            found.append(
                finding("edited", record, f"its event class is {record.topic!r}, not {expected!r}")
            )
            link = None
            continue
        if recomputed == event["hash"] and event["event_id"] != event["payload"].get("event_id"):
            found.append(finding("edited", record, "its event_id is not the hashed payload's"))
            link = event["hash"]
            previous = record
            continue
        if recomputed != event["hash"]:
            moved = [
                v
                for v in _candidates(record.version, versions)
                if _hash(name, v, event) == event["hash"]
            ]
            if moved:
                found.append(
                    finding("reordered", record, f"holds the record of version {moved[0]}")
                )
            else:
                found.append(finding("edited", record, "its content does not give its hash"))
            link = None
            continue
        if link is not None and event["prev_hash"] != link and previous is not None:
            found.append(
                finding(
                    "edited",
                    previous,
                    f"re-hashed after a change: version {record.version} links to another hash",
                )
            )
        link, previous = event["hash"], record
    return found


MAX_LISTED = 100  # missing versions named one by one; a longer gap is one finding
MAX_CANDIDATES = 2_000  # versions tried for a record that may have been moved


def _gap(finding: Any, first: int, end: int, indexed: Mapping[int, str]) -> list[Finding]:
    """Findings for versions first..end-1, which are missing."""
    if end - first <= MAX_LISTED:
        return [finding("removed", v, "this version is missing") for v in range(first, end)]
    named = [
        finding("removed", v, "this version is missing")
        for v in sorted(indexed)
        if first <= v < end
    ]
    detail = f"versions {first} to {end - 1} are missing ({end - first} versions)"
    return [*named, finding("removed", first, detail)]


def _candidates(version: int, versions: Sequence[int]) -> list[int]:
    """The versions a moved record may have been recorded at, nearest first: the stream's
    own versions and the gaps between them, bounded (a record's hash tried at each)."""
    top = min(max(versions), len(versions) + MAX_LISTED)
    near = sorted(range(1, top + 1), key=lambda v: abs(v - version))
    return [v for v in near if v != version][:MAX_CANDIDATES]


def stream_name(originator_id: UUID, records: Sequence[Stored]) -> str | None:
    """The stream's name: stored with its first record, else derived from any record's ids
    (the store's id is uuid5 of the name, so a candidate is confirmed or not)."""
    first = records[0].event if records else None
    named = first.get("stream") if isinstance(first, Mapping) else None
    if isinstance(named, str) and stream_id(named) == originator_id:
        return named  # the usual case: no candidate gathered
    candidates: list[str] = []
    for record in records:
        event = record.event if isinstance(record.event, Mapping) else {}
        if isinstance(event.get("stream"), str):
            candidates.append(event["stream"])
        payload = event.get("payload")
        if isinstance(payload, Mapping):
            for key, named in (
                ("customer_id", customer_stream),
                ("card_id", card_stream),
                ("partner_id", partner_stream),
            ):
                if isinstance(payload.get(key), str):
                    candidates.append(named(payload[key]))
    return next((c for c in candidates if stream_id(c) == originator_id), None)


def _topic(stream: str, version: int) -> str | None:
    """The library's topic of the event class a record at `version` of `stream` must have
    (the class decides how the record is read back, so it is checked like content)."""
    cls = stream_class(stream)
    if cls is None:
        return None
    event = cls.Opened if version == 1 else cls.Recorded
    return f"{event.__module__}:{event.__qualname__}"


_SHAPE = {"kind": str, "event_id": str, "payload": dict, "prev_hash": str, "hash": str}


def _shape_problem(event: Mapping[str, Any] | None) -> str | None:
    if (
        type(event) is dict
        and type(event.get("kind")) is str
        and type(event.get("event_id")) is str
        and type(event.get("payload")) is dict
        and type(event.get("prev_hash")) is str
        and type(event.get("hash")) is str
    ):
        return None  # decoded JSON of the right shape (`_SHAPE`): the usual case, quickly
    if not isinstance(event, Mapping):
        return "the stored record is not a JSON object"
    wrong = [key for key, kind in _SHAPE.items() if not isinstance(event.get(key), kind)]
    return f"the stored record lacks a valid {', '.join(wrong)}" if wrong else None


def _hash(stream: str, version: int, event: Mapping[str, Any]) -> str:
    return chain_hash(stream, version, event["kind"], event["payload"], event["prev_hash"])
