"""A dead letter is identified by its record's cluster, topic, partition and offset: the
same offset on another cluster is another dead letter, and the same record twice is a bug
that fails the batch loudly instead of being ignored."""

from __future__ import annotations

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError
from kafka import KafkaProducer
from support import read_topic

from consumers.records import InboundRecord
from consumers.relay import DeadLetterRelay
from ledger import bootstrap
from ledger.settings import Settings
from store.dead_letters import DeadLetterCollision, refuse_dead_letter_collision
from store.offsets import OffsetMove


def _reject(settings: Settings, cluster: str, partition: int, expected: int | None) -> None:
    """Commit a batch of one malformed record at offset 0 of `partition` on `cluster`."""
    ingest = bootstrap.ingest(settings, seal=False)
    topic = settings.inbound_topic
    record = InboundRecord(cluster, topic, 0, 0, None, b"{not json")
    ingest.commit(
        ingest.decide(ingest.parse([record]), [OffsetMove(topic, partition, expected, 1, cluster)])
    )


def test_the_same_offset_on_another_cluster_is_another_dead_letter(settings: Settings) -> None:
    _reject(settings, "cluster-a", 0, None)
    _reject(settings, "cluster-b", 0, 1)
    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute(
            "SELECT source_log, source_offset FROM ledger_dead_letters ORDER BY 1"
        ).fetchall()
    assert rows == [("cluster-a", 0), ("cluster-b", 0)]


def test_a_second_dead_letter_for_one_record_fails_loudly(settings: Settings) -> None:
    _reject(settings, "cluster-a", 0, None)
    with pytest.raises(IntegrityError) as failed:
        _reject(settings, "cluster-a", 1, None)  # another partition's offset: the CAS passes
    with pytest.raises(DeadLetterCollision, match="already stored for the same Kafka record"):
        refuse_dead_letter_collision(failed.value)
    with psycopg.connect(settings.database_url or "") as conn:
        assert conn.execute("SELECT count(*) FROM ledger_dead_letters").fetchone() == (1,)


OLD_TABLE = """
DROP TABLE ledger_dead_letters;
CREATE TABLE ledger_dead_letters (
    source_topic text NOT NULL, source_partition int NOT NULL, source_offset bigint NOT NULL,
    event_id text, error_type text NOT NULL, error text NOT NULL, key bytea, value bytea,
    headers jsonb NOT NULL DEFAULT '[]', attempts int NOT NULL DEFAULT 0,
    published boolean NOT NULL DEFAULT false, recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_topic, source_partition, source_offset)
);
INSERT INTO ledger_dead_letters (source_topic, source_partition, source_offset, error_type,
    error, value, headers)
VALUES ('t', 0, 5, 'malformed', 'not JSON', 'x', '[["trace-id", "7431"]]'),
       ('t', 0, 6, 'malformed', 'not JSON', 'y', '[]');
"""


def test_init_migrates_a_table_made_before_dead_letters_named_their_cluster(
    settings: Settings,
) -> None:
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        conn.execute(OLD_TABLE)  # type: ignore[arg-type]
    bootstrap.init_schema(settings)
    bootstrap.init_schema(settings)  # idempotent
    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute(
            "SELECT source_log, source_offset, headers FROM ledger_dead_letters ORDER BY 2"
        ).fetchall()
    assert rows == [
        ("", 5, [{"name": b"trace-id".hex(), "value": "7431"}]),
        ("", 6, []),
    ]
    _reject(settings, "cluster-a", 0, None)  # offset 0 of the new cluster beside them


def test_a_dead_letter_kafka_refuses_is_published_bare_once_and_the_relay_goes_on(
    settings: Settings,
) -> None:
    """A topic's `max.message.bytes` may be lower than Kafka's default: the refused dead
    letter goes bare (the ledger's headers and `omitted`), the next one goes whole."""
    ingest = bootstrap.ingest(settings, seal=False)
    topic = settings.inbound_topic
    big = InboundRecord("c", topic, 0, 0, b"k", b"x" * 20_000, [(b"trace", b"t")])
    small = InboundRecord("c", topic, 0, 1, b"k", b"{not json")
    ingest.commit(ingest.decide(ingest.parse([big, small]), [OffsetMove(topic, 0, None, 2, "c")]))
    relay = DeadLetterRelay(
        settings.database_url or "",
        KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, max_request_size=10_000),
        settings.kafka_bootstrap or "",
        topic,
        settings.dead_letter_topic,
    )
    assert relay.publish_pending() == 2
    assert relay.publish_pending() == 0

    published = sorted(
        read_topic(settings, settings.dead_letter_topic),
        key=lambda r: int(dict(r.headers)["source_offset"]),
    )
    assert [dict(r.headers)["source_offset"] for r in published] == [b"0", b"1"]
    refused, whole = published
    assert refused.key is None and refused.value == b""
    assert "trace" not in dict(refused.headers)
    assert dict(refused.headers)["omitted"].startswith(
        b"the key, the value and the original headers (Kafka refused the record: "
        b"MessageSizeTooLargeError)"
    )
    assert whole.value == b"{not json" and "omitted" not in dict(whole.headers)


def test_a_keys_dead_letters_reach_the_topic_in_the_order_they_were_rejected(
    settings: Settings,
) -> None:
    ingest = bootstrap.ingest(settings, seal=False)
    topic = settings.inbound_topic
    batch = [InboundRecord("c", topic, 0, offset, b"C-1", b"{not json") for offset in range(8)]
    ingest.commit(ingest.decide(ingest.parse(batch), [OffsetMove(topic, 0, None, 8, "c")]))
    relay = DeadLetterRelay(
        settings.database_url or "",
        bootstrap.producer(settings),
        settings.kafka_bootstrap or "",
        topic,
        settings.dead_letter_topic,
    )
    assert relay.publish_pending() == 8
    published = read_topic(settings, settings.dead_letter_topic)  # one key: one partition
    assert [int(dict(r.headers)["source_offset"]) for r in published] == list(range(8))
