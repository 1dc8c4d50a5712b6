"""The ledger's own write of a batch (`LedgerApplication.record`, a binary COPY past the
library's `save()`) keeps the library's recorder contract: the rows its mapper would write,
notification ids in commit order and returned, NOTIFY, IntegrityError on a taken version."""

from __future__ import annotations

import copy
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from consumers.application import LedgerApplication
from consumers.store import IngestWrite
from domain.aggregates import Card, Customer, LedgerStream, card_stream, customer_stream
from ledger import bootstrap
from ledger.settings import Settings


def _rebuilt(app: LedgerApplication) -> tuple[list[int], dict[Any, LedgerStream]]:
    """The notification ids in the table, and every stream rebuilt from its rows."""
    notifications = app.recorder.select_notifications(start=1, limit=100)
    streams: dict[Any, Any] = {}
    for n in notifications:
        event: Any = app.mapper.to_domain_event(n)
        streams[n.originator_id] = event.mutate(streams.get(n.originator_id))
    return [n.id for n in notifications], streams


def test_recorded_rows_rebuild_the_streams_with_their_notification_ids(
    settings: Settings,
) -> None:
    app = bootstrap.ledger_application(settings)
    customer = Customer.open(customer_stream("C-1"), "call", "e-1", {"topic": "Zoë ☃"})
    customer.append("complaint_filed", "e-2", {"complaint_id": "cmp-1"})
    card = Card.open(card_stream("K-1"), "card_swiped", "e-3", {"card_id": "K-1"})
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as listener:
        listener.execute("LISTEN ledger_events")
        first = app.record([customer, card], IngestWrite())
        assert [n.channel for n in listener.notifies(timeout=10, stop_after=1)] == ["ledger_events"]

    assert [r.notification.id for r in first] == [1, 2, 3]
    assert first[2].domain_event.originator_id == card.id
    customer.append("complaint_resolved", "e-4", {"complaint_id": "cmp-1"})
    app.save(customer)  # the library's own path still works beside it, ids in one sequence
    card.append("card_swiped", "e-5", {"card_id": "K-1"})
    second = app.record([card], IngestWrite())
    assert [r.notification.id for r in second] == [5]

    ids, streams = _rebuilt(app)
    assert ids == [1, 2, 3, 4, 5]
    assert streams[customer.id] == customer
    assert streams[card.id] == card


def test_a_version_taken_by_another_writer_is_an_integrity_error_and_writes_nothing(
    settings: Settings,
) -> None:
    app = bootstrap.ledger_application(settings)
    customer = Customer.open(customer_stream("C-1"), "call", "e-1", {"topic": "t"})
    app.record([customer], IngestWrite())
    stale = copy.deepcopy(customer)
    customer.append("call", "e-2", {"topic": "t"})
    app.record([customer], IngestWrite())
    stale.append("call", "e-3", {"topic": "t"})
    other = Customer.open(customer_stream("C-2"), "call", "e-4", {"topic": "t"})

    with pytest.raises(IntegrityError):
        app.record([other, stale], IngestWrite())

    ids, streams = _rebuilt(app)
    assert ids == [1, 2]
    assert set(streams) == {customer.id}
    assert app.record([Customer.open(customer_stream("C-3"), "call", "e-5", {})], IngestWrite())


def test_an_event_triggered_the_librarys_way_is_recorded_with_the_rest(
    settings: Settings,
) -> None:
    app = bootstrap.ledger_application(settings)
    customer = Customer.open(customer_stream("C-1"), "call", "e-1", {"topic": "t"})
    customer.trigger_event(
        Customer.Recorded,
        kind="call",
        event_id="e-2",
        payload={"topic": "u"},
        prev_hash=customer.head_hash,
        hash="0" * 64,
    )
    customer.append("call", "e-3", {"topic": "v"})

    recordings = app.record([customer], IngestWrite())

    assert [r.notification.originator_version for r in recordings] == [1, 2, 3]
    ids, streams = _rebuilt(app)
    assert ids == [1, 2, 3]
    assert streams[customer.id] == customer
