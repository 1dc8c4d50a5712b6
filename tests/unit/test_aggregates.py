"""Streams and their rules: `domain.aggregates`, `domain.recording`, `domain.errors`.

Every rule is run twice: on streams kept in memory between interactions, and on streams
saved to an event store and read back before each interaction (so the rule state is
rebuilt from the recorded payloads, as after a restart).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Protocol

import pytest
from eventsourcing.application import AggregateNotFoundError, Application

from domain import errors
from domain.aggregates import (
    CARD_CLAIMED,
    Card,
    Customer,
    LedgerStream,
    Partner,
    card_stream,
    customer_stream,
    partner_stream,
    stream_id,
)
from domain.canonical import GENESIS_HASH, chain_hash
from domain.cards import Retirement
from domain.interactions import Interaction, validate_object
from domain.recording import record, streams_named

# --- building interactions ----------------------------------------------------------------

_SEQUENCE = itertools.count(1)


def _event_id() -> str:
    return f"00000000-0000-4000-8000-{next(_SEQUENCE):012d}"


def interaction(kind: str, **fields: Any) -> Interaction:
    """A realistic interaction of `kind`, validated as the ingest worker would."""
    obj: dict[str, Any] = {
        "event_id": _event_id(),
        "type": kind,
        "occurred_at": "2024-05-01T12:30:00+02:00",
        "source": "pos-store-17",
        "schema_version": 1,
        **fields,
    }
    return validate_object(obj)


def enrolled(customer_id: str, card_id: str, **fields: Any) -> Interaction:
    personal = {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "birth_date": "1990-12-10",
        "marketing_consent": True,
    }
    return interaction(
        "customer_enrolled", customer_id=customer_id, card_id=card_id, **{**personal, **fields}
    )


def purchase(**holder: str) -> Interaction:
    return interaction(
        "purchase",
        **holder,
        store_id="s-17",
        order_id=f"o-{next(_SEQUENCE)}",
        currency="EUR",
        total=25,
        lines=[
            {"sku": "bk-1", "category": "books", "quantity": 2, "unit_price": "10.0"},
            {"sku": "pen-3", "category": "stationery", "quantity": 1, "unit_price": 5},
        ],
    )


def swiped(**holder: str) -> Interaction:
    return interaction("card_swiped", **holder, store_id="s-17")


def call(customer_id: str) -> Interaction:
    return interaction(
        "call",
        customer_id=customer_id,
        direction="inbound",
        duration_seconds=312,
        topic="billing",
        agent_id="agent-7",
    )


def complaint_filed(customer_id: str, complaint_id: str) -> Interaction:
    return interaction(
        "complaint_filed",
        customer_id=customer_id,
        complaint_id=complaint_id,
        category="delivery",
        severity="high",
        description="Parcel arrived damaged",
    )


def complaint_resolved(customer_id: str, complaint_id: str) -> Interaction:
    return interaction(
        "complaint_resolved",
        customer_id=customer_id,
        complaint_id=complaint_id,
        resolution="refunded",
        satisfied=True,
    )


def survey(customer_id: str, score: int) -> Interaction:
    return interaction("survey_answered", customer_id=customer_id, survey_id="nps-q2", score=score)


def consent(customer_id: str, value: bool) -> Interaction:
    return interaction("consent_changed", customer_id=customer_id, marketing_consent=value)


def contract(partner_id: str, contract_id: str, change: str) -> Interaction:
    fields: dict[str, Any] = {}
    if change == "proposed":
        fields = {
            "partner_kind": "supplier",
            "value": "12000.5",
            "currency": "EUR",
            "effective_at": "2024-06-01",
            "ends_at": "2025-05-31",
        }
    return interaction(
        "contract_changed", partner_id=partner_id, contract_id=contract_id, change=change, **fields
    )


def dispute_opened(partner_id: str, dispute_id: str) -> Interaction:
    return interaction(
        "dispute_opened", partner_id=partner_id, dispute_id=dispute_id, reason="late delivery"
    )


def dispute_resolved(partner_id: str, dispute_id: str) -> Interaction:
    return interaction(
        "dispute_resolved", partner_id=partner_id, dispute_id=dispute_id, resolution="credit note"
    )


def note(note_id: str, **subject: str) -> Interaction:
    return interaction(
        "note_added", note_id=note_id, author="agent-7", text="called about tiers", **subject
    )


def basket_line(sku: str, quantity: int, unit_price: str, category: str = "toys") -> Any:
    return {"sku": sku, "category": category, "quantity": quantity, "unit_price": unit_price}


def basket(kind: str, order_id: str, *lines: Any, currency: str, **fields: str) -> Interaction:
    """A purchase or a return of these lines (customer c-1's unless `fields` names a holder)."""
    total = sum(Decimal(line["unit_price"]) * line["quantity"] for line in lines)
    holder = {k: v for k, v in fields.items() if k in ("customer_id", "card_id")}
    return interaction(
        kind,
        **(holder or {"customer_id": "c-1"}),
        **{k: v for k, v in fields.items() if k not in holder},
        store_id="s-1",
        order_id=order_id,
        currency=currency,
        total=f"{total:.2f}",
        lines=list(lines),
    )


def bought_order(order_id: str, *lines: Any, currency: str = "EUR", **holder: str) -> Interaction:
    return basket("purchase", order_id, *lines, currency=currency, **holder)


def returned(
    order_id: str, return_id: str, *lines: Any, currency: str = "EUR", **holder: str
) -> Interaction:
    return basket(
        "purchase_returned", order_id, *lines, currency=currency, return_id=return_id, **holder
    )


# --- two ledgers: streams in memory, and streams read back from an event store ------------


class Ledger(Protocol):
    holders: dict[str, str]  # the card holders' table
    retired: dict[str, Retirement]  # its retired cards

    def record(self, ix: Interaction) -> list[LedgerStream]: ...

    def stream(self, name: str) -> LedgerStream | None: ...


class MemoryLedger:
    """Streams kept as live objects between interactions."""

    def __init__(self) -> None:
        self.streams: dict[str, LedgerStream] = {}
        self.holders: dict[str, str] = {}
        self.retired: dict[str, Retirement] = {}

    def stream(self, name: str) -> LedgerStream | None:
        return self.streams.get(name)

    def record(self, ix: Interaction) -> list[LedgerStream]:
        named = {name: self.streams.get(name) for name in streams_named(ix)}
        touched = record(ix, named, self.holders, self.retired)
        for stream in touched:
            self.streams[stream.stream] = stream
        return touched


class StoredLedger:
    """Streams saved to an in-memory event store and rebuilt from it for every interaction."""

    def __init__(self) -> None:
        self.app: Application[Any] = Application()
        self.holders: dict[str, str] = {}
        self.retired: dict[str, Retirement] = {}

    def stream(self, name: str) -> LedgerStream | None:
        try:
            return self.app.repository.get(stream_id(name))
        except AggregateNotFoundError:
            return None

    def record(self, ix: Interaction) -> list[LedgerStream]:
        named = {name: self.stream(name) for name in streams_named(ix)}
        touched = record(ix, named, self.holders, self.retired)
        self.app.save(*touched)
        return touched


@pytest.fixture(params=["in_memory", "rebuilt_from_store"])
def ledger(request: pytest.FixtureRequest) -> Ledger:
    return MemoryLedger() if request.param == "in_memory" else StoredLedger()


def _assert_readable(violation: errors.RuleViolation, *mentions: str) -> None:
    assert violation.error_type == "rule"
    assert violation.reason == str(violation)
    assert violation.reason.strip() and "\n" not in violation.reason
    for text in mentions:
        assert text in violation.reason


def _rejects(
    ledger: Ledger, ix: Interaction, error: type[errors.RuleViolation], *mentions: str
) -> None:
    """`ix` is refused with `error`, and no stream it names gains an event."""
    before = {name: _version(ledger.stream(name)) for name in streams_named(ix)}
    with pytest.raises(error) as caught:
        ledger.record(ix)
    assert isinstance(caught.value, errors.RuleViolation)
    _assert_readable(caught.value, *mentions)
    after = {name: _version(ledger.stream(name)) for name in streams_named(ix)}
    assert after == before


def _version(stream: LedgerStream | None) -> int:
    return 0 if stream is None else stream.version


# --- complaint rules ----------------------------------------------------------------------


def test_filing_a_complaint_twice_with_the_same_id_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(complaint_filed("c-1", "cmp-9"))
    _rejects(ledger, complaint_filed("c-1", "cmp-9"), errors.ComplaintAlreadyFiled, "cmp-9")


def test_filing_two_different_complaints_is_allowed(ledger: Ledger) -> None:
    ledger.record(complaint_filed("c-1", "cmp-1"))
    ledger.record(complaint_filed("c-1", "cmp-2"))
    assert _version(ledger.stream(customer_stream("c-1"))) == 2


def test_the_same_complaint_id_may_be_filed_by_two_customers(ledger: Ledger) -> None:
    ledger.record(complaint_filed("c-1", "cmp-9"))
    ledger.record(complaint_filed("c-2", "cmp-9"))
    assert _version(ledger.stream(customer_stream("c-2"))) == 1


def test_resolving_an_unknown_complaint_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(complaint_filed("c-1", "cmp-1"))
    _rejects(ledger, complaint_resolved("c-1", "cmp-404"), errors.UnknownComplaint, "cmp-404")


def test_resolving_a_complaint_of_a_customer_never_seen_is_a_rule_violation(
    ledger: Ledger,
) -> None:
    _rejects(ledger, complaint_resolved("c-new", "cmp-1"), errors.UnknownComplaint, "cmp-1")
    assert ledger.stream(customer_stream("c-new")) is None


def test_resolving_another_customers_complaint_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(complaint_filed("c-1", "cmp-1"))
    ledger.record(call("c-2"))
    _rejects(ledger, complaint_resolved("c-2", "cmp-1"), errors.UnknownComplaint, "cmp-1")


def test_resolving_an_already_resolved_complaint_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(complaint_filed("c-1", "cmp-1"))
    ledger.record(complaint_resolved("c-1", "cmp-1"))
    _rejects(ledger, complaint_resolved("c-1", "cmp-1"), errors.ComplaintAlreadyResolved, "cmp-1")


def test_refiling_a_resolved_complaint_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(complaint_filed("c-1", "cmp-1"))
    ledger.record(complaint_resolved("c-1", "cmp-1"))
    _rejects(ledger, complaint_filed("c-1", "cmp-1"), errors.ComplaintAlreadyFiled, "cmp-1")


# --- note rules (contract section 8) ------------------------------------------------------


def test_a_note_id_already_on_a_customers_stream_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(note("n-1", customer_id="c-1"))
    _rejects(ledger, note("n-1", customer_id="c-1"), errors.NoteAlreadyAdded, "n-1")


def test_a_note_id_already_on_a_partners_stream_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(note("n-1", partner_id="p-1"))
    _rejects(ledger, note("n-1", partner_id="p-1"), errors.NoteAlreadyAdded, "n-1")


def test_a_note_id_is_unique_per_stream_not_across_streams(ledger: Ledger) -> None:
    ledger.record(note("n-1", customer_id="c-1"))
    ledger.record(note("n-1", customer_id="c-2"))
    ledger.record(note("n-1", partner_id="p-1"))
    ledger.record(note("n-2", customer_id="c-1"))
    assert _version(ledger.stream(customer_stream("c-1"))) == 2
    assert _version(ledger.stream(partner_stream("p-1"))) == 1


def test_a_note_is_recorded_on_its_subjects_stream_only() -> None:
    assert streams_named(note("n-1", customer_id="c-1")) == [customer_stream("c-1")]
    assert streams_named(note("n-1", partner_id="p-1")) == [partner_stream("p-1")]


# --- return rules (contract section 8) -----------------------------------------------------


@pytest.fixture
def ordered(ledger: Ledger) -> Ledger:
    """Order o-1 in two purchases (lines pooled): 3 of sku a at 5.00 and 4.00 (toys, then
    games), 1 of sku b at 20.00."""
    ledger.record(bought_order("o-1", basket_line("a", 2, "5.00"), basket_line("b", 1, "20.00")))
    ledger.record(bought_order("o-1", basket_line("a", 1, "4.00", "games")))
    return ledger


def test_a_return_within_its_order_is_recorded_on_the_purchases_stream(ordered: Ledger) -> None:
    ordered.record(returned("o-1", "r-1", basket_line("a", 2, "5.00")))
    ordered.record(returned("o-1", "r-2", basket_line("a", 1, "4.00", "games")))
    assert _version(ordered.stream(customer_stream("c-1"))) == 4


def test_a_return_of_an_order_with_no_purchase_is_a_rule_violation(ordered: Ledger) -> None:
    late = returned("o-9", "r-1", basket_line("a", 1, "5.00"))
    _rejects(ordered, late, errors.UnknownOrder, "o-9")


def test_a_return_of_another_customers_order_is_a_rule_violation(ordered: Ledger) -> None:
    other = returned("o-1", "r-1", basket_line("a", 1, "5.00"), customer_id="c-2")
    _rejects(ordered, other, errors.UnknownOrder, "o-1")


def test_a_return_in_another_currency_is_a_rule_violation(ordered: Ledger) -> None:
    usd = returned("o-1", "r-1", basket_line("a", 1, "5.00"), currency="USD")
    _rejects(ordered, usd, errors.ReturnCurrencyMismatch, "USD", "EUR")


def test_a_return_id_already_returned_on_the_stream_is_a_rule_violation(ordered: Ledger) -> None:
    ordered.record(returned("o-1", "r-1", basket_line("a", 1, "5.00")))
    again = returned("o-1", "r-1", basket_line("b", 1, "20.00"))
    _rejects(ordered, again, errors.ReturnAlreadyRecorded, "r-1")


def test_a_sku_the_order_does_not_have_is_a_rule_violation(ordered: Ledger) -> None:
    stranger = returned("o-1", "r-1", basket_line("z", 1, "1.00"))
    _rejects(ordered, stranger, errors.ReturnedSkuNotInOrder, "'z'")


def test_more_than_bought_over_all_returns_is_a_rule_violation(ordered: Ledger) -> None:
    ordered.record(returned("o-1", "r-1", basket_line("a", 2, "4.00")))
    one_too_many = returned("o-1", "r-2", basket_line("a", 1, "4.00"), basket_line("a", 1, "4.00"))
    _rejects(ordered, one_too_many, errors.ReturnedMoreThanBought, "'a'")
    ordered.record(returned("o-1", "r-3", basket_line("a", 1, "4.00")))  # the last one


def test_a_unit_price_above_the_highest_paid_is_a_rule_violation(ordered: Ledger) -> None:
    dearer = returned("o-1", "r-1", basket_line("a", 1, "5.01"))
    _rejects(ordered, dearer, errors.ReturnPriceAboveOrder, "5.01", "5.00")
    ordered.record(returned("o-1", "r-2", basket_line("a", 1, "4.50")))  # at or below: fine


def test_a_category_its_sku_never_had_in_the_order_is_a_rule_violation(ordered: Ledger) -> None:
    relabelled = returned("o-1", "r-1", basket_line("b", 1, "20.00", "games"))
    _rejects(ordered, relabelled, errors.ReturnCategoryNotInOrder, "'games'")


def test_a_card_only_return_is_checked_against_the_cards_purchases(ledger: Ledger) -> None:
    ledger.record(bought_order("o-1", basket_line("a", 1, "5.00"), card_id="k-1"))
    ledger.record(returned("o-1", "r-1", basket_line("a", 1, "5.00"), card_id="k-1"))
    assert _version(ledger.stream(card_stream("k-1"))) == 2
    named = returned("o-1", "r-2", basket_line("a", 1, "5.00"))  # the customer's stream
    _rejects(ledger, named, errors.UnknownOrder, "o-1")


# --- dispute rules ------------------------------------------------------------------------


def test_opening_a_dispute_twice_with_the_same_id_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(dispute_opened("p-1", "d-1"))
    _rejects(ledger, dispute_opened("p-1", "d-1"), errors.DisputeAlreadyOpened, "d-1")


def test_reopening_a_resolved_dispute_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(dispute_opened("p-1", "d-1"))
    ledger.record(dispute_resolved("p-1", "d-1"))
    _rejects(ledger, dispute_opened("p-1", "d-1"), errors.DisputeAlreadyOpened, "d-1")


def test_resolving_an_unknown_dispute_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(dispute_opened("p-1", "d-1"))
    _rejects(ledger, dispute_resolved("p-1", "d-2"), errors.UnknownDispute, "d-2")


def test_resolving_a_dispute_of_a_partner_never_seen_is_a_rule_violation(ledger: Ledger) -> None:
    _rejects(ledger, dispute_resolved("p-new", "d-1"), errors.UnknownDispute, "d-1")
    assert ledger.stream(partner_stream("p-new")) is None


def test_resolving_a_resolved_dispute_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(dispute_opened("p-1", "d-1"))
    ledger.record(dispute_resolved("p-1", "d-1"))
    _rejects(ledger, dispute_resolved("p-1", "d-1"), errors.DisputeAlreadyResolved, "d-1")


def test_opening_and_resolving_disputes_in_order_is_allowed(ledger: Ledger) -> None:
    ledger.record(dispute_opened("p-1", "d-1"))
    ledger.record(dispute_opened("p-1", "d-2"))
    ledger.record(dispute_resolved("p-1", "d-2"))
    ledger.record(dispute_resolved("p-1", "d-1"))
    assert _version(ledger.stream(partner_stream("p-1"))) == 4


# --- contract rules -----------------------------------------------------------------------

_NEED_A_PROPOSAL = ["signed", "amended", "renewed", "terminated"]
_ALL_CHANGES = ["proposed", *_NEED_A_PROPOSAL]


@pytest.mark.parametrize("change", _NEED_A_PROPOSAL)
def test_a_contract_change_without_a_proposal_is_a_rule_violation(
    ledger: Ledger, change: str
) -> None:
    _rejects(ledger, contract("p-1", "k-1", change), errors.ContractOutOfOrder, "k-1", change)
    assert ledger.stream(partner_stream("p-1")) is None


@pytest.mark.parametrize("change", _NEED_A_PROPOSAL)
def test_a_change_to_a_contract_never_proposed_is_a_rule_violation_beside_another_contract(
    ledger: Ledger, change: str
) -> None:
    ledger.record(contract("p-1", "k-1", "proposed"))
    _rejects(ledger, contract("p-1", "k-2", change), errors.ContractOutOfOrder, "k-2", change)


@pytest.mark.parametrize("change", _ALL_CHANGES)
def test_any_change_after_termination_is_a_rule_violation(ledger: Ledger, change: str) -> None:
    ledger.record(contract("p-1", "k-1", "proposed"))
    ledger.record(contract("p-1", "k-1", "signed"))
    ledger.record(contract("p-1", "k-1", "terminated"))
    _rejects(ledger, contract("p-1", "k-1", change), errors.ContractOutOfOrder, "k-1", "terminated")


def test_a_proposed_contract_may_be_terminated(ledger: Ledger) -> None:
    ledger.record(contract("p-1", "k-1", "proposed"))
    ledger.record(contract("p-1", "k-1", "terminated"))
    _rejects(ledger, contract("p-1", "k-1", "signed"), errors.ContractOutOfOrder, "k-1")


def test_a_full_contract_lifecycle_is_allowed(ledger: Ledger) -> None:
    for change in ["proposed", "signed", "amended", "renewed", "amended", "terminated"]:
        ledger.record(contract("p-1", "k-1", change))
    assert _version(ledger.stream(partner_stream("p-1"))) == 6


def test_a_terminated_contract_does_not_block_another_contract(ledger: Ledger) -> None:
    ledger.record(contract("p-1", "k-1", "proposed"))
    ledger.record(contract("p-1", "k-1", "terminated"))
    ledger.record(contract("p-1", "k-2", "proposed"))
    ledger.record(contract("p-1", "k-2", "signed"))
    assert _version(ledger.stream(partner_stream("p-1"))) == 4


# --- cards and enrollment -----------------------------------------------------------------


def test_enrolling_with_a_card_another_customer_holds_is_a_rule_violation(ledger: Ledger) -> None:
    ledger.record(enrolled("c-1", "card-7"))
    _rejects(ledger, enrolled("c-2", "card-7"), errors.CardHeldByAnother, "card-7", "c-1")
    assert ledger.stream(customer_stream("c-2")) is None
    assert ledger.holders == {"card-7": "c-1"}


def test_a_refused_enrollment_leaves_the_enrolling_customers_stream_untouched(
    ledger: Ledger,
) -> None:
    ledger.record(enrolled("c-1", "card-7"))
    ledger.record(call("c-2"))
    _rejects(ledger, enrolled("c-2", "card-7"), errors.CardHeldByAnother, "card-7")
    assert _version(ledger.stream(customer_stream("c-2"))) == 1


def test_an_enrollment_with_a_new_card_holds_it_and_writes_only_the_customers_stream(
    ledger: Ledger,
) -> None:
    ix = enrolled("c-1", "card-7")
    touched = ledger.record(ix)
    assert [s.stream for s in touched] == ["customer-c-1"]
    assert ledger.holders == {"card-7": "c-1"}
    assert ledger.stream(card_stream("card-7")) is None  # the card's partition writes it


def test_an_older_ledgers_card_claim_still_holds_the_card(ledger: Ledger) -> None:
    claim = {"event_id": "e-0", "customer_id": "c-1", "card_id": "card-7"}
    old = Card.open(card_stream("card-7"), CARD_CLAIMED, "e-0", claim)
    assert old.owner == "c-1"
    named = {"customer-c-2": None, "card-card-7": old}
    with pytest.raises(errors.CardHeldByAnother, match="c-1"):
        record(enrolled("c-2", "card-7"), named, {})
    assert record(enrolled("c-1", "card-7"), {**named, "customer-c-1": None}, {}) != []


def test_the_customer_stream_records_the_enrollment_as_sent() -> None:
    ix = enrolled("c-1", "card-7", loyalty_tier="gold")  # an unknown field is kept
    touched = record(ix, {"customer-c-1": None, "card-card-7": None}, {})
    customer = next(s for s in touched if isinstance(s, Customer))
    (event,) = customer.collect_events()
    assert event.kind == "customer_enrolled"
    assert event.payload == ix.payload
    assert event.payload["loyalty_tier"] == "gold"


def test_re_enrolling_the_same_customer_with_the_same_card_claims_it_only_once(
    ledger: Ledger,
) -> None:
    ledger.record(enrolled("c-1", "card-7"))
    touched = ledger.record(enrolled("c-1", "card-7", email="ada@new.example"))
    assert [s.stream for s in touched] == ["customer-c-1"]
    assert ledger.holders == {"card-7": "c-1"}
    assert _version(ledger.stream(customer_stream("c-1"))) == 2


def test_re_enrolling_the_same_customer_with_another_card_claims_the_new_card(
    ledger: Ledger,
) -> None:
    ledger.record(enrolled("c-1", "card-7"))
    touched = ledger.record(enrolled("c-1", "card-8"))
    assert [s.stream for s in touched] == ["customer-c-1"]
    assert ledger.holders == {"card-7": "c-1", "card-8": "c-1"}


def test_enrolling_a_card_first_seen_in_a_card_only_purchase_holds_it_without_its_stream(
    ledger: Ledger,
) -> None:
    ledger.record(purchase(card_id="card-7"))
    touched = ledger.record(enrolled("c-1", "card-7"))
    assert [s.stream for s in touched] == ["customer-c-1"]
    assert ledger.holders == {"card-7": "c-1"}
    assert _version(ledger.stream(card_stream("card-7"))) == 1


def test_a_card_only_purchase_is_recorded_on_the_card_stream(ledger: Ledger) -> None:
    ix = purchase(card_id="card-7")
    assert streams_named(ix) == ["card-card-7"]
    (stream,) = ledger.record(ix)
    assert isinstance(stream, Card)
    assert stream.stream == "card-card-7"
    assert stream.owner is None
    assert ledger.stream(customer_stream("card-7")) is None


def test_a_card_only_purchase_of_a_held_card_is_still_recorded_on_the_card_stream(
    ledger: Ledger,
) -> None:
    ledger.record(enrolled("c-1", "card-7"))
    (stream,) = ledger.record(purchase(card_id="card-7"))
    assert isinstance(stream, Card)
    assert stream.version == 1
    assert _version(ledger.stream(customer_stream("c-1"))) == 1


def test_a_card_only_swipe_is_recorded_on_the_card_stream(ledger: Ledger) -> None:
    (stream,) = ledger.record(swiped(card_id="card-7"))
    assert isinstance(stream, Card) and stream.stream == "card-card-7"


@pytest.mark.parametrize("make", [purchase, swiped], ids=["purchase", "card_swiped"])
def test_when_customer_id_is_given_it_decides_the_stream(ledger: Ledger, make: Any) -> None:
    ix = make(customer_id="c-1", card_id="card-7")
    assert streams_named(ix) == ["customer-c-1", "card-card-7"]  # the card's: only read
    (stream,) = ledger.record(ix)
    assert isinstance(stream, Customer)
    assert ledger.stream(card_stream("card-7")) is None


@pytest.mark.parametrize(
    "ix",
    [
        pytest.param(contract("p-1", "k-1", "proposed"), id="contract_changed"),
        pytest.param(dispute_opened("p-1", "d-1"), id="dispute_opened"),
    ],
)
def test_partner_interactions_go_to_the_partner_stream(ledger: Ledger, ix: Interaction) -> None:
    (stream,) = ledger.record(ix)
    assert isinstance(stream, Partner)
    assert stream.stream == "partner-p-1"
    assert stream.id == stream_id("partner-p-1")


def test_stream_ids_are_uuid5_of_the_stream_name() -> None:
    assert stream_id("customer-c-1") == stream_id("customer-c-1")
    assert stream_id("customer-c-1") != stream_id("card-c-1")
    assert stream_id("customer-c-1").version == 5


# --- the hash chain -----------------------------------------------------------------------


def _history() -> Iterator[Interaction]:
    yield enrolled("c-1", "card-7")
    yield purchase(customer_id="c-1")
    yield call("c-1")
    yield complaint_filed("c-1", "cmp-1")
    yield complaint_resolved("c-1", "cmp-1")
    yield survey("c-1", 9)
    yield consent("c-1", False)
    yield swiped(customer_id="c-1", card_id="card-7")


def _assert_chained(name: str, events: list[Any]) -> None:
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    for event in events:
        assert event.originator_id == stream_id(name)
        assert event.hash == chain_hash(
            name, event.originator_version, event.kind, event.payload, event.prev_hash
        )


def test_each_event_is_chained_to_the_one_before_it() -> None:
    ledger = MemoryLedger()
    for ix in _history():
        ledger.record(ix)
    customer = ledger.streams["customer-c-1"]
    events = customer.collect_events()
    assert len(events) == 8
    assert [e.kind for e in events][:2] == ["customer_enrolled", "purchase"]
    _assert_chained("customer-c-1", events)
    assert customer.head_hash == events[-1].hash


def test_the_first_event_opens_the_stream_and_the_rest_are_recorded() -> None:
    ledger = MemoryLedger()
    for ix in _history():
        ledger.record(ix)
    events = ledger.streams["customer-c-1"].collect_events()
    assert isinstance(events[0], LedgerStream.Opened)
    assert events[0].stream == "customer-c-1"
    assert all(isinstance(e, LedgerStream.Recorded) for e in events[1:])


def test_each_event_carries_its_interactions_event_id_and_payload() -> None:
    ledger = MemoryLedger()
    history = list(_history())
    for ix in history:
        ledger.record(ix)
    events = ledger.streams["customer-c-1"].collect_events()
    assert [(e.event_id, e.kind, e.payload) for e in events] == [
        (ix.event_id, ix.type, ix.payload) for ix in history
    ]


def test_the_card_stream_is_chained_too() -> None:
    ledger = MemoryLedger()
    ledger.record(swiped(card_id="card-7"))
    ledger.record(purchase(card_id="card-7"))
    ledger.record(enrolled("c-1", "card-7"))
    ledger.record(purchase(card_id="card-7"))
    events = ledger.streams["card-card-7"].collect_events()
    assert [e.kind for e in events] == ["card_swiped", "purchase", "purchase"]
    _assert_chained("card-card-7", events)


def test_the_chain_continues_across_a_save_and_reload() -> None:
    ledger = StoredLedger()
    for ix in _history():
        ledger.record(ix)
    events = list(ledger.app.events.get(stream_id("customer-c-1")))
    assert len(events) == 8
    _assert_chained("customer-c-1", events)
    rebuilt = ledger.stream("customer-c-1")
    assert rebuilt is not None and rebuilt.head_hash == events[-1].hash


def test_the_same_interaction_on_another_stream_gets_another_hash() -> None:
    one = record(call("c-1"), {"customer-c-1": None}, {})[0].collect_events()[0]
    ix = call("c-2")
    two = record(ix, {"customer-c-2": None}, {})[0].collect_events()[0]
    assert one.hash != two.hash
    assert two.hash == chain_hash("customer-c-2", 1, "call", ix.payload, GENESIS_HASH)


# --- rebuilt streams hold the rule state ----------------------------------------------------


def test_a_customer_rebuilt_from_its_events_knows_its_complaints() -> None:
    ledger = StoredLedger()
    ledger.record(complaint_filed("c-1", "cmp-1"))
    ledger.record(complaint_filed("c-1", "cmp-2"))
    ledger.record(complaint_resolved("c-1", "cmp-1"))
    rebuilt = ledger.stream("customer-c-1")
    assert isinstance(rebuilt, Customer)
    assert rebuilt.complaints == {"cmp-1": True, "cmp-2": False}
    assert rebuilt.version == 3


def test_a_partner_rebuilt_from_its_events_knows_its_contracts_and_disputes() -> None:
    ledger = StoredLedger()
    ledger.record(contract("p-1", "k-1", "proposed"))
    ledger.record(contract("p-1", "k-1", "signed"))
    ledger.record(contract("p-1", "k-2", "proposed"))
    ledger.record(contract("p-1", "k-2", "terminated"))
    ledger.record(dispute_opened("p-1", "d-1"))
    ledger.record(dispute_opened("p-1", "d-2"))
    ledger.record(dispute_resolved("p-1", "d-2"))
    rebuilt = ledger.stream("partner-p-1")
    assert isinstance(rebuilt, Partner)
    assert rebuilt.contracts == {"k-1": "signed", "k-2": "terminated"}
    assert rebuilt.disputes == {"d-1": False, "d-2": True}


def test_a_card_rebuilt_from_an_older_ledgers_claim_knows_its_holder() -> None:
    ledger = StoredLedger()
    ledger.record(swiped(card_id="card-7"))
    card = ledger.stream("card-card-7")
    assert isinstance(card, Card)
    card.append(CARD_CLAIMED, "e-0", {"customer_id": "c-1", "card_id": "card-7"})
    ledger.app.save(card)
    rebuilt = ledger.stream("card-card-7")
    assert isinstance(rebuilt, Card)
    assert rebuilt.owner == "c-1"
    assert rebuilt.version == 2


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        errors.ComplaintAlreadyFiled,
        errors.UnknownComplaint,
        errors.ComplaintAlreadyResolved,
        errors.DisputeAlreadyOpened,
        errors.UnknownDispute,
        errors.DisputeAlreadyResolved,
        errors.ContractOutOfOrder,
        errors.CardHeldByAnother,
    ],
)
def test_every_named_rule_error_is_a_rule_violation_with_its_reason(
    error: type[errors.RuleViolation],
) -> None:
    violation = error("complaint 'x' is unknown")
    assert isinstance(violation, errors.RuleViolation)
    assert violation.error_type == "rule"
    assert violation.reason == "complaint 'x' is unknown"
    assert str(violation) == "complaint 'x' is unknown"


def test_each_return_rule_is_checked_over_every_line_before_the_next(ordered: Ledger) -> None:
    # the second line's unknown sku comes before the first line's wrong category
    both = returned("o-1", "r-1", basket_line("b", 1, "20.00", "games"), basket_line("z", 1, "1"))
    _rejects(ordered, both, errors.ReturnedSkuNotInOrder, "'z'")
    # the second line's quantity comes before the first line's price
    both = returned("o-1", "r-2", basket_line("a", 1, "9.00"), basket_line("b", 2, "20.00"))
    _rejects(ordered, both, errors.ReturnedMoreThanBought, "'b'")
