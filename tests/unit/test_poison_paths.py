"""Arbitrary Kafka records through the decision's pure steps and the dead-letter path:
whatever bytes and headers a producer sends, nothing raises, every record gets a fate,
and what is stored and published is what PostgreSQL and Kafka can take."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder

import consumers.records as records
from consumers.records import InboundRecord, about_the_forgotten, dead_letter, parse_records
from consumers.relay import DLQ_MAX_BYTES, DeadLetterRecord, dlq_record
from domain.interactions import Interaction, RejectedInteraction
from store.dead_letters import headers_of, stored_headers

ERROR_TYPES = {"malformed", "invalid", "internal"}

names = st.binary(max_size=12) | st.sampled_from([b"x\x00y", b"\xff\xfe", b"error", b""])
header_values = st.none() | st.binary(max_size=40)
headers = st.lists(st.tuples(names, header_values), max_size=4)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
values = (
    st.none()
    | st.binary(max_size=300)
    | json_like.map(lambda v: json.dumps(v).encode())
    | st.integers(30, 3000).map(lambda n: b"[" * n + b"]" * n)
    | st.integers(30, 3000).map(lambda n: b'{"customer_id":' + b'{"a":' * n + b"1" + b"}" * n)
    | st.text(max_size=20).map(
        lambda t: json.dumps({"event_id": t, "type": "purchase", "customer_id": t}).encode()
    )
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(values, headers), min_size=1, max_size=5))
def test_any_record_gets_a_fate_and_a_storable_publishable_dead_letter(
    drawn: list[tuple[bytes | None, list[tuple[bytes, bytes | None]]]],
) -> None:
    batch = [
        InboundRecord("cluster", "t.interactions", 0, i, b"k", value, hs)
        for i, (value, hs) in enumerate(drawn)
    ]
    parsed = parse_records(batch)
    assert [rec for rec, _ in parsed] == batch
    rows = []
    for rec, fate in parsed:
        if isinstance(fate, Interaction):
            continue
        assert isinstance(fate, RejectedInteraction)
        assert fate.error_type in ERROR_TYPES
        rows.append(dead_letter(rec, fate.event_id, fate.error_type, fate.reason))
    rows = about_the_forgotten(rows, lambda names: dict.fromkeys(names))
    for row in rows:
        for text in (row.error, row.event_id or ""):
            assert "\x00" not in text
            text.encode("utf-8")  # PostgreSQL text: no NUL, no lone surrogate
        json.dumps(stored_headers(row.headers).obj)
        assert headers_of(stored_headers(row.headers).obj) == row.headers
        published = dlq_record(
            (row.source_log, row.source_topic, row.source_partition, row.source_offset),
            row.error_type,
            row.error,
            row.key,
            row.value,
            row.headers,
        )
        sent = [(name.encode("utf-8"), value) for name, value in published.headers]
        assert all(isinstance(value, bytes) for _, value in sent)
        assert wire_size(published) <= DLQ_MAX_BYTES
        assert published.key is not None or published.value is not None


def wire_size(record: DeadLetterRecord) -> int:
    """The record's size as kafka-python's producer checks it against max_request_size."""
    return int(
        DefaultRecordBatchBuilder.estimate_size_in_bytes(record.key, record.value, record.headers)
    )


@pytest.mark.parametrize(
    "value, headers",
    [
        (b"x" * 990_000, [(b"", b"")] * 30_000),  # headers' framing, uncounted, was 50 KB
        (b"{bad", [(b"\xff" * 100 + str(i).encode(), b"") for i in range(3_000)]),  # a 1.3 MB note
        (b"v", [(b"h", b"x" * 400_000)] * 3),
        (b"v" * 600_000, [(b"n", None)] * 50_000),
    ],
)
def test_a_dead_letter_never_exceeds_the_limit_whatever_its_headers(
    value: bytes, headers: list[tuple[bytes, bytes | None]]
) -> None:
    published = dlq_record(("c", "t", 0, 7), "malformed", "r", b"k" * 1000, value, headers)
    assert wire_size(published) <= DLQ_MAX_BYTES
    assert len(dict(published.headers)["omitted"]) < 1_024


def test_a_record_over_the_topic_limit_is_published_without_its_value_and_says_so() -> None:
    published = dlq_record(
        ("c", "t", 0, 7), "malformed", "too big", b"k", b"x" * 2_000_000, [(b"h", b"v")]
    )
    got = dict(published.headers)
    assert published.value == b""
    assert got["h"] == b"v"
    assert got["omitted"].decode().startswith("the value (2,000,000 bytes)")
    assert got["source_offset"] == b"7" and got["source_log"] == b"c"


def test_headers_kafka_python_cannot_send_are_named_in_omitted() -> None:
    published = dlq_record(
        ("c", "t", 0, 7), "malformed", "r", b"k", b"v", [(b"\xff", b"1"), (b"n", None)]
    )
    got = dict(published.headers)
    assert "\xff" not in got and "n" not in got
    assert "header b'\\xff' (its name is not UTF-8)" in got["omitted"].decode()
    assert "header 'n' (its value is null)" in got["omitted"].decode()


def test_an_unforeseen_failure_parsing_one_record_dead_letters_only_that_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = records.parse_interaction

    def buggy(raw: bytes) -> Interaction:
        if b"boom" in raw:
            raise KeyError("a bug")
        return real(raw)

    monkeypatch.setattr(records, "parse_interaction", buggy)
    batch = [
        InboundRecord("c", "t", 0, 0, None, b'{"boom": 1, "event_id": "e-1"}'),
        InboundRecord("c", "t", 0, 1, None, b"[]"),
    ]
    (_, first), (_, second) = parse_records(batch)
    assert isinstance(first, RejectedInteraction) and first.error_type == "internal"
    assert first.reason == "the ledger failed to decide this message (KeyError: 'a bug')"
    assert first.event_id == "e-1"
    assert isinstance(second, RejectedInteraction) and second.error_type == "malformed"


def test_the_relay_reads_the_source_of_its_own_records_and_skips_foreign_ones() -> None:
    from consumers.relay import _source_of

    ours = dict(dlq_record(("c/t", "t", 2, 7), "malformed", "r", b"k", b"v", []).headers)
    assert _source_of(ours) == ("c/t", "t", 2, 7)
    older = {k: v for k, v in ours.items() if k != "source_log"}
    assert _source_of(older) == ("", "t", 2, 7)
    assert _source_of({**ours, "source_partition": b"two"}) is None
    assert _source_of({"source_topic": b"\xff"}) is None
