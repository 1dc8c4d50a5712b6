"""Event-sourced streams: customers, cards and partners, each a hash chain of interactions.

Every stream records one event class per position: `Opened` (version 1, which also carries
the stream's first interaction) and `Recorded` (the rest). Both carry the business payload
(the validated interaction as parsed JSON), its type, the interaction's `event_id`, and the
chain hash of `domain.canonical.chain_hash`. Rules are checked before an event is
triggered and fail with a named `RuleViolation`; the state they need is rebuilt from the
payloads, so a stream read back from the store enforces the same rules. A stream knows
the id it is named after (`Customer.customer_id`, ...), derived from its name, not stored.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Self
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from domain import errors
from domain.canonical import GENESIS_HASH, chain_hash
from domain.returns import RETURNABLE, Orders

CARD_CLAIMED = "card_claimed"
"""How ledgers recorded before the card holders' table held a card: an event on the card's
stream. Still read (old ledgers decode, and hold their cards by it); no longer written: an
enrollment is recorded on the customer's stream only, its card held in a table
(`store.card_holdings`), so that every stream has one writer, its key's partition."""
CUSTOMER_FORGOTTEN = "customer_forgotten"
"""`ledger forget`'s record, on the customer's stream and on each card it holds: nothing
more is recorded on them (their key is destroyed in the same transaction)."""

_NAMESPACE = uuid5(NAMESPACE_URL, "urn:customer-ledger:stream")


@functools.lru_cache(maxsize=65_536)
def stream_id(stream: str) -> UUID:
    """The store's `originator_id` of a named stream (uuid5, so any tool can derive it).

    Cached: ingest derives the id of every stream a batch names (the loader, then the
    decision), ~2 us each in Python's `uuid`; the cache is bounded, so memory stays flat."""
    return uuid5(_NAMESPACE, stream)


def customer_stream(customer_id: str) -> str:
    return Customer.prefix + customer_id


def card_stream(card_id: str) -> str:
    return Card.prefix + card_id


def partner_stream(partner_id: str) -> str:
    return Partner.prefix + partner_id


def stream_class(stream: str) -> type[LedgerStream] | None:
    """The class of the stream of this name (by its prefix), or None for another name."""
    for cls in (Customer, Card, Partner):
        if stream.startswith(cls.prefix):
            return cls
    return None


@dataclass(frozen=True)
class _Chained:
    """What every recorded event carries: the interaction and its place in the chain."""

    kind: str
    """The interaction's `type` (`domain.schema.InteractionType`, or `card_claimed` and
    `customer_forgotten`). Stored as `kind`: tools read that JSON key, and old ledgers
    must keep decoding."""
    event_id: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def type(self) -> str:
        """The interaction's type: the name the code reads it by (`kind` is its stored name)."""
        return self.kind

    def apply(self, aggregate: Any) -> None:
        aggregate.absorb(self.kind, self.payload, self.hash)


class Unsaved(NamedTuple):
    """A new event not stored yet: its class, originator id and version, and its other
    attributes (`state`, in the class's field order: what the library's mapper stores)."""

    event_class: type[Any]
    originator_id: UUID
    originator_version: int
    state: dict[str, Any]

    def event(self) -> Any:
        """The library's event object."""
        return self.event_class(
            originator_id=self.originator_id,
            originator_version=self.originator_version,
            **self.state,
        )


class LedgerStream(Aggregate):
    """A hash-chained stream of recorded interactions.

    New events are kept as `Unsaved` (class and attributes), not as the library's event
    objects: building a frozen event dataclass, mutating the aggregate through it, and
    later mapping it back to a dict for storage cost ~10 us per interaction on ingest's hot
    path, where the store only needs the attributes (`store.transcoding.stored_row` encodes
    them byte for byte as the library's mapper would). Their order is the event classes'
    field order, as the mapper's `vars(event)` gives it (checked by `stored_row`).
    `collect_events()` still gives the library's event objects, built on demand, so the
    library's `save()` and anything else reading events works unchanged.
    """

    prefix: ClassVar[str] = ""
    """How the names of this class's streams begin: `customer-`, `card-`, `partner-`."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.head_hash = GENESIS_HASH
        self._unsaved: list[Unsaved] = []

    @property
    def named_id(self) -> str:
        """The id the stream is named after (its customer's, card's or partner's)."""
        return self.stream[len(self.prefix) :]

    class Opened(_Chained, Aggregate.Created):
        """Version 1: the stream's name and its first interaction."""

        stream: str

    class Recorded(_Chained, Aggregate.Event):
        """Every later interaction of the stream."""

    @classmethod
    def open(
        cls,
        stream: str,
        type: str,
        event_id: str,
        payload: dict[str, Any],
        payload_bytes: bytes | None = None,
    ) -> Self:
        """A new stream whose first event records this interaction (`payload_bytes`: its
        canonical encoding, when the caller has it).

        What the library's `_create` does, without the event object: the aggregate is
        built as its `Created.mutate` builds it (base init, then `__init__(stream)`, then
        the event applied)."""
        cls.check(None, type, payload)
        originator_id = stream_id(stream)
        timestamp = cls.Opened.create_timestamp()
        hash_ = chain_hash(stream, 1, type, payload, GENESIS_HASH, payload_bytes=payload_bytes)
        state = {
            "timestamp": timestamp,
            "originator_topic": get_topic(cls),
            "kind": type,
            "event_id": event_id,
            "payload": payload,
            "prev_hash": GENESIS_HASH,
            "hash": hash_,
            "stream": stream,
        }
        stream_ = cls.__new__(cls)
        stream_.__base_init__(originator_id, cls.INITIAL_VERSION, timestamp)
        stream_.__init__(stream)  # type: ignore[misc]
        stream_.absorb(type, payload, hash_)
        stream_._unsaved.append(Unsaved(cls.Opened, originator_id, cls.INITIAL_VERSION, state))
        return stream_

    def append(
        self,
        type: str,
        event_id: str,
        payload: dict[str, Any],
        payload_bytes: bytes | None = None,
    ) -> None:
        """Record one more interaction at the head of this stream (what the library's
        `trigger_event` and `Event.mutate` do, without the event object)."""
        self.check(self, type, payload)
        version = self._version + 1
        timestamp = self.Recorded.create_timestamp()
        hash_ = chain_hash(
            self.stream, version, type, payload, self.head_hash, payload_bytes=payload_bytes
        )
        state = {
            "timestamp": timestamp,
            "kind": type,
            "event_id": event_id,
            "payload": payload,
            "prev_hash": self.head_hash,
            "hash": hash_,
        }
        self.absorb(type, payload, hash_)
        self._version = version
        self._modified_on = timestamp
        self._unsaved.append(Unsaved(self.Recorded, self._id, version, state))

    def take_unsaved(self) -> list[Unsaved]:
        """The new events since the last take (or collect), in order; the stream keeps none."""
        unsaved, self._unsaved = self._unsaved, []
        return unsaved

    def collect_events(self) -> Sequence[Any]:
        """The library's event objects of the new events (what `Application.save` reads)."""
        events = list(super().collect_events())
        events.extend(unsaved.event() for unsaved in self.take_unsaved())
        return events

    def absorb(self, type: str, payload: dict[str, Any], hash_: str) -> None:
        """Advance the chain head, then the stream's own rule state."""
        self.head_hash = hash_
        self.evolve(type, payload)

    def evolve(self, type: str, payload: dict[str, Any]) -> None:
        """Update the state the rules need; streams without rules keep none."""

    @classmethod
    def check(cls, stream: Self | None, type: str, payload: dict[str, Any]) -> None:
        """Raise a RuleViolation if `type` cannot follow the stream's history (None: new)."""


@dataclass(frozen=True)
class _Lifecycle:
    """Complaints and disputes: opened once, then resolved once."""

    noun: str
    opened: str
    already_opened: type[errors.RuleViolation]
    unknown: type[errors.RuleViolation]
    already_resolved: type[errors.RuleViolation]

    def check_open(self, cases: dict[str, bool], case_id: str) -> None:
        if case_id in cases:
            raise self.already_opened(f"{self.noun} {case_id!r} was already {self.opened}")

    def check_resolve(self, cases: dict[str, bool], case_id: str) -> None:
        if case_id not in cases:
            raise self.unknown(f"{self.noun} {case_id!r} is unknown")
        if cases[case_id]:
            raise self.already_resolved(f"{self.noun} {case_id!r} is already resolved")


_COMPLAINTS = _Lifecycle(
    "complaint",
    "filed",
    errors.ComplaintAlreadyFiled,
    errors.UnknownComplaint,
    errors.ComplaintAlreadyResolved,
)
_DISPUTES = _Lifecycle(
    "dispute",
    "opened",
    errors.DisputeAlreadyOpened,
    errors.UnknownDispute,
    errors.DisputeAlreadyResolved,
)


def _orders_of(stream: Customer | Card | None) -> Orders:
    if stream is None:
        return Orders()
    assert stream.orders is not None, "returnable(): a stream that returns keeps its orders"
    return stream.orders


def returnable(stream: LedgerStream, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Give a stream whose orders were not kept (`orders` None) its orders again, from its
    recorded (type, payload) pairs."""
    if isinstance(stream, Customer | Card) and stream.orders is None:
        orders = Orders()
        for type, payload in events:
            if type in RETURNABLE:
                orders.fold(type, payload)
        stream.orders = orders


def _check_note(notes: set[str], payload: dict[str, Any]) -> None:
    if payload["note_id"] in notes:
        raise errors.NoteAlreadyAdded(f"note {payload['note_id']!r} was already added")


class Customer(LedgerStream):
    """A customer's interactions; holds the complaint and note ids for their rules, the
    cards it held, retired ones included (what `ledger forget` closes with it), and whether
    it was forgotten."""

    prefix = "customer-"

    @property
    def customer_id(self) -> str:
        return self.named_id

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.complaints: dict[str, bool] = {}  # complaint_id -> resolved
        self.notes: set[str] = set()
        # What its purchases make returnable (`domain.returns`); None: not kept, as the
        # ingest worker keeps it only for a batch that returns goods (`returnable`).
        self.orders: Orders | None = Orders()
        self.cards: list[str] = []
        self.enrolled = False  # whether a `customer_enrolled` was recorded (merges need one)
        self.forgotten = False

    def evolve(self, type: str, payload: dict[str, Any]) -> None:
        if type == "complaint_filed":
            self.complaints[payload["complaint_id"]] = False
        elif type == "complaint_resolved":
            self.complaints[payload["complaint_id"]] = True
        elif type == "customer_enrolled":
            self.enrolled = True
            if payload["card_id"] not in self.cards:
                self.cards.append(payload["card_id"])
        elif type == "card_replaced":
            self.cards.append(payload["new_card_id"])
        elif type == "note_added":
            self.notes.add(payload["note_id"])
        elif type in RETURNABLE and self.orders is not None:
            self.orders.fold(type, payload)
        elif type == CUSTOMER_FORGOTTEN:
            self.forgotten = True

    @classmethod
    def check(cls, stream: Customer | None, type: str, payload: dict[str, Any]) -> None:
        if stream is not None and stream.forgotten:
            raise errors.CustomerForgotten(f"customer {stream.customer_id!r} was forgotten")
        complaints = stream.complaints if stream is not None else {}
        if type == "complaint_filed":
            _COMPLAINTS.check_open(complaints, payload["complaint_id"])
        elif type == "complaint_resolved":
            _COMPLAINTS.check_resolve(complaints, payload["complaint_id"])
        elif type == "note_added":
            _check_note(stream.notes if stream is not None else set(), payload)
        elif type == "purchase_returned":
            _orders_of(stream).check(payload)


class Card(LedgerStream):
    """A loyalty card: who holds it, and the interactions that named only the card."""

    prefix = "card-"

    @property
    def card_id(self) -> str:
        return self.named_id

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.owner: str | None = None
        self.orders: Orders | None = Orders()  # of card-only purchases (see Customer)
        self.forgotten = False

    def evolve(self, type: str, payload: dict[str, Any]) -> None:
        if type == CARD_CLAIMED:
            self.owner = payload["customer_id"]
        elif type in RETURNABLE and self.orders is not None:
            self.orders.fold(type, payload)
        elif type == CUSTOMER_FORGOTTEN:
            self.forgotten = True

    @classmethod
    def check(cls, stream: Card | None, type: str, payload: dict[str, Any]) -> None:
        if stream is not None and stream.forgotten:
            raise errors.CustomerForgotten(
                f"card {stream.card_id!r} belongs to a forgotten customer"
            )
        if type == "purchase_returned":
            _orders_of(stream).check(payload)

    @classmethod
    def check_claim(
        cls, stream: Card | None, holder: str | None, card_id: str, customer_id: str
    ) -> None:
        """May `customer_id` enroll this card? Not if its customer was forgotten, nor if
        another customer holds it (`holder`, else an old ledger's `card_claimed`)."""
        cls.check(stream, CARD_CLAIMED, {})
        owner = holder or (stream.owner if stream is not None else None)
        if owner is not None and owner != customer_id:
            raise errors.CardHeldByAnother(
                f"card {card_id!r} is already held by customer {owner!r}"
            )


_NEEDS_CONTRACT = {"signed", "amended", "renewed", "terminated"}


class Partner(LedgerStream):
    """A B2B partner: contract lifecycles, disputes and notes."""

    prefix = "partner-"

    @property
    def partner_id(self) -> str:
        return self.named_id

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.contracts: dict[str, str] = {}  # contract_id -> last change
        self.disputes: dict[str, bool] = {}  # dispute_id -> resolved
        self.notes: set[str] = set()

    def evolve(self, type: str, payload: dict[str, Any]) -> None:
        if type == "contract_changed":
            self.contracts[payload["contract_id"]] = payload["change"]
        elif type == "dispute_opened":
            self.disputes[payload["dispute_id"]] = False
        elif type == "dispute_resolved":
            self.disputes[payload["dispute_id"]] = True
        elif type == "note_added":
            self.notes.add(payload["note_id"])

    @classmethod
    def check(cls, stream: Partner | None, type: str, payload: dict[str, Any]) -> None:
        contracts = stream.contracts if stream is not None else {}
        disputes = stream.disputes if stream is not None else {}
        if type == "contract_changed":
            contract_id, change = payload["contract_id"], payload["change"]
            last = contracts.get(contract_id)
            if last == "terminated":
                raise errors.ContractOutOfOrder(
                    f"contract {contract_id!r} is terminated; nothing may follow ({change})"
                )
            if last is None and change in _NEEDS_CONTRACT:
                raise errors.ContractOutOfOrder(
                    f"contract {contract_id!r} does not exist; {change!r} needs a proposal first"
                )
        elif type == "dispute_opened":
            _DISPUTES.check_open(disputes, payload["dispute_id"])
        elif type == "dispute_resolved":
            _DISPUTES.check_resolve(disputes, payload["dispute_id"])
        elif type == "note_added":
            _check_note(stream.notes if stream is not None else set(), payload)
