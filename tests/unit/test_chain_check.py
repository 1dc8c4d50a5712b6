"""The chain check on hand-built streams: each kind of tampering is found and named, and
an untouched stream gives nothing."""

from __future__ import annotations

import hashlib
from typing import Any

from domain import merkle
from domain.aggregates import stream_id
from domain.canonical import GENESIS_HASH, chain_hash
from domain.chain_check import Stored, check_stream

STREAM = "customer-C-1"
ID = stream_id(STREAM)


def chain(count: int) -> list[Stored]:
    """A valid stream of `count` purchases (version 1 also names the stream)."""
    records, prev = [], GENESIS_HASH
    for version in range(1, count + 1):
        payload = {"event_id": f"e{version}", "customer_id": "C-1", "total": f"{version}.00"}
        event: dict[str, Any] = {
            "kind": "purchase",
            "event_id": f"e{version}",
            "payload": payload,
            "prev_hash": prev,
            "hash": chain_hash(STREAM, version, "purchase", payload, prev),
        }
        if version == 1:
            event["stream"] = STREAM
        records.append(Stored(version, event))
        prev = event["hash"]
    return records


def found(records: list[Stored], indexed: dict[int, str] | None = None) -> list[tuple[Any, ...]]:
    return [(f.kind, f.version, f.event_id) for f in check_stream(ID, records, indexed or {})]


def test_an_untouched_stream_gives_nothing() -> None:
    assert found(chain(5)) == []


def test_an_edited_payload_is_named_by_version_and_event_id() -> None:
    records = chain(4)
    event = dict(records[2].event or {})
    event["payload"] = {**event["payload"], "total": "99.00"}
    records[2] = Stored(3, event)
    assert found(records) == [("edited", 3, "e3")]


def test_an_edit_with_its_hash_recomputed_is_found_by_the_next_link() -> None:
    records = chain(4)
    event = dict(records[1].event or {})
    event["payload"] = {**event["payload"], "total": "99.00"}
    event["hash"] = chain_hash(STREAM, 2, "purchase", event["payload"], event["prev_hash"])
    records[1] = Stored(2, event)
    assert found(records, {2: "e2"}) == [("edited", 2, "e2")]


def test_a_removed_record_is_named_with_the_event_id_the_index_holds() -> None:
    records = chain(4)
    del records[1]
    assert found(records, {2: "e2"}) == [("removed", 2, "e2")]


def test_two_swapped_records_are_each_named_as_reordered() -> None:
    records = chain(4)
    records[1], records[2] = Stored(2, records[2].event), Stored(3, records[1].event)
    assert found(records) == [("reordered", 2, "e3"), ("reordered", 3, "e2")]


def test_an_undecodable_or_misshapen_record_is_a_finding_not_a_crash() -> None:
    records = chain(3)
    records[1] = Stored(2, None, "the stored record is not JSON")
    records[2] = Stored(3, {"kind": 7})
    assert found(records) == [("unreadable", 2, None), ("unreadable", 3, None)]


def test_without_its_first_record_the_stream_is_named_from_its_payload_ids() -> None:
    records = chain(3)[1:]
    assert found(records, {1: "e1"}) == [("removed", 1, "e1")]
    assert check_stream(ID, records, {})[0].stream == STREAM


def test_the_merkle_root_is_recomputable_from_the_documented_rule() -> None:
    a, b, c = (merkle.leaf(f"id-{n}", n, f"h{n}") for n in range(3))
    assert a == hashlib.sha256(b"\x00id-0 0 h0").digest()
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle.root([a]) == a.hex()
    assert merkle.root([a, b]) == ab.hex()
    assert merkle.root([a, b, c]) == hashlib.sha256(b"\x01" + ab + c).hexdigest()
    assert merkle.root([]) == hashlib.sha256(b"").hexdigest()


def test_records_that_are_not_objects_or_far_out_of_place_are_named_quickly() -> None:
    records = chain(4)
    records[1] = Stored(2, [1, 2, 3])  # type: ignore[arg-type]
    records[3] = Stored(10**12, records[3].event)
    assert found(records, {2: "e2"}) == [
        ("unreadable", 2, "e2"),
        ("removed", 4, None),
        ("reordered", 10**12, "e4"),
    ]


def test_an_event_id_outside_the_hash_that_was_changed_is_found() -> None:
    records = chain(3)
    records[1] = Stored(2, {**(records[1].event or {}), "event_id": "forged"})
    assert found(records) == [("edited", 2, "forged")]
