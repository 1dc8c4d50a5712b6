"""Forget a customer (GDPR art. 17): the use case behind `ledger forget` and
`DELETE /customers/{id}`.

One transaction records `customer_forgotten` on the customer's stream and its cards,
destroys the customer's key, erases the content digests and empties the dead letters that
name them (`consumers.store.ForgetWrite`). Then the person is scrubbed from the copies of
the projections that replays left; the caller then brings the projections to that event
(`services.project.until_position`), so that nothing personal is left to read.

Ingest workers may be appending to the same streams: the store's (stream, version) key
decides. If a worker got there first, the forgetting is decided again on the streams as
they now stand; if the forgetting got there first, the worker's batch fails, it reloads,
and the rules dead-letter what it held as `rule` (`CustomerForgotten`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from eventsourcing.persistence import IntegrityError

from consumers.application import LedgerApplication
from consumers.loader import BatchLoader
from consumers.store import ForgetWrite
from domain.aggregates import CUSTOMER_FORGOTTEN, Card, Customer, card_stream, customer_stream
from domain.canonical import canonical_bytes
from domain.forgetting import check_reason, forget, forget_event_id, identifying
from domain.profile import utc_text
from domain.shredding import unseal
from projections.profiles import scrub_copies
from services.ports import Ports
from store import interaction_index, merges
from store.interaction_index import IndexRow
from store.keys import read_keys
from store.merges import MergedNow

ATTEMPTS = 20


class MergedCustomer(ValueError):
    """`ledger forget` of a customer merged into another: refused (contract section 8),
    naming the root, whose forgetting forgets the whole tree."""

    def __init__(self, customer_id: str, root: str) -> None:
        super().__init__(
            f"customer {customer_id!r} is merged into the tree of {root!r}: forget {root!r}, "
            "which forgets every customer of its tree"
        )
        self.root = root


@dataclass(frozen=True)
class Forgotten:
    customer_id: str
    event_id: str
    cards: list[str]
    position: int  # the notification id of the customer stream's `customer_forgotten`
    first: bool  # False: it had been forgotten before


def forget_customer(
    ports: Ports, customer_id: str, reason: str, now: datetime | None = None
) -> Forgotten | None:
    """Record the forgetting (None: the ledger holds no customer by that id), then scrub
    the person from the projections' copies that replays left. Repeating it answers what
    the first forgetting did. A root's forgetting forgets every customer of its tree (each
    in a transaction of its own; `position` is the last's); a merged customer's is refused
    (`MergedCustomer`). Raises ValueError for a reason that is not one printable line, or
    that names the person. The caller then brings the projections to `position`
    (`services.project.until_position`), so that nothing personal is left to read."""
    with ports.connect() as conn:
        root, tree = merges.tree(conn, customer_id)
    if root != customer_id:
        raise MergedCustomer(customer_id, root)
    app = ports.application()
    try:
        found = _record(app, customer_id, reason, now)
        done = {customer_id}
        while found is not None:  # a root forgets its tree, as it stands when it is done
            with ports.connect() as conn:
                tree = merges.tree(conn, customer_id)[1]
            if not set(tree) - done:
                break
            for member in sorted(set(tree) - done):
                forgotten = _record(app, member, reason, now, root=False)
                done.add(member)
                if forgotten is not None and forgotten.position > found.position:
                    found = replace(found, position=forgotten.position)
    except MergedNow as merged:  # merged since the tree was read (under the merges lock)
        raise MergedCustomer(customer_id, merged.survivor_id) from None
    finally:
        app.close()
    if found is not None:
        with ports.connect() as conn:
            for member in tree:
                scrub_copies(conn, member)
    return found


def _record(
    app: LedgerApplication,
    customer_id: str,
    reason: str,
    now: datetime | None = None,
    *,
    root: bool = True,
) -> Forgotten | None:
    """Record the forgetting in one transaction, deciding again if a writer got there
    first (None: no such customer)."""
    at = utc_text(now or datetime.now(UTC))
    loader = BatchLoader(app, keys=None)
    for _ in range(ATTEMPTS):
        app.reset_cache()  # decide on the stored truth, not on a copy another save left
        name = customer_stream(customer_id)
        customer = loader.streams({name})[name]
        if not isinstance(customer, Customer):
            return None
        if customer.forgotten:
            return _earlier(app, customer)
        personal = _identifying(app, customer)
        reason = check_reason(reason, personal)
        streams = loader.streams({card_stream(c) for c in customer.cards})
        cards = {
            c: s if isinstance(s := streams[card_stream(c)], Card) else None for c in customer.cards
        }
        done = forget(customer, cards, reason, at)
        row = IndexRow(
            done.event_id,
            hashlib.sha256(canonical_bytes(done.payload)).hexdigest(),
            CUSTOMER_FORGOTTEN,
            customer.stream,
            customer.id,
            customer.version,
        )
        write = ForgetWrite(row, customer_id, done.card_ids, personal, root)
        try:
            recordings = app.record(done.streams, write)
        except IntegrityError:
            continue
        finally:
            app.reset_cache()
        return Forgotten(
            customer_id, done.event_id, done.card_ids, recordings[0].notification.id, True
        )
    raise RuntimeError(f"customer {customer_id!r}: {ATTEMPTS} writers got there first")


def _earlier(app: LedgerApplication, customer: Customer) -> Forgotten:
    customer_id = customer.customer_id
    event_id = forget_event_id(customer_id)
    with app.datastore.transaction(commit=False) as curs:
        position = interaction_index.position_of(curs, event_id)
    assert position is not None, "a forgotten customer's forgetting is indexed"
    return Forgotten(customer_id, event_id, customer.cards, position, False)


def _identifying(app: LedgerApplication, customer: Customer) -> list[str]:
    """The person's names and e-mails, opened while the key still exists."""
    customer_id = customer.customer_id
    events = app.select_events([customer.id])
    with app.datastore.transaction(commit=False) as curs:
        key = read_keys(curs, [customer_id]).get(customer_id)
    return sorted(
        identifying(
            unseal(event.type, event.payload, customer_id, key)
            for stream_events in events.values()
            for event in stream_events
        )
    )
