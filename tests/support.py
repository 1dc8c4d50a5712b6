"""Helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from ledger.settings import Settings


def ledger_env(settings: Settings) -> dict[str, str]:
    """The environment a `ledger` subprocess needs to use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_DATABASE_URL=settings.database_url or "",
        LEDGER_KAFKA_BOOTSTRAP=settings.kafka_bootstrap or "",
        LEDGER_TOPIC_PREFIX=settings.topic_prefix,
        LEDGER_HOME=str(settings.home),
    )
    return env


def wait_for(condition: Callable[[], object], timeout: float = 60.0, what: str = "") -> object:
    """Poll a condition until it holds (never a fixed sleep standing in for one)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.05)


def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record on a topic, from the beginning to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def profile_rows(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every profile in the projection, by customer id."""
    import psycopg

    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute("SELECT customer_id, profile FROM profiles").fetchall()
    return {row[0]: row[1] for row in rows}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()
