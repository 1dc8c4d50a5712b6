"""No message stops ingest: each poison class, published between two valid interactions
on one key, is dead-lettered once while both valid ones are recorded, and `ledger consume
--until-idle` returns 0 run after run (it used to die on the same record every time)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from kafka import KafkaProducer
from support import dumps, enrollment, keyed, publish, purchase, read_topic, run_ledger

from ledger.settings import Settings

KEY = b"C-POISON"


class RawName(str):
    """A header name whose bytes on the wire are not UTF-8: kafka-python encodes names
    with `.encode("utf-8")`, so a POS with a bug in its encoding is simulated here."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawName:
        name = super().__new__(cls, raw.decode("latin-1"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


@dataclass(frozen=True)
class Poison:
    value: bytes
    headers: list[tuple[Any, bytes | None]]
    error_type: str
    reason: str  # a part of the dead letter's `error`
    omitted: str | None  # a part of the `omitted` header, if something is left out


def _deep_unknown_field() -> bytes:
    ix = purchase(customer_id=KEY.decode())
    ix["pos_debug"] = json.loads("[" * 300 + "]" * 300)
    return dumps(ix)


POISONS = {
    "json nested 1,000 deep": Poison(
        b"[" * 1000 + b"]" * 1000, [], "malformed", "nested deeper than 32 levels", None
    ),
    "unknown field nested 300 deep": Poison(
        _deep_unknown_field(), [], "malformed", "nested deeper than 32 levels", None
    ),
    "rejected event_id holding NUL": Poison(
        dumps({"event_id": "e\u0000vil", "type": "purchase", "customer_id": KEY.decode()}),
        [],
        "invalid",
        "",
        None,
    ),
    "header name holding NUL": Poison(b"{not json", [("x\x00y", b"v")], "malformed", "", None),
    "header with a null value": Poison(
        b"{not json", [("trace", None), ("kept", b"1")], "malformed", "", "header 'trace'"
    ),
    "header name not UTF-8": Poison(
        b"{not json", [(RawName(b"\xff\xfebad"), b"v"), ("kept", b"1")], "malformed", "", "UTF-8"
    ),
    "rejected message over 1 MB": Poison(
        b"x" * 1_500_000, [], "malformed", "over the 1,048,576-byte limit", "the value"
    ),
}


def _publish(settings: Settings, poison: Poison) -> tuple[list[str], int]:
    """Enrollment, poison, purchase on one key; the valid ids and the poison's offset."""
    first = enrollment(KEY.decode(), "K-POISON")
    last = purchase(customer_id=KEY.decode())
    if any(value is None for _, value in poison.headers):
        # kafka-python cannot send a null header value; a librdkafka POS can.
        producer = Producer(
            {"bootstrap.servers": settings.kafka_bootstrap, "partitioner": "murmur2_random"}
        )
        offsets: list[int] = []
        for value, headers in (
            (dumps(first), []),
            (poison.value, poison.headers),
            (dumps(last), []),
        ):
            producer.produce(
                settings.inbound_topic,
                key=KEY,
                value=value,
                headers=headers,
                on_delivery=lambda err, msg: offsets.append(msg.offset()),
            )
            producer.flush(30)
        assert len(offsets) == 3
        return [first["event_id"], last["event_id"]], offsets[1]
    kafka = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", max_request_size=4 * 1024 * 1024
    )
    try:
        kafka.send(settings.inbound_topic, key=KEY, value=dumps(first)).get(30)
        sent = kafka.send(
            settings.inbound_topic, key=KEY, value=poison.value, headers=poison.headers
        ).get(30)
        kafka.send(settings.inbound_topic, key=KEY, value=dumps(last)).get(30)
    finally:
        kafka.close()
    return [first["event_id"], last["event_id"]], sent.offset


@pytest.mark.parametrize("name", list(POISONS))
def test_a_poison_record_is_dead_lettered_once_and_ingest_goes_on(
    settings: Settings, name: str
) -> None:
    poison = POISONS[name]
    valid, offset = _publish(settings, poison)

    for run in range(2):
        done = run_ledger(settings, "consume", "--until-idle")
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        expected = f"recorded {2 if run == 0 else 0}, duplicates 0, dead-lettered: "
        assert expected in done.stdout, done.stdout

    with psycopg.connect(settings.database_url or "") as conn:
        recorded = conn.execute(
            "SELECT count(*) FROM ledger_interactions WHERE event_id = ANY(%s)", (valid,)
        ).fetchone()
        stored = conn.execute(
            "SELECT error_type, error, value, headers FROM ledger_dead_letters "
            "WHERE source_offset = %s",
            (offset,),
        ).fetchall()
    assert recorded == (2,)
    assert len(stored) == 1
    error_type, error, value, headers = stored[0]
    assert error_type == poison.error_type
    assert poison.reason in error
    assert bytes(value) == poison.value  # kept whole in PostgreSQL, whatever was left out
    assert [
        (bytes.fromhex(h["name"]), None if h["value"] is None else bytes.fromhex(h["value"]))
        for h in headers
    ] == [(getattr(n, "raw", None) or n.encode(), v) for n, v in poison.headers]

    dead = [r for r in read_topic(settings, settings.dead_letter_topic) if r.offset >= 0]
    assert len(dead) == 1, [r.headers for r in dead]
    record = dead[0]
    got = dict(record.headers)
    assert got["error_type"] == poison.error_type.encode()
    assert got["source_offset"] == str(offset).encode()
    if poison.omitted is None:
        assert "omitted" not in got
        assert record.value == poison.value
        assert record.headers[: len(poison.headers)] == poison.headers
    else:
        assert poison.omitted in got["omitted"].decode()
        sendable = [(n, v) for n, v in poison.headers if v is not None and type(n) is str]
        assert all(got[n] == v for n, v in sendable)


def test_a_purchase_at_the_calendars_end_does_not_stop_the_projector(settings: Settings) -> None:
    """Valid, recorded, and once the end of the projector's clock arithmetic (90 days after
    it is past year 9999): the built-in lapsed_buyers audience must not stop on it."""
    last = purchase(customer_id="C-END", occurred_at="9999-10-02T23:59:59.999999Z")
    publish(settings, [keyed(enrollment("C-END", "K-END")), keyed(last)])
    assert "recorded 2" in run_ledger(settings, "consume", "--until-idle").stdout
    for _ in range(2):
        done = run_ledger(settings, "project", "--until-idle")
        assert done.returncode == 0, done.stderr


def test_a_rejected_message_naming_a_forgotten_customer_after_many_others_keeps_no_bytes(
    settings: Settings,
) -> None:
    """Every id of a rejected message is checked, not the first few: decoys cannot smuggle
    a forgotten person's data into the dead letters."""
    publish(settings, [keyed(enrollment("FG1", "K-FG1", email="fiona@example.com"))])
    assert run_ledger(settings, "consume", "--until-idle").returncode == 0
    forgot = run_ledger(settings, "forget", "FG1", "--reason", "asked to be forgotten")
    assert forgot.returncode == 0, forgot.stderr
    decoys = [{"customer_id": f"C-{i}"} for i in range(5_000)]
    smuggled = {
        "type": "nope",
        "items": [*decoys, {"customer_id": "FG1"}],
        "e": "fiona@example.com",
    }
    publish(settings, [(b"C-0", dumps(smuggled), [])])
    assert run_ledger(settings, "consume", "--until-idle").returncode == 0
    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute("SELECT value, error FROM ledger_dead_letters").fetchall()
    assert rows == [(None, "erased: it named a forgotten customer")]
