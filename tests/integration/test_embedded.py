"""ledger.embedded against real processes: the wheel's PostgreSQL and the Tansu broker.

Each test uses its own LEDGER_HOME under tmp_path and stops what it started, even on
failure, so no server outlives the suite.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from ledger import embedded

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ledger-home"
    try:
        yield path
    finally:
        embedded.down(path)


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1].split("/", 1)[0])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _cluster_id(bootstrap: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return str(admin.describe_cluster()["cluster_id"])
    finally:
        admin.close()


def _produce_and_consume(bootstrap: str, topic: str) -> bytes:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
        assert len(admin.describe_topics([topic])[0]["partitions"]) == 6
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        meta = producer.send(topic, key=b"customer-1", value=b"hello").get(timeout=10)
    finally:
        producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partition = TopicPartition(topic, meta.partition)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                return bytes(records[0].value)
    finally:
        consumer.close()
    raise AssertionError("the produced record was not consumed within 15 s")


def test_up_is_idempotent_and_down_keeps_the_database(home: Path) -> None:
    first = embedded.up(home)
    assert first.postgres_started and first.broker_started
    assert first.database_url.startswith("postgresql://postgres@127.0.0.1:")
    assert first.kafka_bootstrap.startswith("127.0.0.1:")

    second = embedded.up(home)
    assert (second.database_url, second.kafka_bootstrap) == (
        first.database_url,
        first.kafka_bootstrap,
    )
    assert not second.postgres_started and not second.broker_started
    assert embedded.running(home) == second

    with psycopg.connect(first.database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    assert _produce_and_consume(first.kafka_bootstrap, "crm.interactions") == b"hello"
    state = json.loads((home / "state.json").read_text())
    first_cluster = _cluster_id(first.kafka_bootstrap)
    assert first_cluster == state["cluster_id"]

    lines = embedded.down(home)
    assert len(lines) == 2 and "PostgreSQL" in lines[0] and "broker" in lines[1]
    assert not _port_open(_port(first.database_url))
    assert not _port_open(_port(first.kafka_bootstrap))
    assert embedded.running(home) is None
    assert embedded.down(home) == []

    third = embedded.up(home)
    assert third.postgres_started and third.broker_started
    with psycopg.connect(third.database_url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
    assert _cluster_id(third.kafka_bootstrap) != first_cluster  # how a client sees "new broker"
    admin = KafkaAdminClient(bootstrap_servers=third.kafka_bootstrap)
    try:
        assert admin.list_topics() == []  # memory-only broker: topics start empty
    finally:
        admin.close()


def test_servers_outlive_the_caller_and_concurrent_ups_start_once(home: Path) -> None:
    code = (
        "import dataclasses, json, sys; from pathlib import Path; from ledger import embedded;"
        "print(json.dumps(dataclasses.asdict(embedded.up(Path(sys.argv[1])))))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    results = [json.loads(proc.communicate(timeout=90)[0]) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert results[0]["database_url"] == results[1]["database_url"]
    assert results[0]["kafka_bootstrap"] == results[1]["kafka_bootstrap"]
    assert sorted(r["postgres_started"] for r in results) == [False, True]
    assert sorted(r["broker_started"] for r in results) == [False, True]

    alive = embedded.running(home)  # both callers have exited by now
    assert alive is not None and alive.database_url == results[0]["database_url"]
    with psycopg.connect(alive.database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_up_after_the_servers_were_killed(home: Path) -> None:
    first = embedded.up(home)
    postmaster = int((home / "postgres" / "postmaster.pid").read_text().split()[0])
    broker = json.loads((home / "state.json").read_text())["broker_pid"]
    os.kill(postmaster, signal.SIGKILL)
    os.kill(broker, signal.SIGKILL)

    again = embedded.up(home)
    assert again.postgres_started and again.broker_started
    assert again.database_url == first.database_url  # the freed ports are reused
    with psycopg.connect(again.database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert embedded.running(home) is not None


def test_a_foreign_data_folder_is_refused_with_one_line(home: Path) -> None:
    (home / "postgres").mkdir(parents=True)
    (home / "postgres" / "notes.txt").write_text("not a database")
    with pytest.raises(embedded.EmbeddedError) as error:
        embedded.up(home)
    assert "holds no PostgreSQL cluster" in str(error.value)
    assert "\n" not in str(error.value)
    assert embedded.running(home) is None
