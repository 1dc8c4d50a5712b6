"""Publishing interactions to the inbound topic, keyed by the contract's key rule.

Every interaction of one key lands on one partition, in order: the key is `customer_id`,
else `card_id`, else `partner_id`, and kafka-python partitions keys with murmur2, as the
Java client does. The producer is idempotent with `acks=all` (see `ledger.bootstrap`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from domain.interactions import routing_key


def encode(obj: Mapping[str, Any]) -> bytes:
    """The JSON a publisher sends: compact UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Publisher:
    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._pending: list[FutureRecordMetadata] = []
        self._acknowledged = 0

    def publish(self, obj: Mapping[str, Any], raw: bytes | None = None) -> None:
        """Send one interaction (`raw`: its exact bytes, when they came from a file)."""
        key = routing_key(obj)
        self.publish_raw(
            key.encode("utf-8") if key else None, raw if raw is not None else encode(obj)
        )

    def publish_raw(
        self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        """Send bytes as they are (the demo shows malformed input; redrive sends dead
        letters again with their headers)."""
        sent = self._producer.send(self._topic, key=key, value=value, headers=headers)
        self._pending.append(sent)
        if len(self._pending) >= 10_000:
            self.flush()

    def flush(self) -> int:
        """Wait until every message sent so far is acknowledged (raise if one failed);
        return how many this publisher has had acknowledged in all."""
        self._producer.flush()
        sent, self._pending = self._pending, []
        for future in sent:
            future.get(timeout=60)
        self._acknowledged += len(sent)
        return self._acknowledged
