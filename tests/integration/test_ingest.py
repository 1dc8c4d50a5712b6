"""The ingest worker on real servers: dead letters, duplicates, card-only interactions."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from support import (
    enrollment,
    ingest,
    interaction,
    keyed,
    profile_rows,
    project,
    publish,
    purchase,
    read_topic,
)

from ledger.settings import Settings


def test_each_rejection_reaches_the_dead_letter_topic_once_with_its_headers(
    settings: Settings,
) -> None:
    enrolled = enrollment("C-1", "K-1", name="Ada")
    conflicting = {**enrolled, "name": "Eve"}
    bad_total = purchase(customer_id="C-1")
    bad_total["total"] = "99.00"
    messages = [
        keyed(enrolled),
        (b"C-1", b"{not json", [("trace-id", b"t-1")]),
        (b"C-1", b"[1, 2, 3]", []),
        (None, b"\xff\xfe", []),
        keyed(bad_total, [("trace-id", b"t-2")]),
        keyed(conflicting),
        keyed(enrolled),  # a POS retry: a duplicate, recorded once, never dead-lettered
        keyed(
            interaction("complaint_resolved", customer_id="C-1", complaint_id="X", resolution="r")
        ),
    ]
    publish(settings, messages)
    first = ingest(settings)
    # Another partition: only once C-1's enrollment is recorded is K-1 held by someone.
    messages.append(keyed(enrollment("C-2", "K-1")))
    publish(settings, messages[-1:])
    second = ingest(settings)

    assert (first.recorded, first.duplicates, second.recorded) == (1, 1, 0)
    dead = read_topic(settings, settings.dead_letter_topic)
    types = sorted(dict(r.headers)["error_type"].decode() for r in dead)
    assert types == ["conflict", "invalid", "malformed", "malformed", "malformed", "rule", "rule"]
    sent = {value: (key, headers) for key, value, headers in messages}
    sources = set()
    for record in dead:
        headers = dict(record.headers)
        assert headers["error"].decode().strip()
        assert headers["source_topic"].decode() == settings.inbound_topic
        sources.add((int(headers["source_partition"]), int(headers["source_offset"])))
        assert record.value in sent, "the original bytes, unchanged"
        key, original_headers = sent[record.value]
        assert record.key == key
        for name, value in original_headers:
            assert headers[name] == value, "the original message's own headers are kept"
    assert len(sources) == len(dead), "one dead letter per source partition and offset"


def test_a_duplicate_counts_once_and_a_second_run_records_nothing_new(settings: Settings) -> None:
    enrolled = enrollment("C-7", "K-7")
    bought = purchase(customer_id="C-7")
    publish(settings, [keyed(enrolled), keyed(bought), keyed(bought), keyed(enrolled)])

    first = ingest(settings)
    publish(settings, [keyed(bought)])
    second = ingest(settings)
    project(settings)

    assert (first.recorded, first.duplicates, second.recorded, second.duplicates) == (2, 2, 0, 1)
    profile = profile_rows(settings)["C-7"]
    assert profile["purchase_count"] == 1
    assert profile["interaction_count"] == 2
    assert profile["total_spend"] == {"EUR": "12.50"}
    assert read_topic(settings, settings.dead_letter_topic) == []


def test_card_only_interactions_before_enrollment_count_once_the_card_is_enrolled(
    settings: Settings,
) -> None:
    early = [
        purchase(card_id="K-5", total="10.00", occurred_at="2026-02-01T09:00:00Z"),
        interaction("card_swiped", card_id="K-5", store_id="S-1"),
    ]
    publish(settings, [keyed(m) for m in early])
    ingest(settings)
    project(settings)
    assert "C-5" not in profile_rows(settings)

    publish(settings, [keyed(enrollment("C-5", "K-5", occurred_at="2026-03-01T09:00:00Z"))])
    ingest(settings)
    project(settings)
    publish(settings, [keyed(purchase(card_id="K-5", total="5.00"))])
    ingest(settings)
    project(settings)

    profile = profile_rows(settings)["C-5"]
    assert profile["cards"] == ["K-5"]
    assert profile["purchase_count"] == 2 and profile["swipe_count"] == 1
    assert profile["interaction_count"] == 4
    assert profile["total_spend"] == {"EUR": "15.00"}
    assert profile["last_purchase_at"] == "2026-03-01T10:00:00Z"
    with psycopg.connect(settings.database_url or "") as conn:
        parked = conn.execute("SELECT count(*) FROM profile_parked").fetchone()
    assert parked == (0,)


def test_the_same_interactions_in_another_order_give_the_same_profile(
    make_settings: Callable[[], Settings],
) -> None:
    history = [
        enrollment("C-9", "K-9", name="Old", email="a@x", occurred_at="2026-01-05T08:00:00Z"),
        enrollment(
            "C-9",
            "K-10",
            name="New",
            marketing_consent=True,
            occurred_at="2026-02-05T08:00:00+02:00",
        ),
        purchase(customer_id="C-9", total="3.10", occurred_at="2026-01-20T10:00:00Z"),
        purchase(card_id="K-10", total="7.25", occurred_at="2026-02-20T10:00:00Z"),
        interaction(
            "survey_answered",
            customer_id="C-9",
            survey_id="S1",
            score=3,
            occurred_at="2026-01-30T10:00:00Z",
        ),
        interaction(
            "survey_answered",
            customer_id="C-9",
            survey_id="S2",
            score=9,
            occurred_at="2026-03-30T10:00:00Z",
        ),
        interaction(
            "consent_changed",
            customer_id="C-9",
            marketing_consent=False,
            occurred_at="2026-01-31T10:00:00Z",
        ),
        interaction(
            "call",
            customer_id="C-9",
            direction="inbound",
            duration_seconds=60,
            topic="billing",
            occurred_at="2026-03-01T10:00:00Z",
        ),
    ]
    profiles = []
    for order in (history, history[::-1]):
        settings = make_settings()
        publish(settings, [keyed(m) for m in order])
        ingest(settings)
        project(settings)
        profiles.append(profile_rows(settings)["C-9"])

    assert profiles[0] == profiles[1]
    assert profiles[0]["name"] == "New" and profiles[0]["email"] == "a@x"
    assert profiles[0]["marketing_consent"] is True
    assert profiles[0]["nps"] == 9 and profiles[0]["purchase_count"] == 2
    assert profiles[0]["cards"] == ["K-10", "K-9"]
