"""The ledger at the edges an attacker-style review found: a topic made outside the ledger,
PostgreSQL restarting under the API and under the workers, `ledger serve` where it cannot
listen, and settings or audience files that cannot be used. Real servers throughout: the
session's PostgreSQL is restarted on its own port, so later tests find it as before."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO

import httpx
import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from support import (
    enrollment,
    free_port,
    ingest,
    keyed,
    ledger_env,
    publish,
    purchase,
    run_ledger,
    serve,
    wait_for,
)

from ledger import embedded
from ledger.settings import Settings
from projections import positions
from store import event_store
from store.locks import Lock


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command wrote on stderr (never a traceback)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- a topic created outside the ledger ---------------------------------------------------


def auto_create(settings: Settings, topic: str) -> None:
    """The topic as a producer's auto-create makes it: no retention.ms of ours."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        producer.send(topic, key=b"C-1", value=keyed(enrollment("C-1", "K-1"))[1]).get(30)
    finally:
        producer.close()


def create_plainly(settings: Settings, topic: str) -> None:
    """The topic as an admin makes it without configs, then one interaction on it."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        admin.close()
    publish(settings, [keyed(enrollment("C-1", "K-1"))])


@pytest.mark.parametrize("make", [auto_create, create_plainly], ids=["auto-created", "no-configs"])
def test_a_topic_made_outside_the_ledger_gets_a_warning_not_a_failure(
    settings: Settings, make: Callable[[Settings, str], None]
) -> None:
    outside = replace(settings, topic_prefix=settings.topic_prefix + "-outside")
    make(outside, outside.inbound_topic)
    init = run_ledger(outside, "init")
    assert init.returncode == 0, init.stderr
    assert "Traceback" not in init.stderr
    warned = [line for line in init.stderr.splitlines() if "retention.ms" in line]
    assert len(warned) == 1 and outside.inbound_topic in warned[0], init.stderr
    consumed = run_ledger(outside, "consume", "--until-idle")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.startswith("recorded 1,"), consumed.stdout


# --- PostgreSQL restarting ----------------------------------------------------------------


@pytest.fixture
def postgres_home(settings: Settings) -> Path:
    """LEDGER_HOME of the session's embedded PostgreSQL (its data folder's parent)."""
    with psycopg.connect(settings.database_url or "") as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    return Path(row[0]).parent


def start_postgres_again(home: Path, settings: Settings) -> None:
    """up() after stop_postgres(): the same port, so every URL of the session holds."""
    url = embedded.up(home).database_url
    assert url.rsplit("/", 1)[0] == (settings.database_url or "").rsplit("/", 1)[0]


@pytest.fixture
def restartable(postgres_home: Path, settings: Settings) -> Iterator[Path]:
    """The home whose PostgreSQL a test stops; started again whatever the test did."""
    yield postgres_home
    start_postgres_again(postgres_home, settings)


READS = {
    "/customers/C-1": 200,
    "/customers/C-1/history": 200,
    "/customers/C-1/export": 200,
    "/customers/C-nobody": 404,
    "/partners/P-nobody": 404,
    "/audiences": 200,
    "/audiences/new_members/members": 200,
    "/interactions/never-published": 404,
    "/health": 200,
    "/metrics": 200,
}


def test_the_api_answers_every_read_right_after_a_postgresql_restart(
    small: Settings, restartable: Path
) -> None:
    for api in serve(small):  # on the way out: the server logged no traceback
        assert {path: api.get(path).status_code for path in READS} == READS
        embedded.stop_postgres(restartable)
        start_postgres_again(restartable, small)
        # Every pooled connection is dead now; the first reads must still answer.
        for _ in range(3):
            assert {path: api.get(path).status_code for path in READS} == READS


def test_the_api_answers_503_with_retry_after_while_postgresql_is_down(
    small: Settings, restartable: Path
) -> None:
    for api in serve(small):
        assert api.get("/customers/C-1/history").status_code == 200
        embedded.stop_postgres(restartable)
        down = api.get("/customers/C-1/history")
        assert down.status_code == 503 and down.headers["Retry-After"].isdigit(), down.text
        start_postgres_again(restartable, small)
        assert api.get("/customers/C-1/history").status_code == 200


def _twenty_reads(api: httpx.Client) -> None:
    for _ in range(20):
        assert api.get("/partners/P-nobody").status_code == 404


def test_a_grown_pool_answers_the_first_read_after_a_postgresql_restart(
    small: Settings, restartable: Path
) -> None:
    """Every pooled connection is dead after a restart; psycopg_pool found them one checkout
    at a time with a growing pause, so a pool grown by load answered 503 for half a minute."""
    for api in serve(small):
        threads = [threading.Thread(target=_twenty_reads, args=(api,)) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        embedded.stop_postgres(restartable)
        start_postgres_again(restartable, small)
        assert [api.get("/partners/P-nobody").status_code for _ in range(3)] == [404] * 3
        assert api.get("/customers/C-1/history").status_code == 200


def count_recorded(settings: Settings) -> tuple[int, int]:
    """(rows, distinct event ids) of the interaction index: equal when nothing doubled."""
    with psycopg.connect(settings.database_url or "") as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM ledger_interactions"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def purchases(count: int) -> list[tuple[bytes, bytes, list[object]]]:
    return [keyed(purchase(customer_id=f"C-{i % 7}")) for i in range(count)]


def test_consume_keeps_running_through_a_postgresql_restart_and_records_each_once(
    settings: Settings, restartable: Path
) -> None:
    publish(settings, [keyed(enrollment(f"C-{i}", f"K-{i}")) for i in range(7)])
    publish(settings, purchases(40))
    with tempfile.TemporaryFile("w+") as err:
        worker = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "consume"],
            env=ledger_env(settings),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )

        try:
            wait_for(lambda: count_recorded(settings) == (47, 47), 120, "the first 47")
            embedded.stop_postgres(restartable)
            publish(settings, purchases(30))  # the worker polls them and cannot commit
            wait_for(lambda: said(err, "PostgreSQL connection lost"), 60, "the loss to be told")
            assert worker.poll() is None, "the worker exited when PostgreSQL went away"
            start_postgres_again(restartable, settings)
            publish(settings, purchases(20))
            wait_for(lambda: count_recorded(settings) == (97, 97), 120, "all 97, once each")
            assert worker.poll() is None, "the worker exited after PostgreSQL came back"
        finally:
            worker.send_signal(signal.SIGTERM)
            out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        told = said(err, "")
    assert "Traceback" not in told, told
    assert "retrying for up to 60 s" in told, told
    assert out.startswith("recorded 97, duplicates 0"), out  # the runs' stats, summed
    assert count_recorded(settings) == (97, 97)


def test_project_until_idle_finishes_through_a_postgresql_restart(
    small: Settings, restartable: Path
) -> None:
    publish(small, purchases(50))
    ingest(small)
    with psycopg.connect(small.database_url or "") as conn:
        head, at_start = event_store.head(conn), positions.position(conn)
    # Hold the projections' lock, so the runner is waiting on PostgreSQL when it stops.
    holder = psycopg.connect(small.database_url or "", autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (int(Lock.PROJECTIONS),))
    with tempfile.TemporaryFile("w+") as err:
        projector = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "project", "--until-idle"],
            env=ledger_env(small),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            wait_for(lambda: said(err, "waiting for it to stop"), 60, "the runner to wait")
            embedded.stop_postgres(restartable)  # ends the holder's session and its lock
            holder.close()
            wait_for(lambda: said(err, "PostgreSQL connection lost"), 60, "the loss to be told")
            start_postgres_again(restartable, small)
            out, _ = projector.communicate(timeout=120)
        finally:
            if projector.poll() is None:
                projector.kill()
        told = said(err, "")
    assert projector.returncode == 0, told
    assert "Traceback" not in told, told
    with psycopg.connect(small.database_url or "") as conn:
        assert positions.position(conn) == head
    assert out.startswith(f"projected {head - at_start} event(s); projections at position {head};")


def said(err: IO[str], text: str) -> str:
    """The stderr written so far if it holds `text`, else ''."""
    err.seek(0)
    told = err.read()
    return told if text in told else ""


# --- `ledger serve` where it cannot listen ------------------------------------------------


@pytest.mark.parametrize("port", ["99999", "0", "-1", "65536", "http"])
def test_serve_refuses_a_port_outside_1_to_65535(settings: Settings, port: str) -> None:
    result = run_ledger(settings, "serve", "--port", port)
    assert result.returncode == 2
    assert "1 to 65535" in result.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_ledger(settings, "serve", "--port", str(port))
    assert result.returncode == 1
    assert one_line(result) == (
        f"ledger serve: cannot listen on 127.0.0.1:{port}: address already in use"
    )


def test_serve_on_an_address_this_host_does_not_have_says_so_in_one_line(
    settings: Settings,
) -> None:
    port = free_port()
    result = run_ledger(settings, "serve", "--host", "192.0.2.1", "--port", str(port))
    assert result.returncode == 1
    assert one_line(result).startswith(f"ledger serve: cannot listen on 192.0.2.1:{port}: ")


# --- settings and audience files that cannot be used --------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LEDGER_KAFKA_BOOTSTRAP", "host:notaport"),
        ("LEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:9092,broker:99999"),
        ("LEDGER_NOW", "0000-01-01T00:00:00Z"),
        ("LEDGER_NOW", "99999-01-01T00:00:00Z"),
        ("LEDGER_NOW", "0001-01-01T00:00:00+01:00"),
    ],
)
def test_an_unusable_setting_is_refused_in_one_line_naming_it(
    settings: Settings, name: str, value: str
) -> None:
    result = run_ledger(settings, "profile", "C-1", **{name: value})
    assert result.returncode == 1
    refused = one_line(result)
    assert refused.startswith(f"ledger profile: {name} ") and repr(value.split(",")[-1]) in refused


def test_an_audience_file_nested_3000_deep_is_refused_naming_the_file(
    settings: Settings, tmp_path: Path
) -> None:
    deep = tmp_path / "deep.toml"
    condition = "{ not = " * 3000 + '{ field = "nps", op = ">=", value = 9 }' + " }" * 3000
    deep.write_text(f'[audiences.deep]\ndescription = "deep"\nnot = {condition}\n')
    result = run_ledger(settings, "audience", LEDGER_AUDIENCES=str(deep))
    assert result.returncode == 1
    refused = one_line(result)
    assert refused.startswith(f"ledger audience: {deep}, line 3: ") and "deeper than" in refused
