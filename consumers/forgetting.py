"""`ledger forget` on the write side: one transaction records `customer_forgotten` on the
customer's stream and its cards, destroys the customer's key, and empties the dead letters
that name them (`consumers.store.erase`).

Ingest workers may be appending to the same streams: the store's (stream, version) key
decides. If a worker got there first, the forgetting is decided again on the streams as
they now stand; if the forgetting got there first, the worker's batch fails, it reloads,
and the rules dead-letter what it held as `rule` (`CustomerForgotten`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from eventsourcing.persistence import IntegrityError

from consumers.application import LedgerApplication
from consumers.erasure import Erasure
from consumers.store import IndexRow, IngestWrite
from domain.aggregates import CUSTOMER_FORGOTTEN, Card, Customer, card_stream, customer_stream
from domain.canonical import canonical_bytes
from domain.forgetting import check_reason, forget, forget_event_id, identifying
from domain.profile import utc_text
from domain.shredding import unseal
from store.keys import read_keys

ATTEMPTS = 20


@dataclass(frozen=True)
class Forgotten:
    customer_id: str
    event_id: str
    cards: list[str]
    position: int  # the notification id of the customer stream's `customer_forgotten`
    first: bool  # False: it had been forgotten before


def forget_customer(
    app: LedgerApplication, customer_id: str, reason: str, now: datetime | None = None
) -> Forgotten | None:
    """Forget a customer (None: the ledger holds no customer by that id). Repeating it
    answers what the first forgetting did. Raises ValueError for a reason that is not one
    printable line, or that names the person."""
    at = utc_text(now or datetime.now(UTC))
    for _ in range(ATTEMPTS):
        app.reset_cache()  # decide on the stored truth, not on a copy another save left
        name = customer_stream(customer_id)
        customer = app.load_streams({name})[name]
        if not isinstance(customer, Customer):
            return None
        if customer.forgotten:
            return _earlier(app, customer)
        personal = _identifying(app, customer)
        reason = check_reason(reason, personal)
        streams = app.load_streams({card_stream(c) for c in customer.cards})
        cards = {c: s for c in customer.cards if isinstance(s := streams[card_stream(c)], Card)}
        done = forget(customer, cards, reason, at)
        row = IndexRow(
            done.event_id,
            hashlib.sha256(canonical_bytes(done.payload)).hexdigest(),
            CUSTOMER_FORGOTTEN,
            customer.stream,
            customer.id,
            customer.version,
        )
        write = IngestWrite(index=[row], erasure=Erasure(customer_id, done.card_ids, personal))
        try:
            recordings = app.save(*done.streams, ingest=write)
        except IntegrityError:
            continue
        finally:
            app.reset_cache()
        return Forgotten(
            customer_id, done.event_id, done.card_ids, recordings[0].notification.id, True
        )
    raise RuntimeError(f"customer {customer_id!r}: {ATTEMPTS} writers got there first")


def _earlier(app: LedgerApplication, customer: Customer) -> Forgotten:
    customer_id = customer.stream.removeprefix("customer-")
    event_id = forget_event_id(customer_id)
    with app.recorder.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        curs.execute(
            "SELECT e.notification_id FROM ledger_interactions i JOIN ledger_events e "
            "ON e.originator_id = i.originator_id AND e.originator_version = i.originator_version "
            "WHERE i.event_id = %s",
            (event_id,),
        )
        row = curs.fetchone()
    return Forgotten(customer_id, event_id, customer.cards, int(row["notification_id"]), False)


def _identifying(app: LedgerApplication, customer: Customer) -> list[str]:
    """The person's names and e-mails, opened while the key still exists."""
    customer_id = customer.stream.removeprefix("customer-")
    events = app.select_events([customer.id])
    with app.recorder.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        key = read_keys(curs, [customer_id]).get(customer_id)
    return sorted(
        identifying(
            unseal(event.kind, event.payload, customer_id, key)
            for stream_events in events.values()
            for event in stream_events
        )
    )
