"""`/metrics` and `/health`: what operations watch, read where it is true.

Counts and lags come from PostgreSQL and Kafka at scrape time (a custom collector), so any
API replica reports the same figures whichever process did the work; request latencies
are this process's own (a histogram per route).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from psycopg import Connection
from psycopg_pool import ConnectionPool

from ledger.settings import Settings
from projections import positions
from services import reads
from store import event_store
from store.ingest_batches import BATCH_BUCKETS

KAFKA_WAIT = 3.0  # seconds /health and /metrics wait for Kafka's end offsets


class Metrics(Collector):
    def __init__(self, pool: ConnectionPool[Any], settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._kafka: KafkaConsumer | None = None
        self._kafka_lock = threading.Lock()  # kafka-python consumers are not thread-safe
        self.registry = CollectorRegistry()
        self._latency = Histogram(
            "ledger_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self._cache = Counter(
            "ledger_api_profile_cache",
            "GET /customers/{id} answered from this process's profile cache (hit) or not",
            ["result"],
            registry=self.registry,
        )
        self.registry.register(self)

    def cached(self, hit: bool) -> None:
        self._cache.labels("hit" if hit else "miss").inc()

    def observe(self, route: str, seconds: float) -> None:
        self._latency.labels(route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """This process's metrics; with `ledger serve --workers N`, every worker's, summed
        through prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR)."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(self)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def health(self, conn: Connection[Any], ends: dict[int, int] | None) -> dict[str, Any]:
        """Positions and lags (contract section 6's `/health`); `ends`: `end_offsets()`,
        asked before taking `conn`, so a slow Kafka holds no database connection."""
        position, head = positions.position(conn), event_store.head(conn)
        recorded = reads.recorded_offsets(conn, self._settings.inbound_topic)
        ingest_lag = (
            None
            if ends is None
            else sum(max(0, end - recorded.get(p, 0)) for p, end in ends.items())
        )
        return {
            "status": "ok" if ends is not None else "kafka unreachable",
            "position": position,
            "head": head,
            "projection_lag": max(0, head - position),
            "ingest_lag": ingest_lag,
        }

    def end_offsets(self) -> dict[int, int] | None:
        """The inbound topic's end offset per partition (what Kafka's ListOffsets answers);
        None if Kafka does not answer within a few seconds."""
        topic = self._settings.inbound_topic
        if not self._kafka_lock.acquire(timeout=KAFKA_WAIT):
            return None  # another request is already waiting on an unanswering Kafka
        try:
            if self._kafka is None:
                self._kafka = KafkaConsumer(
                    bootstrap_servers=self._settings.kafka_bootstrap,
                    client_id="ledger-api",
                    enable_auto_commit=False,
                    request_timeout_ms=int(KAFKA_WAIT * 1000),
                    bootstrap_timeout_ms=int(KAFKA_WAIT * 1000),
                    # kafka-python wants the request timeout above these; no group is joined
                    session_timeout_ms=int(KAFKA_WAIT * 800),
                    heartbeat_interval_ms=int(KAFKA_WAIT * 200),
                    fetch_max_wait_ms=int(KAFKA_WAIT * 100),
                )
            partitions = self._kafka.partitions_for_topic(topic) or set()
            ends = self._kafka.end_offsets([TopicPartition(topic, p) for p in partitions])
        except KafkaError:
            return None
        finally:
            self._kafka_lock.release()
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    def collect(self) -> Iterator[Any]:
        ends = self.end_offsets()
        with self._pool.connection() as conn, conn.transaction():
            recorded, dead = reads.ingest_counts(conn, self._settings.inbound_topic)
            health = self.health(conn, ends)
            batches = reads.batch_sizes(conn)
        yield _batch_histogram(batches)
        by_type = CounterMetricFamily(
            "ledger_interactions_recorded", "Interactions recorded, by type", labels=["type"]
        )
        for type_name, count in sorted(recorded.items()):
            by_type.add_metric([type_name], count)
        yield by_type
        dead_letters = CounterMetricFamily(
            "ledger_interactions_dead_lettered",
            "Inbound messages dead-lettered, by error type",
            labels=["error_type"],
        )
        for error_type, count in sorted(dead.items()):
            dead_letters.add_metric([error_type], count)
        yield dead_letters
        for name, text in (
            ("ingest_lag", "Kafka end offsets minus recorded offsets, all partitions"),
            ("projection_lag", "Ledger events not yet projected"),
            ("position", "The position every projection has reached"),
        ):
            if health[name] is not None:
                yield GaugeMetricFamily(f"ledger_{name}", text, value=health[name])
        yield GaugeMetricFamily(
            "ledger_kafka_up",
            "1 if Kafka answered this scrape",
            value=int(health["ingest_lag"] is not None),
        )


def _batch_histogram(rows: list[tuple[int, int, int]]) -> HistogramMetricFamily:
    """Records per committed ingest batch, as a Prometheus histogram."""
    counts = {le: batches for le, batches, _ in rows}
    cumulative, buckets = 0, []
    for bound in BATCH_BUCKETS:
        cumulative += counts.get(bound, 0)
        buckets.append((str(bound), cumulative))
    total = sum(batches for _, batches, _ in rows)
    buckets.append(("+Inf", total))
    return HistogramMetricFamily(
        "ledger_ingest_batch_size",
        "Kafka records per committed ingest batch",
        buckets=buckets,
        sum_value=sum(records for _, _, records in rows),
    )
