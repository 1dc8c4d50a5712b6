"""Helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import rfc8785
from kafka import KafkaConsumer, TopicPartition

from ledger import bootstrap
from ledger.ingest_worker import IngestStats
from ledger.settings import Settings
from producers.publisher import Publisher
from producers.simulator import SimulationPlan, simulate


def ledger_env(settings: Settings) -> dict[str, str]:
    """The environment a `ledger` subprocess needs to use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_DATABASE_URL=settings.database_url or "",
        LEDGER_KAFKA_BOOTSTRAP=settings.kafka_bootstrap or "",
        LEDGER_TOPIC_PREFIX=settings.topic_prefix,
        LEDGER_HOME=str(settings.home),
    )
    if settings.now is not None:
        env["LEDGER_NOW"] = settings.now.isoformat()
    return env


def run_ledger(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`ledger ARGS` in a subprocess with these settings (and `env` on top)."""
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args],
        env=ledger_env(settings) | env,
        capture_output=True,
        text=True,
        timeout=600,
    )


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


def audience_changes(settings: Settings) -> list[dict[str, Any]]:
    """Every change on the audiences topic, in partition order, as published."""
    return [json.loads(record.value) for record in read_topic(settings, settings.audiences_topic)]


def distinct_changes(changes: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Changes by (audience, customer, seq), as a reader that drops repeats keeps them; a
    repeat must be identical to the first."""
    kept: dict[tuple[str, str, int], dict[str, Any]] = {}
    for change in changes:
        key = (change["audience"], change["customer_id"], change["seq"])
        assert kept.setdefault(key, change) == change, f"a repeat differs: {change}"
    return kept


def final_members(changes: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Membership as a reader of the topic sees it: the last change by seq of each key."""
    last: dict[tuple[str, str], tuple[int, str]] = {}
    for change in changes:
        key = (change["audience"], change["customer_id"])
        if key not in last or change["seq"] > last[key][0]:
            last[key] = (change["seq"], change["change"])
    found: dict[str, set[str]] = {}
    for (audience, customer), (_, kind) in last.items():
        if kind == "entered":
            found.setdefault(audience, set()).add(customer)
    return found


def members(settings: Settings) -> dict[str, set[str]]:
    """Each audience's members, from the projection."""
    import psycopg

    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute(
            "SELECT audience, customer_id FROM audience_members WHERE member"
        ).fetchall()
    found: dict[str, set[str]] = {}
    for audience, customer_id in rows:
        found.setdefault(audience, set()).add(customer_id)
    return found


def profile_rows(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every profile in the projection, by customer id."""
    import psycopg

    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute("SELECT customer_id, profile FROM profiles").fetchall()
    return {row[0]: row[1] for row in rows}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def interaction(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "occurred_at": fields.pop("occurred_at", "2026-03-01T10:00:00Z"),
        "source": "pos-store-1",
        **fields,
    }


def enrollment(customer: str, card: str, **fields: Any) -> dict[str, Any]:
    return interaction("customer_enrolled", customer_id=customer, card_id=card, **fields)


def purchase(total: str = "12.50", **fields: Any) -> dict[str, Any]:
    """A purchase of one grocery line worth `total`, unless `lines` says otherwise."""
    line = {"sku": "sku-1", "category": "grocery", "quantity": 1, "unit_price": total}
    fields.setdefault("lines", [line])
    return interaction(
        "purchase",
        store_id="S-1",
        order_id=str(uuid.uuid4()),
        currency="EUR",
        total=total,
        **fields,
    )


def publish(settings: Settings, messages: list[tuple[bytes | None, bytes, list[Any]]]) -> None:
    producer = bootstrap.producer(settings)
    for key, value, headers in messages:
        producer.send(settings.inbound_topic, key=key, value=value, headers=headers)
    producer.flush()
    producer.close()


def keyed(obj: dict[str, Any], headers: list[Any] | None = None) -> tuple[bytes, bytes, list[Any]]:
    key = obj.get("customer_id") or obj.get("card_id") or obj.get("partner_id")
    return (str(key).encode(), dumps(obj), headers or [])


def ingest(settings: Settings) -> IngestStats:
    return bootstrap.ingest_worker(settings).run(threading.Event(), until_idle=True)


def project(settings: Settings) -> int:
    return bootstrap.ledger(settings).project(threading.Event(), until_idle=True).processed


def simulated(settings: Settings, plan: SimulationPlan) -> Settings:
    """The plan's simulated traffic published, ingested and projected."""
    publisher = Publisher(bootstrap.producer(settings), settings.inbound_topic)
    for obj in simulate(plan):
        publisher.publish(obj)
    publisher.flush()
    ingest(settings)
    project(settings)
    return settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(settings: Settings, workers: int = 1) -> Iterator[httpx.Client]:
    """A running `ledger serve` and a client for it; on the way out, the server must have
    logged no traceback (no request ended in an unhandled error)."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port)]
            + ["--workers", str(workers)],
            env=ledger_env(settings) | ({"LEDGER_API_TOKEN": settings.api_token or ""}),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

        def errors() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")

        def up() -> bool:
            assert server.poll() is None, errors()
            try:
                return client.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_for(up, 60, "the API to answer /health")
            yield client
        finally:
            client.close()
            server.terminate()
            server.wait(timeout=30)
        assert "Traceback" not in errors(), errors()


def recomputed_hashes(events: list[dict[str, Any]]) -> int:
    """Check a history as an auditor holding only it would, with an independent RFC 8785
    implementation (the `rfc8785` package) and SHA-256: every event's `hash` from its
    stream, version, type, `hashed_payload` and `prev_hash`, and every `prev_hash` the
    hash of the stream's previous version (the genesis hash at version 1). Returns how
    many hashes were recomputed; raises AssertionError naming the first that fails."""
    last: dict[str, tuple[int, str]] = {}
    for event in sorted(events, key=lambda e: (e["stream"], e["version"])):
        envelope = {
            "stream": event["stream"],
            "version": event["version"],
            "type": event["type"],
            "payload": event["hashed_payload"],
            "prev_hash": event["prev_hash"],
        }
        digest = hashlib.sha256(rfc8785.dumps(envelope)).hexdigest()
        assert digest == event["hash"], f"{event['stream']} v{event['version']}: hash differs"
        version, previous = last.get(event["stream"], (0, "0" * 64))
        assert event["version"] == version + 1, f"{event['stream']}: v{version + 1} missing"
        assert event["prev_hash"] == previous, f"{event['stream']} v{event['version']}: link"
        last[event["stream"]] = (event["version"], event["hash"])
    return len(events)


def _sql(settings: Settings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def plaintext_rows(settings: Settings, text: str) -> list[str]:
    """Every column of every table, in any schema, holding `text`: as text, or as raw bytes."""
    columns = _sql(
        settings,
        "SELECT c.table_schema, c.table_name, c.column_name, c.data_type "
        "FROM information_schema.columns c JOIN information_schema.tables t "
        "USING (table_schema, table_name) WHERE t.table_type = 'BASE TABLE' "
        "AND c.table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    found = []
    for schema, table, column, kind in columns:
        where = f'"{schema}"."{table}" WHERE '
        if kind == "bytea":
            query, needle = where + f'position(%s IN "{column}") > 0', text.encode()
        else:
            query, needle = where + f'"{column}"::text LIKE %s', f"%{text}%"
        if _sql(settings, "SELECT count(*) FROM " + query, needle)[0][0]:
            found.append(f"{schema}.{table}.{column}")
    return found


def decided_batch(
    ingest_: Any, settings: Settings, partition: int, objs: list[Any], at: int = 0
) -> Any:
    """A batch of `objs` from `partition` (offsets from `at`), decided by `ingest_` (a
    `services.ingest.Ingest`) but not committed: what two workers race with."""
    from consumers.records import InboundRecord
    from store.offsets import OffsetMove

    topic = settings.inbound_topic
    batch = [
        InboundRecord("c", topic, partition, at + offset, b"key", dumps(obj))
        for offset, obj in enumerate(objs)
    ]
    moves = [OffsetMove(topic, partition, at or None, at + len(objs), "c")]
    return ingest_.decide(ingest_.parse(batch), moves)
