"""The `ledger` command as a user runs it: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
from support import ledger_env, wait_for

from domain.interactions import INTERACTION_TYPES
from ledger.settings import Settings


def run(
    env: dict[str, str], *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args],
        env=env,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def line(**fields: Any) -> str:
    base = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-03-01T10:00:00Z",
        "source": "pos-store-9",
    }
    return json.dumps(base | fields)


def test_up_prints_exports_reuses_running_servers_and_down_stops_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_HOME"] = str(tmp_path / "home")
    try:
        first = run(env, "up")
        assert first.returncode == 0, first.stderr
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in first.stdout.splitlines()
        )
        assert set(exports) == {"LEDGER_DATABASE_URL", "LEDGER_KAFKA_BOOTSTRAP"}
        with psycopg.connect(exports["LEDGER_DATABASE_URL"]) as conn:
            assert conn.execute("SELECT to_regclass('ledger_events')").fetchone() != (None,)
        second = run(env, "up")
        assert second.stdout == first.stdout
    finally:
        down = run(env, "down")
    assert down.returncode == 0 and "stopped" in down.stdout


def test_produce_reports_invalid_lines_by_number_and_sends_the_rest(settings: Settings) -> None:
    env = ledger_env(settings)
    data = "\n".join(
        [
            line(type="customer_enrolled", customer_id="C-1", card_id="K-1"),
            line(type="survey_answered", customer_id="C-1", survey_id="S", score="9"),
            line(type="survey_answered", customer_id="C-1", survey_id="S", score=9),
        ]
    )
    produced = run(env, "produce", stdin=data.encode())
    assert produced.returncode == 1
    assert "line 2" in one_line_error(produced) and "score" in produced.stderr
    consumed = run(env, "consume", "--until-idle")
    assert consumed.returncode == 0, consumed.stderr
    assert "recorded 2" in consumed.stdout
    assert run(env, "project", "--until-idle").returncode == 0

    shown = run(env, "profile", "C-1", "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["nps"] == 9
    unknown = run(env, "profile", "C-404")
    assert unknown.returncode == 1 and "C-404" in one_line_error(unknown)


def test_simulate_is_deterministic_under_a_seed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    outs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        result = run(env, "simulate", "--events", "300", "--seed", "5", "--out", str(out))
        assert result.returncode == 0, result.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 300
    types = {json.loads(line)["type"] for line in outs[0].splitlines()}
    assert {"purchase_returned", "note_added"} <= types  # section 8's by default


def test_simulate_makes_every_type_of_section_8_by_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    out = tmp_path / "retail.jsonl"
    result = run(env, "simulate", "--events", "8000", "--seed", "7", "--out", str(out))
    assert result.returncode == 0, result.stderr
    types = {json.loads(line)["type"] for line in out.read_text().splitlines()}
    assert set(INTERACTION_TYPES) - {"customers_unmerged"} <= types  # few unmerges: none here
    v1 = tmp_path / "v1.jsonl"
    run(env, "simulate", "--events", "300", "--no-retail", "--out", str(v1))
    assert not {json.loads(line)["type"] for line in v1.read_text().splitlines()} & {
        "purchase_returned",
        "note_added",
        "card_replaced",
    }


def test_schema_prints_the_json_schema_and_usage_errors_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    schema = run(env, "schema")
    assert schema.returncode == 0
    assert "purchase" in json.dumps(json.loads(schema.stdout))
    assert run(env, "no-such-command").returncode == 2
    assert run(env, "profile").returncode == 2


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:9/nowhere"
    env["LEDGER_KAFKA_BOOTSTRAP"] = "127.0.0.1:9"
    result = run(env, "init")
    assert result.returncode == 1
    assert "cannot reach PostgreSQL" in one_line_error(result)


def test_a_stored_offset_past_the_end_is_refused_with_a_reason(settings: Settings) -> None:
    env = ledger_env(settings)
    run(env, "produce", stdin=line(type="card_swiped", card_id="K-1", store_id="S").encode())
    assert run(env, "consume", "--until-idle").returncode == 0
    with psycopg.connect(settings.database_url or "") as conn:
        conn.execute("UPDATE ledger_offsets SET next_offset = next_offset + 1000")
    result = run(env, "consume", "--until-idle")
    assert result.returncode == 1
    assert "ends at" in one_line_error(result)


def test_offsets_stored_against_another_broker_restart_from_zero(settings: Settings) -> None:
    env = ledger_env(settings)
    run(env, "produce", stdin=line(type="card_swiped", card_id="K-1", store_id="S").encode())
    assert run(env, "consume", "--until-idle").returncode == 0
    with psycopg.connect(settings.database_url or "") as conn:
        conn.execute("UPDATE ledger_offsets SET cluster_id = 'an-old-broker'")
    again = run(env, "consume", "--until-idle")
    assert again.returncode == 0, again.stderr
    assert "recorded 0, duplicates 1" in again.stdout


def test_sigterm_stops_the_consumer_cleanly_after_its_batch(settings: Settings) -> None:
    env = ledger_env(settings)
    run(env, "produce", stdin=line(type="card_swiped", card_id="K-1", store_id="S").encode())
    worker = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "consume"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def recorded() -> bool:
        with psycopg.connect(settings.database_url or "") as conn:
            return conn.execute("SELECT count(*) FROM ledger_interactions").fetchone() == (1,)

    wait_for(recorded, 60, "the interaction to be recorded")
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "recorded 1" in out


def test_the_demo_shows_returns_and_sales_notes(settings: Settings) -> None:
    env = {**ledger_env(settings), "COLUMNS": "250"}  # rich's width: no column wrapped
    shown = run(env, "demo", "--events", "1500", "--customers", "80")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    counts = {kind: int(n) for kind, n in re.findall(r"(purchase_returned|note_added) (\d+)", text)}
    assert counts["purchase_returned"] > 0 and counts["note_added"] > 0
    assert "┃ returns ┃ net spend ┃" in text  # the top customers' columns
