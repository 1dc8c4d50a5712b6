"""`ledger verify`, `digest`, `replay` and `profile --as-of` as an auditor runs them, on a
ledger tampered with directly in PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import psycopg
import pytest
from support import (
    enrollment,
    ingest,
    interaction,
    keyed,
    project,
    publish,
    purchase,
    run_ledger,
    simulated,
    wait_for,
)

from domain.aggregates import customer_stream, partner_stream, stream_id
from domain.canonical import chain_hash
from ledger.settings import Settings
from producers.simulator import SimulationPlan
from projections.compare import differences

PLAN = SimulationPlan(customers=30, partners=4, events=700, seed=11, faults=False, retail=True)


@pytest.fixture
def ledger(settings: Settings) -> Settings:
    return simulated(settings, PLAN)


def records(settings: Settings, stream: str) -> list[tuple[int, dict[str, Any]]]:
    """(version, decoded event) of one stream, in version order."""
    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute(
            "SELECT originator_version, state FROM ledger_events WHERE originator_id = %s "
            "ORDER BY originator_version",
            (stream_id(stream),),
        ).fetchall()
    return [(version, orjson.loads(state)) for version, state in rows]


def tamper(settings: Settings, sql: str, *params: Any) -> None:
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        conn.execute(sql, params)  # type: ignore[arg-type]


def write(settings: Settings, stream: str, version: int, event: dict[str, Any] | bytes) -> None:
    state = event if isinstance(event, bytes) else orjson.dumps(event)
    tamper(
        settings,
        "UPDATE ledger_events SET state = %s WHERE originator_id = %s AND originator_version = %s",
        state,
        stream_id(stream),
        version,
    )


def verify(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    done = run_ledger(settings, "verify", "--json", *args)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr and done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def long_streams(settings: Settings, count: int) -> list[str]:
    """Customers whose own stream has at least 4 records."""
    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute(
            "SELECT stream FROM ledger_interactions WHERE stream LIKE 'customer-%%' "
            "GROUP BY stream HAVING count(*) >= 4 ORDER BY stream LIMIT %s",
            (count,),
        ).fetchall()
    assert len(rows) == count
    return [row[0] for row in rows]


def test_an_untouched_ledger_verifies_clean_and_replays_to_the_live_projections(
    ledger: Settings, tmp_path: Any
) -> None:
    code, report = verify(ledger)
    assert (code, report["findings"], report["differences"]) == (0, [], [])
    assert report["records"] > PLAN.events * 0.9 and report["position"] > 0

    replayed = run_ledger(ledger, "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert "into schema 'ledger_replay'" in replayed.stdout
    with (
        psycopg.connect(ledger.database_url or "") as live,
        psycopg.connect(ledger.database_url or "") as again,
    ):
        assert list(differences(live, "public", again, "ledger_replay")) == []
    twice = run_ledger(ledger, "replay", "--schema", "second_replay")
    assert twice.returncode == 0, twice.stderr
    with (
        psycopg.connect(ledger.database_url or "") as one,
        psycopg.connect(ledger.database_url or "") as two,
    ):
        assert list(differences(one, "ledger_replay", two, "second_replay")) == []
    refused = run_ledger(ledger, "replay", "--schema", "public")
    assert refused.returncode == 2 and "not public" in refused.stderr
    tamper(ledger, "CREATE SCHEMA mine; CREATE TABLE mine.precious (x int)")
    kept = run_ledger(ledger, "replay", "--schema", "mine")
    assert kept.returncode == 1 and "holds no earlier replay" in kept.stderr
    with psycopg.connect(ledger.database_url or "") as conn:
        assert conn.execute("SELECT to_regclass('mine.precious') IS NOT NULL").fetchone() == (True,)

    digest = run_ledger(ledger, "digest")
    assert digest.returncode == 0, digest.stderr
    assert run_ledger(ledger, "digest").stdout == digest.stdout, "the same ledger, the same root"
    kept = tmp_path / "digest.json"
    kept.write_text(digest.stdout)
    publish(ledger, [keyed(purchase(customer_id="C-00001"))])  # the ledger grows
    ingest(ledger)
    project(ledger)
    code, report = verify(ledger, "--digest", str(kept))
    assert (code, report["digest"], report["findings"]) == (0, None, [])
    readable = run_ledger(ledger, "verify", "--digest", str(kept))
    assert readable.returncode == 0 and "extends the digest" in readable.stdout


def test_verify_names_every_tampering_and_nothing_else(ledger: Settings) -> None:
    edited, rehashed, removed, swapped, garbled, tail, listed, flung = long_streams(ledger, 8)
    named: set[tuple[str, str, int, str | None]] = set()

    version, event = records(ledger, edited)[2]
    event["payload"]["occurred_at"] = "2020-01-01T00:00:00Z"
    write(ledger, edited, version, event)
    named.add(("edited", edited, version, event["event_id"]))

    version, event = records(ledger, rehashed)[1]
    event["payload"]["source"] = "pos-forged"
    event["hash"] = chain_hash(
        rehashed, version, event["kind"], event["payload"], event["prev_hash"]
    )
    write(ledger, rehashed, version, event)
    named.add(("edited", rehashed, version, event["event_id"]))

    version, event = records(ledger, removed)[1]
    tamper(
        ledger,
        "DELETE FROM ledger_events WHERE originator_id = %s AND originator_version = %s",
        stream_id(removed),
        version,
    )
    named.add(("removed", removed, version, event["event_id"]))

    (v2, e2), (v3, e3) = records(ledger, swapped)[1:3]
    write(ledger, swapped, v2, e3)
    write(ledger, swapped, v3, e2)
    named |= {
        ("reordered", swapped, v2, e3["event_id"]),
        ("reordered", swapped, v3, e2["event_id"]),
    }

    version, event = records(ledger, garbled)[2]
    write(ledger, garbled, version, b"\x00 not json")
    named.add(("unreadable", garbled, version, event["event_id"]))

    version, event = records(ledger, tail)[-1]
    tamper(
        ledger,
        "DELETE FROM ledger_events WHERE originator_id = %s AND originator_version = %s",
        stream_id(tail),
        version,
    )
    named.add(("removed", tail, version, event["event_id"]))

    version, event = records(ledger, listed)[1]
    write(ledger, listed, version, b"[1, 2, 3]")  # JSON, but not a record
    named.add(("unreadable", listed, version, event["event_id"]))

    stored = records(ledger, flung)
    (version, event), last = stored[1], stored[-1][0]
    tamper(
        ledger,
        "UPDATE ledger_events SET originator_version = 1000000000000 "
        "WHERE originator_id = %s AND originator_version = %s",
        stream_id(flung),
        version,
    )
    named |= {
        ("removed", flung, version, event["event_id"]),
        ("removed", flung, last + 1, None),
        ("reordered", flung, 10**12, event["event_id"]),
    }

    untouched = "C-00030"
    tampered_streams = {edited, rehashed, removed, swapped, garbled, tail, listed, flung}
    assert customer_stream(untouched) not in tampered_streams
    tamper(
        ledger,
        "UPDATE profiles SET profile = jsonb_set(profile, '{purchase_count}', '999') "
        "WHERE customer_id = %s",
        untouched,
    )

    code, report = verify(ledger)
    assert code == 1
    got = {(f["kind"], f["stream"], f["version"], f["event_id"]) for f in report["findings"]}
    assert got == named, "each tampering named once, by stream, version and event id"
    for finding in report["findings"]:
        assert UUID(finding["stream_id"]) == stream_id(finding["stream"])
    profiles = {d["key"] for d in report["differences"] if d["what"] == "profile"}
    assert untouched in profiles, "the edited projection row"
    tampered = {s.removeprefix("customer-") for s in tampered_streams}
    assert profiles <= tampered | {untouched}, "no other profile is reported"
    readable = run_ledger(ledger, "verify")
    assert readable.returncode == 1
    assert f"profile {untouched}: purchase_count: live 999, rebuilt" in readable.stdout
    assert "finding(s)" in readable.stdout.splitlines()[-1]


def test_a_removed_stream_or_tail_is_found_against_the_digest(
    ledger: Settings, tmp_path: Any
) -> None:
    kept = tmp_path / "digest.json"
    kept.write_text(run_ledger(ledger, "digest").stdout)
    assert verify(ledger, "--digest", str(kept))[0] == 0
    gone = partner_stream("P-001")
    for table, column in (
        ("ledger_events", "originator_id"),
        ("ledger_interactions", "originator_id"),
    ):
        tamper(ledger, f"DELETE FROM {table} WHERE {column} = %s", stream_id(gone))
    tamper(ledger, "DELETE FROM partners WHERE partner_id = 'P-001'")
    code, report = verify(ledger)
    assert (code, report["findings"], report["differences"]) == (0, [], []), (
        "without the index or a projection row, only the digest can tell"
    )
    code, report = verify(ledger, "--digest", str(kept))
    assert code == 1 and report["findings"] == []
    assert "1 stream(s) fewer" in report["digest"]
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    refused = run_ledger(ledger, "verify", "--digest", str(broken))
    assert refused.returncode == 1 and refused.stderr.startswith("ledger verify: digest file")


def test_as_of_profiles_match_hand_computed_ones_at_several_past_times(
    settings: Settings,
) -> None:
    moments = []

    def record(*objs: dict[str, Any]) -> None:
        publish(settings, [keyed(o) for o in objs])
        ingest(settings)
        moments.append(datetime.now(UTC))
        wait_for(lambda: datetime.now(UTC) > moments[-1], 5, "the clock to move")

    before = datetime.now(UTC)
    wait_for(lambda: datetime.now(UTC) > before, 5, "the clock to move")
    record(enrollment("C-7", "K-7", name="Grace"), purchase("10.00", customer_id="C-7"))
    record(purchase("5.50", customer_id="C-7"))
    record(
        interaction(
            "complaint_filed",
            customer_id="C-7",
            complaint_id="X-1",
            category="late",
            severity="low",
        )
    )
    project(settings)
    expected = [
        (1, {"EUR": "10.00"}, 0),
        (2, {"EUR": "15.50"}, 0),
        (2, {"EUR": "15.50"}, 1),
    ]
    for moment, (count, spend, complaints) in zip(moments, expected, strict=True):
        done = run_ledger(settings, "profile", "C-7", "--as-of", moment.isoformat(), "--json")
        assert done.returncode == 0, done.stderr
        profile = json.loads(done.stdout)
        assert (profile["purchase_count"], profile["total_spend"]) == (count, spend)
        assert profile["complaints_open"] == complaints
    early = run_ledger(settings, "profile", "C-7", "--as-of", before.isoformat())
    assert early.returncode == 1 and "no customer 'C-7' in the ledger as of" in early.stderr

    replayed = run_ledger(settings, "replay", "--as-of", moments[0].isoformat())
    assert replayed.returncode == 0, replayed.stderr
    with psycopg.connect(settings.database_url or "") as conn:
        row = conn.execute(
            "SELECT profile FROM ledger_replay.profiles WHERE customer_id = 'C-7'"
        ).fetchone()
    assert row is not None and row[0]["purchase_count"] == 1, "the replay as of the first time"


def test_verify_checks_the_card_holders_table_against_the_log(ledger: Settings) -> None:
    assert verify(ledger)[0] == 0
    tamper(ledger, "UPDATE ledger_card_holders SET customer_id = 'C-X' WHERE card_id = 'K-00001'")
    tamper(ledger, "DELETE FROM ledger_card_holders WHERE card_id = 'K-00002'")
    code, report = verify(ledger)
    assert code == 1
    holdings = [d for d in report["differences"] if d["what"] == "card holding"]
    assert holdings == [
        {
            "what": "card holding",
            "key": "K-00001",
            "detail": "held by C-X in the table, by C-00001 in the log",
        },
        {
            "what": "card holding",
            "key": "K-00002",
            "detail": "held by C-00002 in the log, not in the table",
        },
    ]
