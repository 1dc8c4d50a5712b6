"""One decoder of stored event rows: a stream written by the aggregates and encoded by the
store's mapper reads back the same three ways its readers need, with no server."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Mapper

from domain.aggregates import Customer, customer_stream
from domain.chain_check import check_stream
from store.event_rows import (
    COLUMNS,
    EventRow,
    chain_record,
    domain_event,
    event_state,
    recorded_hash,
    stored_event,
)
from store.transcoding import OrjsonTranscoder

MAPPER: Mapper[Any] = Mapper(transcoder=OrjsonTranscoder())


def purchase(n: int) -> dict[str, Any]:
    return {"event_id": f"e-{n}", "type": "purchase", "customer_id": "C-1", "total": f"{n}.00"}


def stored_rows() -> tuple[Customer, list[EventRow]]:
    """A customer's stream of three purchases, as rows of the events table."""
    customer = Customer.open(customer_stream("C-1"), "purchase", "e-1", purchase(1))
    customer.append("purchase", "e-2", purchase(2))
    customer.append("purchase", "e-3", purchase(3))
    rows = []
    for event in customer.collect_events():
        stored = MAPPER.to_stored_event(event)
        rows.append(
            EventRow(stored.originator_id, stored.originator_version, stored.topic, stored.state)
        )
    return customer, rows


def test_the_columns_are_the_rows_fields_in_order() -> None:
    assert COLUMNS.split(", ") == list(EventRow._fields)


def test_a_row_becomes_the_domain_event_that_was_stored() -> None:
    customer, rows = stored_rows()
    events = [domain_event(MAPPER, row) for row in rows]
    assert [type(e) for e in events] == [Customer.Opened, Customer.Recorded, Customer.Recorded]
    rebuilt: Any = None
    for event in events:
        rebuilt = event.mutate(rebuilt)
    assert rebuilt.head_hash == customer.head_hash and rebuilt.version == 3
    assert rebuilt.customer_id == "C-1"


def test_a_library_stored_event_is_read_as_it_is() -> None:
    _, rows = stored_rows()
    stored = stored_event(rows[0])
    assert stored_event(stored) is stored
    assert domain_event(MAPPER, stored).event_id == "e-1"


def test_a_row_dict_reads_as_a_row() -> None:
    _, rows = stored_rows()
    as_dict = dict(zip(COLUMNS.split(", "), rows[1], strict=True))
    assert EventRow(**as_dict) == rows[1]


def test_a_rows_state_is_the_events_attributes_with_its_timestamp() -> None:
    _, rows = stored_rows()
    first = event_state(memoryview(rows[0].state or b""))
    assert first["kind"] == "purchase" and first["stream"] == "customer-C-1"
    assert first["payload"] == purchase(1)
    assert first["timestamp"].tzinfo is not None
    assert "stream" not in event_state(rows[1].state or b"")


def test_chain_records_of_an_untouched_stream_give_no_finding() -> None:
    customer, rows = stored_rows()
    records = [chain_record(row) for row in rows]
    assert [r.topic for r in records] == [row.topic for row in rows]
    assert check_stream(customer.id, records, {}) == []
    assert recorded_hash(rows[-1].state) == customer.head_hash


def test_a_row_that_is_not_json_or_empty_is_a_record_with_its_reason() -> None:
    _, rows = stored_rows()
    broken = chain_record(rows[1]._replace(state=b"{not json"))
    assert broken.event is None and (broken.error or "").startswith("the stored record is not")
    empty = chain_record(rows[1]._replace(state=None))
    assert empty.event is None and empty.error == "the stored record is empty (NULL)"
    assert empty.version == 2 and empty.topic == rows[1].topic


def test_an_unreadable_rows_hash_stands_in_as_the_sha256_of_its_bytes() -> None:
    assert recorded_hash(b"{not json").startswith("unreadable:")
    assert recorded_hash(b"[]") != recorded_hash(b"{}")
    assert recorded_hash(None) == recorded_hash(b"")
