"""No dead letter lost across a broker restart: the embedded broker starts with empty
topics, so new rejections reuse the offsets of earlier ones; a dead letter's identity
includes the cluster, so both are stored, published and found by their event ids."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
from kafka import KafkaAdminClient
from support import dumps, keyed, publish, purchase, read_topic, run_ledger, serve, wait_for

from ledger.settings import Settings


def _ledger(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ledger ARGS` on the embedded servers under `home` (nothing else configured)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env |= {"LEDGER_HOME": str(home), "LEDGER_TOPIC_PREFIX": "rs"}
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _settings(home: Path) -> Settings:
    """The settings `ledger up` exports for the embedded servers under `home`."""
    up = _ledger(home, "up")
    assert up.returncode == 0, up.stderr
    exported = dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines())
    return Settings(
        database_url=exported["LEDGER_DATABASE_URL"],
        kafka_bootstrap=exported["LEDGER_KAFKA_BOOTSTRAP"],
        topic_prefix="rs",
        home=home,
    )


def _rejections(settings: Settings, n: int) -> list[str]:
    """Publish `n` invalid purchases (no lines) on one key; their event ids."""
    ids = []
    messages = []
    for _ in range(n):
        bad = purchase(customer_id="C-1", lines=[])
        ids.append(bad["event_id"])
        messages.append(keyed(bad))
    messages.append((b"C-1", dumps(purchase(customer_id="C-1", event_id=str(uuid.uuid4()))), []))
    publish(settings, messages)
    return ids


def test_a_broker_restart_between_two_batches_of_rejections_keeps_every_dead_letter(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ledger"
    try:
        settings = _settings(home)
        before = _rejections(settings, 3)
        assert _ledger(home, "consume", "--until-idle").returncode == 0

        assert _ledger(home, "down").returncode == 0
        settings = _settings(home)  # a new broker: empty topics, offsets from 0 again
        after = _rejections(settings, 3)
        done = _ledger(home, "consume", "--until-idle")
        assert done.returncode == 0, done.stderr
        assert "dead-lettered: invalid 3" in done.stdout

        with psycopg.connect(settings.database_url or "") as conn:
            rows = conn.execute(
                "SELECT event_id, source_offset, published FROM ledger_dead_letters"
            ).fetchall()
            clusters = conn.execute(
                "SELECT count(DISTINCT source_log) FROM ledger_dead_letters"
            ).fetchone()
        assert sorted(r[0] for r in rows) == sorted(before + after)
        assert sorted(r[1] for r in rows) == [0, 0, 1, 1, 2, 2]  # the same offsets, twice
        assert all(r[2] for r in rows)
        assert clusters == (2,)

        published = read_topic(settings, settings.dead_letter_topic)
        assert sorted(r.offset for r in published) == [0, 1, 2]
        assert len({dict(r.headers)["source_log"] for r in published}) == 1

        for client in serve(settings):
            for event_id in before + after:
                fate = client.get(f"/interactions/{event_id}")
                assert fate.status_code == 200, fate.text
                assert fate.json()["status"] == "dead_lettered"
                assert fate.json()["error_type"] == "invalid"
    finally:
        _ledger(home, "down")


def test_a_topic_created_again_is_read_from_its_start_and_keeps_every_dead_letter(
    settings: Settings,
) -> None:
    """On one cluster: a topic deleted and created again starts at offset 0 with a new
    topic id; nothing in it is skipped as already read."""
    before = _rejections(settings, 3)
    assert run_ledger(settings, "consume", "--until-idle").returncode == 0
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.delete_topics([settings.inbound_topic])
        wait_for(lambda: settings.inbound_topic not in admin.list_topics(), 30, "the delete")
    finally:
        admin.close()
    assert run_ledger(settings, "init").returncode == 0  # the same 6 partitions, offsets from 0
    after = _rejections(settings, 3)

    done = run_ledger(settings, "consume", "--until-idle")
    assert done.returncode == 0, done.stderr
    assert "recorded 1, duplicates 0, dead-lettered: invalid 3" in done.stdout
    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute("SELECT event_id FROM ledger_dead_letters").fetchall()
        recorded = conn.execute("SELECT count(*) FROM ledger_interactions").fetchone()
    assert sorted(r[0] for r in rows) == sorted(before + after)
    assert recorded == (2,)
