"""Redrive (contract section 8) on real servers: dead letters go back to the inbound topic
with `redriven_from`, each at most once; the ledger decides them like any other message, so
nothing is ever recorded twice, and one that fails again is a new dead letter."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import psycopg
import pytest
from support import dumps, enrollment, ingest, interaction, keyed, publish, purchase, read_topic

from ledger import bootstrap
from ledger.settings import Settings
from producers.publisher import Publisher
from services import redrive
from services.reads import interaction_fate
from store import dead_letters


def _contract(change: str, **fields: Any) -> dict[str, Any]:
    return interaction(
        "contract_changed", partner_id="P-1", contract_id="K-1", change=change, **fields
    )


def _redrive(settings: Settings, *, dry_run: bool = False, **chosen: Any) -> redrive.Redriven:
    producers = []

    def publisher() -> Publisher:
        producers.append(bootstrap.producer(settings))
        return Publisher(producers[-1], settings.inbound_topic)

    try:
        return redrive.redrive(
            bootstrap.ports(settings).connect,
            publisher,
            settings.inbound_topic,
            redrive.Selection(**chosen),
            dry_run=dry_run,
        )
    finally:
        for producer in producers:
            producer.close()


def _query(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def _dead_letters(settings: Settings) -> list[tuple[Any, ...]]:
    """(partition, offset, event id, error type, redriven, headers), oldest first."""
    return _query(
        settings,
        "SELECT source_partition, source_offset, event_id, error_type, "
        "redriven_at IS NOT NULL, headers FROM ledger_dead_letters ORDER BY recorded_at",
    )


def _recorded(settings: Settings) -> int:
    return int(_query(settings, "SELECT count(*) FROM ledger_interactions")[0][0])


def _fate(settings: Settings, event_id: str) -> dict[str, Any] | None:
    with psycopg.connect(settings.database_url or "") as conn:
        return interaction_fate(conn, event_id)


def _redriven_records(settings: Settings) -> list[Any]:
    return [
        r
        for r in read_topic(settings, settings.inbound_topic)
        if any(name == "redriven_from" for name, _ in r.headers)
    ]


def test_a_signed_sent_before_its_proposal_is_recorded_when_redriven_after_it(
    settings: Settings,
) -> None:
    signed = _contract("signed", occurred_at="2026-03-02T10:00:00Z")
    publish(settings, [keyed(signed, [("trace-id", b"t-1")])])
    ingest(settings)
    [(partition, offset, event_id, error_type, redriven, _)] = _dead_letters(settings)
    assert (event_id, error_type, redriven) == (signed["event_id"], "rule", False)

    publish(settings, [keyed(_contract("proposed"))])
    ingest(settings)
    done = _redrive(settings)
    assert done.document() == {"published": {"rule": 1}, "skipped_forgotten": 0, "dry_run": False}

    [again] = _redriven_records(settings)
    assert again.key == b"P-1" and again.value == dumps(signed)
    assert again.headers == [
        ("trace-id", b"t-1"),
        ("redriven_from", f"{partition}:{offset}".encode()),
    ]
    ingest(settings)
    assert _recorded(settings) == 2
    assert _fate(settings, signed["event_id"]) == {
        "status": "recorded",
        "position": _fate(settings, signed["event_id"])["position"],  # type: ignore[index]
    }
    assert [row[4] for row in _dead_letters(settings)] == [True]  # marked, still one
    assert _redrive(settings).document()["published"] == {}  # at most once
    ingest(settings)
    assert _recorded(settings) == 2


def test_one_that_fails_again_is_a_new_dead_letter_which_can_be_redriven_in_turn(
    settings: Settings,
) -> None:
    bad = purchase(customer_id="C-1", lines=[])
    publish(settings, [keyed(bad, [("redriven_from", b"9:99")])])  # a stale one is replaced
    ingest(settings)
    assert _redrive(settings).published == {"invalid": 1}
    ingest(settings)
    first, second = _dead_letters(settings)
    assert first[4] and not second[4]
    assert (second[2], second[3]) == (bad["event_id"], "invalid")
    assert (second[0], second[1]) != (first[0], first[1])  # its own source position
    kept = dead_letters.headers_of(second[5])
    assert kept == [(b"redriven_from", f"{first[0]}:{first[1]}".encode())]

    assert _redrive(settings).published == {"invalid": 1}  # only the new one
    records = _redriven_records(settings)  # the original carried a stale one
    assert [dict(r.headers)["redriven_from"] for r in records] == [
        b"9:99",
        f"{first[0]}:{first[1]}".encode(),
        f"{second[0]}:{second[1]}".encode(),
    ]
    ingest(settings)
    assert len(_dead_letters(settings)) == 3
    assert _fate(settings, bad["event_id"])["status"] == "dead_lettered"  # type: ignore[index]
    assert _recorded(settings) == 0


def test_a_crash_between_sending_and_marking_sends_again_and_records_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = _contract("signed")
    publish(settings, [keyed(signed)])
    ingest(settings)
    publish(settings, [keyed(_contract("proposed"))])
    ingest(settings)

    def crash(*args: Any) -> None:
        raise ConnectionError("the redrive died after Kafka acknowledged")

    with monkeypatch.context() as patched:
        patched.setattr(dead_letters, "mark_redriven", crash)
        with pytest.raises(ConnectionError):
            _redrive(settings)
    assert [row[4] for row in _dead_letters(settings)] == [False]  # not marked: sent again
    assert _redrive(settings).published == {"rule": 1}
    assert len(_redriven_records(settings)) == 2
    ingest(settings)
    assert _recorded(settings) == 2  # the proposal and the signature, each once
    assert len(_dead_letters(settings)) == 1  # the second copy was a duplicate


def test_a_dry_run_counts_and_sends_nothing(settings: Settings) -> None:
    publish(settings, [keyed(purchase(customer_id="C-1", lines=[])), (b"C-2", b"{oops", [])])
    ingest(settings)
    before = len(read_topic(settings, settings.inbound_topic))
    done = _redrive(settings, dry_run=True)
    assert done.document() == {
        "published": {"invalid": 1, "malformed": 1},
        "skipped_forgotten": 0,
        "dry_run": True,
    }
    assert len(read_topic(settings, settings.inbound_topic)) == before
    assert [row[4] for row in _dead_letters(settings)] == [False, False]


def test_dead_letters_emptied_by_a_forget_are_skipped_and_counted(settings: Settings) -> None:
    publish(settings, [keyed(enrollment("C-1", "K-1"))])
    ingest(settings)
    publish(
        settings,
        [
            keyed(purchase(customer_id="C-1", lines=[])),
            keyed(purchase(customer_id="C-2", lines=[])),
        ],
    )
    ingest(settings)
    bootstrap.ledger(settings).forget("C-1", "asked to be forgotten")
    done = _redrive(settings)
    assert done.document() == {
        "published": {"invalid": 1},
        "skipped_forgotten": 1,
        "dry_run": False,
    }
    [record] = _redriven_records(settings)
    assert record.key == b"C-2"
    assert _redrive(settings).document()["skipped_forgotten"] == 1  # still there, still skipped


def test_since_is_inclusive_until_exclusive_and_the_error_type_chooses(
    settings: Settings,
) -> None:
    messages = [keyed(purchase(customer_id=f"C-{n}", lines=[])) for n in range(3)]
    publish(settings, [*messages, (b"C-9", b"{oops", [])])
    ingest(settings)
    times = ["2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z", "2026-05-03T00:00:00Z"]
    invalid = _query(
        settings,
        "SELECT source_offset, source_partition FROM ledger_dead_letters "
        "WHERE error_type = 'invalid' ORDER BY source_partition, source_offset",
    )
    with psycopg.connect(settings.database_url or "") as conn:
        for (offset, partition), at in zip(invalid, times, strict=True):
            conn.execute(
                "UPDATE ledger_dead_letters SET recorded_at = %s "
                "WHERE source_offset = %s AND source_partition = %s",
                (at, offset, partition),
            )
    since, until = datetime.fromisoformat(times[0]), datetime.fromisoformat(times[2])
    assert _redrive(settings, dry_run=True, since=since, until=until).published == {"invalid": 2}
    assert _redrive(settings, dry_run=True, error_type="malformed").published == {"malformed": 1}
    assert _redrive(settings, dry_run=True, error_type="nonesuch").published == {}
    assert _redrive(settings, since=since, until=until).published == {"invalid": 2}
    assert _redrive(settings).published == {"invalid": 1, "malformed": 1}


def test_two_redrives_at_once_send_each_dead_letter_once(settings: Settings) -> None:
    publish(settings, [keyed(purchase(customer_id=f"C-{n}", lines=[])) for n in range(1200)])
    ingest(settings)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: _redrive(settings), range(2)))
    assert sum(sum(run.published.values()) for run in runs) == 1200
    sent = [dict(r.headers)["redriven_from"] for r in _redriven_records(settings)]
    assert len(sent) == len(set(sent)) == 1200
    assert all(row[4] for row in _dead_letters(settings))
