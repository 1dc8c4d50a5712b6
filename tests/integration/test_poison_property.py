"""Arbitrary records through the whole decision and dead-letter path on real servers:
decided, committed to PostgreSQL in one transaction with their offsets, and published to
the dead-letter topic, without an exception, every record accounted for."""

from __future__ import annotations

import json

import psycopg
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from support import dumps, enrollment, purchase, read_topic

from consumers.records import InboundRecord
from consumers.relay import DeadLetterRelay
from ledger import bootstrap
from ledger.settings import Settings
from store.offsets import OffsetMove

names = st.binary(max_size=10) | st.sampled_from([b"x\x00y", b"\xff\xfe", b"source_topic"])
headers = st.lists(st.tuples(names, st.none() | st.binary(max_size=20)), max_size=3)
values = (
    st.none()
    | st.binary(max_size=200)
    | st.integers(30, 2000).map(lambda n: b"[" * n + b"]" * n)
    | st.text(max_size=12).map(
        lambda t: json.dumps({"event_id": t, "type": "call", "customer_id": t}).encode()
    )
    | st.builds(lambda: dumps(purchase(customer_id="C-1")))
    | st.builds(lambda: dumps(enrollment("C-2", "K-2", name="Ada\u0000")))
)


def test_arbitrary_records_are_decided_stored_and_published_without_an_exception(
    settings: Settings,
) -> None:
    ingest = bootstrap.ingest(settings)
    relay = DeadLetterRelay(
        settings.database_url or "",
        bootstrap.producer(settings),
        settings.kafka_bootstrap or "",
        settings.inbound_topic,
        settings.dead_letter_topic,
    )
    topic = settings.inbound_topic
    cluster = bootstrap.inbound_log(settings)
    position = {"next": 0, "expected": None, "dead": 0}

    @hypothesis_settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(st.lists(st.tuples(values, headers), min_size=1, max_size=6))
    def decide_and_publish(drawn: list[tuple[bytes | None, list[tuple[bytes, bytes | None]]]]):
        first = position["next"]
        batch = [
            InboundRecord(cluster, topic, 0, first + i, b"C-1", value, hs)
            for i, (value, hs) in enumerate(drawn)
        ]
        move = OffsetMove(topic, 0, position["expected"], first + len(batch), cluster)
        result = ingest.commit(ingest.decide(ingest.parse(batch), [move]))
        assert result.recorded + result.duplicates + result.dead_lettered == len(batch)
        relay.publish_pending()
        position.update(next=move.next_offset, expected=move.next_offset)
        position["dead"] += result.dead_lettered

    decide_and_publish()

    with psycopg.connect(settings.database_url or "") as conn:
        stored = conn.execute("SELECT count(*), bool_and(published) FROM ledger_dead_letters")
        assert stored.fetchone() == (position["dead"], True if position["dead"] else None)
    assert len(read_topic(settings, settings.dead_letter_topic)) == position["dead"]
