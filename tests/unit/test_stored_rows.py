"""The rows ingest writes without the library's event objects and mapper are byte for byte
the rows the library's mapper and transcoder make of the same events."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import Mapper

from domain.aggregates import (
    CARD_CLAIMED,
    Card,
    Customer,
    LedgerStream,
    Partner,
    card_stream,
    customer_stream,
    partner_stream,
)
from store.transcoding import OrjsonTranscoder, StoredRow, stored_row

MAPPER: Mapper[Any] = Mapper(transcoder=OrjsonTranscoder())

PAYLOAD = {
    "event_id": "e-1",
    "type": "purchase",
    "total": "12.50",
    "lines": [{"sku": "s-1", "unit_price": "12.50", "quantity": 1, "x": [1.5, None, True]}],
    "note": 'Zoë \u2603 "quoted" \\ back\nslash',
    "big": 2**53 - 1,
}


def _streams() -> list[LedgerStream]:
    customer = Customer.open(customer_stream("C-1"), "purchase", "e-1", PAYLOAD)
    customer.append("complaint_filed", "e-2", {"complaint_id": "cmp-1", "é": "ü"})
    card = Card.open(card_stream("K-1"), CARD_CLAIMED, "e-3", {"customer_id": "C-1"})
    card.append("card_swiped", "e-4", {"card_id": "K-1"})
    partner = Partner.open(
        partner_stream("P-1"), "contract_changed", "e-5", {"contract_id": "k", "change": "proposed"}
    )
    partner.append("dispute_opened", "e-6", {"dispute_id": "d-1"})
    return [customer, card, partner]


@pytest.mark.parametrize("stream", _streams(), ids=lambda s: s.stream)
def test_a_stored_row_is_the_library_mappers_row_byte_for_byte(stream: LedgerStream) -> None:
    unsaved = stream.take_unsaved()
    assert [u.originator_version for u in unsaved] == [1, 2]
    for u in unsaved:
        ours = stored_row(MAPPER, u)
        theirs = MAPPER.to_stored_event(u.event())
        assert ours == StoredRow(
            theirs.originator_id, theirs.originator_version, theirs.topic, theirs.state
        )
        assert type(ours.state) is bytes


def test_collected_events_are_the_unsaved_ones_and_rebuild_the_same_stream() -> None:
    for stream in _streams():
        events = stream.collect_events()
        assert [type(e) for e in events] == [type(stream).Opened, type(stream).Recorded]
        assert stream.take_unsaved() == [], "collecting empties the new events"
        rebuilt: Any = None
        for event in events:
            rebuilt = event.mutate(rebuilt)
        assert rebuilt == stream
