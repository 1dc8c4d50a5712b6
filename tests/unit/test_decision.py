"""The ingest decision, pure and with no server: duplicates, conflicts, each rule,
forgotten customers, sealing and an unforeseen failure, decided against what a loader
would have fetched (`domain.decision.Loaded`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from support import dumps, enrollment, interaction, purchase

import domain.decision as decision
from domain import errors
from domain.aggregates import Customer, LedgerStream, customer_stream
from domain.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from domain.decision import (
    Claim,
    Loaded,
    Parsed,
    Poisoned,
    Recorded,
    Rejection,
    Unforeseen,
    decide,
    involved,
    merged,
)
from domain.forgetting import ERASED_DIGEST, forget
from domain.interactions import Interaction, parse_interaction
from domain.recording import record, streams_named
from domain.shredding import PREFIX, new_key, unseal


def parsed(*objs: dict[str, Any]) -> list[Parsed]:
    return [parse_interaction(dumps(obj)) for obj in objs]


def loaded(
    items: list[Parsed],
    *,
    digests: dict[str, str] | None = None,
    streams: Mapping[str, LedgerStream | None] | None = None,
    keys: Mapping[str, bytes | None] | None = None,
) -> Loaded:
    """What a loader would fetch: every named stream (None: no events yet)."""
    named = {n for ix in items if isinstance(ix, Interaction) for n in streams_named(ix)}
    found = {n: None for n in named} | dict(streams or {})
    return Loaded(digests=dict(digests or {}), streams=found, keys=keys)


def test_a_new_interaction_is_recorded_on_its_streams_and_indexed() -> None:
    (ix,) = items = parsed(enrollment("C-1", "K-1"))
    made = decide(items, loaded(items))
    assert isinstance(ix, Interaction)
    assert [s.stream for s in made.streams] == ["customer-C-1"]
    assert made.claims == [Claim("K-1", "C-1", ix.event_id)]
    home = made.streams[0]
    assert made.recorded == [
        Recorded(ix.event_id, ix.digest, "customer_enrolled", "customer-C-1", home.id, 1)
    ]
    assert (made.rejections, made.duplicates) == ([], 0)


def test_a_message_sent_twice_in_one_batch_is_recorded_once() -> None:
    obj = enrollment("C-1", "K-1")
    items = parsed(obj, obj)
    made = decide(items, loaded(items))
    assert (len(made.recorded), made.duplicates, made.rejections) == (1, 1, [])


def test_an_event_id_recorded_before_with_the_same_content_is_a_duplicate() -> None:
    (ix,) = items = parsed(purchase(customer_id="C-1"))
    assert isinstance(ix, Interaction)
    made = decide(items, loaded(items, digests={ix.event_id: ix.digest}))
    assert (made.recorded, made.streams, made.duplicates) == ([], [], 1)


def test_an_event_id_recorded_before_with_other_content_is_a_conflict() -> None:
    (ix,) = items = parsed(purchase(customer_id="C-1"))
    assert isinstance(ix, Interaction)
    made = decide(items, loaded(items, digests={ix.event_id: "0" * 64}))
    reason = f"event_id {ix.event_id} was already recorded with other content"
    assert made.rejections == [Rejection(0, ix.event_id, "conflict", reason)]
    assert made.recorded == []


def test_an_event_id_sent_twice_in_one_batch_with_other_content_is_a_conflict() -> None:
    first = purchase(customer_id="C-1", total="12.50")
    second = purchase(customer_id="C-1", total="1.00") | {"event_id": first["event_id"]}
    items = parsed(first, second)
    made = decide(items, loaded(items))
    ix = items[0]
    assert isinstance(ix, Interaction)
    assert made.recorded == [
        Recorded(ix.event_id, ix.digest, "purchase", "customer-C-1", made.streams[0].id, 1)
    ]
    reason = f"event_id {ix.event_id} was already recorded with other content"
    assert made.rejections == [Rejection(1, ix.event_id, "conflict", reason)]
    assert made.duplicates == 0


def test_a_message_about_a_forgotten_customer_sent_again_is_a_duplicate() -> None:
    (ix,) = items = parsed(purchase(customer_id="C-1"))
    assert isinstance(ix, Interaction)
    made = decide(items, loaded(items, digests={ix.event_id: ERASED_DIGEST}))
    assert (made.recorded, made.rejections, made.duplicates) == ([], [], 1)


def test_a_record_rejected_when_parsed_is_dead_lettered_as_it_was() -> None:
    items: list[Parsed] = [Unforeseen("a bug"), *parsed(purchase(customer_id="C-1"))]
    items[0].event_id = "e-0"
    made = decide(items, loaded(items))
    assert made.rejections == [Rejection(0, "e-0", "internal", "a bug")]
    assert len(made.recorded) == 1


def refusal(items: list[Parsed], named: type[errors.RuleViolation]) -> str:
    """The reason the streams' rules give, with the named error, for the last item."""
    streams, holders = loaded(items).streams, {}
    for ix in items[:-1]:
        assert isinstance(ix, Interaction)
        for stream in record(ix, streams, holders):
            streams[stream.stream] = stream
    last = items[-1]
    assert isinstance(last, Interaction)
    with pytest.raises(named) as raised:
        record(last, streams, holders)
    return raised.value.reason


def filed(customer: str, complaint_id: str) -> dict[str, Any]:
    return interaction(
        "complaint_filed",
        customer_id=customer,
        complaint_id=complaint_id,
        category="delivery",
        severity="high",
        description="Parcel arrived damaged",
    )


def resolved(customer: str, complaint_id: str) -> dict[str, Any]:
    return interaction(
        "complaint_resolved",
        customer_id=customer,
        complaint_id=complaint_id,
        resolution="refunded",
        satisfied=True,
    )


def opened(partner: str, dispute_id: str) -> dict[str, Any]:
    return interaction(
        "dispute_opened", partner_id=partner, dispute_id=dispute_id, reason="late delivery"
    )


def settled(partner: str, dispute_id: str) -> dict[str, Any]:
    return interaction(
        "dispute_resolved", partner_id=partner, dispute_id=dispute_id, resolution="credit note"
    )


def contract(partner: str, contract_id: str, change: str) -> dict[str, Any]:
    return interaction(
        "contract_changed", partner_id=partner, contract_id=contract_id, change=change
    )


RULES = {
    "complaint filed twice": (
        lambda: [filed("C-1", "cmp-1"), filed("C-1", "cmp-1")],
        errors.ComplaintAlreadyFiled,
    ),
    "an unknown complaint resolved": (
        lambda: [filed("C-1", "cmp-1"), resolved("C-1", "cmp-404")],
        errors.UnknownComplaint,
    ),
    "a complaint resolved twice": (
        lambda: [filed("C-1", "cmp-1"), resolved("C-1", "cmp-1"), resolved("C-1", "cmp-1")],
        errors.ComplaintAlreadyResolved,
    ),
    "a card held by another": (
        lambda: [enrollment("C-1", "K-1"), enrollment("C-2", "K-1")],
        errors.CardHeldByAnother,
    ),
    "a dispute opened twice": (
        lambda: [opened("P-1", "d-1"), opened("P-1", "d-1")],
        errors.DisputeAlreadyOpened,
    ),
    "an unknown dispute resolved": (
        lambda: [opened("P-1", "d-1"), settled("P-1", "d-404")],
        errors.UnknownDispute,
    ),
    "a dispute resolved twice": (
        lambda: [opened("P-1", "d-1"), settled("P-1", "d-1"), settled("P-1", "d-1")],
        errors.DisputeAlreadyResolved,
    ),
    "a contract signed before it was proposed": (
        lambda: [contract("P-1", "k-0", "proposed"), contract("P-1", "k-1", "signed")],
        errors.ContractOutOfOrder,
    ),
    "a contract changed after it was terminated": (
        lambda: [
            contract("P-1", "k-1", "proposed"),
            contract("P-1", "k-1", "terminated"),
            contract("P-1", "k-1", "renewed"),
        ],
        errors.ContractOutOfOrder,
    ),
}


@pytest.mark.parametrize("case", sorted(RULES))
def test_each_rule_refuses_its_interaction_as_a_rule_dead_letter(case: str) -> None:
    make, named = RULES[case]
    items = parsed(*make())
    reason = refusal(list(items), named)
    made = decide(items, loaded(items))
    last = items[-1]
    assert isinstance(last, Interaction)
    assert made.rejections == [Rejection(len(items) - 1, last.event_id, "rule", reason)]
    assert len(made.recorded) == len(items) - 1


def forgotten_customer() -> dict[str, LedgerStream | None]:
    """The streams of customer C-1 (card K-1), forgotten."""
    items = parsed(enrollment("C-1", "K-1"))
    streams = loaded(items).streams
    decide(items, Loaded({}, streams, None))
    customer, card = streams["customer-C-1"], streams["card-K-1"]
    assert isinstance(customer, Customer) and card is None  # an enrollment holds, never writes
    done = forget(customer, {"K-1": None}, "asked", "2026-03-02T10:00:00Z")
    streams.update((s.stream, s) for s in done.streams)
    return streams


def test_nothing_about_a_forgotten_customer_is_recorded_nor_kept() -> None:
    items = parsed(purchase(customer_id="C-1"), purchase(customer_id="C-2"))
    made = decide(items, loaded(items, streams=forgotten_customer()))
    (rejection,) = made.rejections
    assert (rejection.index, rejection.error_type, rejection.forgotten) == (0, "rule", True)
    assert [r.stream for r in made.recorded] == ["customer-C-2"]


@pytest.mark.parametrize(
    "holder", [{}, {"customer_id": "C-9"}], ids=["card only", "card and another customer"]
)
def test_an_interaction_on_a_forgotten_customers_card_is_refused_and_not_kept(
    holder: dict[str, str],
) -> None:
    items = parsed(purchase(card_id="K-1", **holder), purchase(customer_id="C-2"))
    made = decide(items, loaded(items, streams=forgotten_customer()))
    ix = items[0]
    assert isinstance(ix, Interaction)
    reason = "card 'K-1' belongs to a forgotten customer"
    assert made.rejections == [Rejection(0, ix.event_id, "rule", reason, forgotten=True)]
    assert [r.stream for r in made.recorded] == ["customer-C-2"]
    assert [s.stream for s in made.streams] == ["customer-C-2"]


def test_a_customer_whose_key_is_gone_is_forgotten() -> None:
    items = parsed(enrollment("C-1", "K-1", name="Ada"))
    made = decide(items, loaded(items, keys={"C-1": None}))
    assert [(r.error_type, r.forgotten) for r in made.rejections] == [("rule", True)]
    assert made.recorded == made.streams == []


def test_personal_fields_are_sealed_once_before_the_chain_hash_and_the_digest_is_the_messages() -> (
    None
):
    key = new_key()
    (ix,) = items = parsed(enrollment("C-1", "K-1", name="Ada", email="ada@example.com"))
    assert isinstance(ix, Interaction)
    made = decide(items, loaded(items, keys={"C-1": key}))
    assert made.recorded[0].digest == ix.digest  # sent again, it is still a duplicate
    customer = next(s for s in made.streams if s.stream == customer_stream("C-1"))
    (event,) = customer.collect_events()
    payload = event.payload  # type: ignore[attr-defined]
    assert payload["name"].startswith(PREFIX) and payload["email"].startswith(PREFIX)
    assert unseal("customer_enrolled", payload, "C-1", key)["name"] == "Ada"
    assert customer.head_hash == chain_hash(
        "customer-C-1",
        1,
        "customer_enrolled",
        payload,
        GENESIS_HASH,
        payload_bytes=canonical_bytes(payload),
    )


def test_without_keys_personal_fields_are_recorded_as_sent() -> None:
    (ix,) = items = parsed(enrollment("C-1", "K-1", name="Ada"))
    assert isinstance(ix, Interaction)
    made = decide(items, loaded(items))
    customer = next(s for s in made.streams if s.stream == customer_stream("C-1"))
    assert customer.head_hash == chain_hash(
        "customer-C-1", 1, "customer_enrolled", ix.payload, GENESIS_HASH, payload_bytes=ix.canonical
    )


def test_an_unforeseen_failure_names_its_record_and_the_batch_is_decided_again_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = parsed(
        enrollment("C-1", "K-1"),
        purchase(customer_id="C-1", total="6.66"),
        purchase(customer_id="C-1", total="1.00"),
    )
    buggy = items[1]
    real = decision.record

    def record_with_a_bug(ix: Interaction, streams: Any, *facts: Any) -> Any:
        gained = real(ix, streams, *facts)  # the stream has changed in memory when the bug strikes
        if ix is buggy:
            raise ZeroDivisionError("a bug")
        return gained

    monkeypatch.setattr(decision, "record", record_with_a_bug)
    with pytest.raises(Poisoned) as poisoned:
        decide(items, loaded(items))
    assert poisoned.value.index == 1
    rejection = poisoned.value.rejection
    assert rejection.error_type == "internal"
    assert rejection.reason == "the ledger failed to decide this message (ZeroDivisionError: a bug)"

    again = [rejection if i == 1 else item for i, item in enumerate(items)]
    made = decide(again, loaded(again))  # from the stored streams: fresh ones here
    assert [r.error_type for r in made.rejections] == ["internal"]
    assert [(r.stream, r.originator_version) for r in made.recorded] == [
        ("customer-C-1", 1),
        ("customer-C-1", 2),
    ]


def test_a_lost_claim_involves_its_enrollment_and_what_shares_its_streams_or_card() -> None:
    items = parsed(
        enrollment("C-B", "K-1"),
        purchase(customer_id="C-B"),
        purchase(customer_id="C-X"),
        purchase(card_id="K-1"),
        enrollment("C-Z", "K-1"),  # refused in the batch: C-B held K-1 in it
        enrollment("C-Y", "K-3"),
    )
    made = decide(items, loaded(items))
    assert [c.card_id for c in made.claims] == ["K-1", "K-3"]
    redone, streams = involved(items, made, {"K-1"})
    assert redone == [0, 1, 3, 4]
    assert streams == {"customer-C-B", "card-K-1", "customer-C-Z"}


def test_a_merged_decision_keeps_the_others_and_takes_the_items_decided_again() -> None:
    items = parsed(enrollment("C-B", "K-1"), purchase(customer_id="C-X"), purchase(card_id="K-1"))
    before = decide(items, loaded(items))
    again_items = [items[0], items[2]]
    again = decide(again_items, loaded(again_items))
    again.rejections.append(Rejection(0, "e", "rule", "held"))
    again.recorded = again.recorded[1:]
    made = merged(before, again, [0, 2], 3)
    assert [r.index for r in made.recorded] == [1, 2]
    assert [(r.index, r.reason) for r in made.rejections] == [(0, "held")]
    assert made.duplicates == 0


def test_a_customers_note_text_is_sealed_and_a_partners_is_not() -> None:
    key = new_key()
    common = {"author": "agent-7", "text": "Ada asked for a call back"}
    items = parsed(
        interaction("note_added", note_id="n-1", customer_id="C-1", **common),
        interaction("note_added", note_id="n-1", partner_id="P-1", **common),
    )
    made = decide(items, loaded(items, keys={"C-1": key}))
    (customer_note,) = next(s for s in made.streams if s.stream == "customer-C-1").collect_events()
    (partner_note,) = next(s for s in made.streams if s.stream == "partner-P-1").collect_events()
    sealed = customer_note.payload  # type: ignore[attr-defined]
    assert sealed["text"].startswith(PREFIX)
    assert unseal("note_added", sealed, "C-1", key)["text"] == common["text"]
    assert partner_note.payload["text"] == common["text"]  # type: ignore[attr-defined]


def test_a_partners_note_is_shown_as_written_even_if_it_looks_sealed() -> None:
    payload = {"partner_id": "P-1", "text": "aesgcm: the vendor's cipher suite question"}
    assert unseal("note_added", payload, None, None, erased="[erased]") == payload
