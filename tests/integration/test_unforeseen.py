"""An unforeseen failure while recording one interaction (a bug in a stream's command)
dead-letters that interaction as `internal` and records the rest of its batch, from the
stored streams, as if it had never come."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from support import dumps, enrollment, purchase

import domain.decision as decision
from consumers.records import InboundRecord
from ledger import bootstrap
from ledger.settings import Settings
from store.offsets import OffsetMove


def test_a_bug_recording_one_interaction_dead_letters_only_that_one(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    enrolled = enrollment("C-1", "K-1")
    buggy = purchase(customer_id="C-1", total="6.66")
    fine = purchase(customer_id="C-1", total="1.00")
    real = decision.record

    def record(ix: Any, streams: Any, *facts: Any) -> Any:
        gained = real(ix, streams, *facts)  # the stream has changed in memory when the bug strikes
        if ix.event_id == buggy["event_id"]:
            raise ZeroDivisionError("a bug")
        return gained

    monkeypatch.setattr(decision, "record", record)
    ingest = bootstrap.ingest(settings, seal=False)
    topic = settings.inbound_topic
    batch = [
        InboundRecord("c", topic, 0, offset, b"C-1", dumps(obj))
        for offset, obj in enumerate([enrolled, buggy, fine])
    ]
    result = ingest.commit(ingest.decide(ingest.parse(batch), [OffsetMove(topic, 0, None, 3, "c")]))

    assert (result.recorded, dict(result.rejected)) == (2, {"internal": 1})
    with psycopg.connect(settings.database_url or "") as conn:
        index = conn.execute(
            "SELECT event_id, originator_version FROM ledger_interactions ORDER BY 2"
        ).fetchall()
        dead = conn.execute("SELECT event_id, error_type, error FROM ledger_dead_letters")
        assert dead.fetchall() == [
            (
                buggy["event_id"],
                "internal",
                "the ledger failed to decide this message (ZeroDivisionError: a bug)",
            )
        ]
    assert index == [(enrolled["event_id"], 1), (fine["event_id"], 2)]  # no gap, no ghost
