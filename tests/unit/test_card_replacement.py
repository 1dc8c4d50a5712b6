"""Lost and replaced cards (contract section 8), decided as ingest decides them, with no
server: each rule accepted and rejected by name, the holdings a batch leaves, and the
offline-till rule for late swipes and purchases on a retired card."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from support import dumps, enrollment, interaction, purchase

from domain import errors
from domain.cards import Retirement
from domain.decision import Claim, Loaded, Parsed, Rejection, decide, involved
from domain.interactions import Interaction, parse_interaction
from domain.recording import record, streams_named

NOON = "2026-03-01T12:00:00Z"


def replaced(customer: str, old: str, new: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("occurred_at", NOON)
    return interaction(
        "card_replaced", customer_id=customer, old_card_id=old, new_card_id=new, **fields
    )


def swiped(card: str, at: str) -> dict[str, Any]:
    return interaction("card_swiped", card_id=card, store_id="S-1", occurred_at=at)


def decided(
    *objs: dict[str, Any],
    holders: dict[str, str] | None = None,
    retired: dict[str, Retirement] | None = None,
) -> tuple[Any, Loaded]:
    items: list[Parsed] = [parse_interaction(dumps(obj)) for obj in objs]
    named = {n for ix in items if isinstance(ix, Interaction) for n in streams_named(ix)}
    loaded = Loaded(
        digests={},
        streams=dict.fromkeys(named),
        keys=None,
        holders=dict(holders or {}),
        retired=dict(retired or {}),
    )
    return decide(items, loaded), loaded


def reasons(made: Any) -> list[str]:
    return [r.reason for r in made.rejections]


def test_a_replacement_holds_the_new_card_and_retires_the_old_in_the_batch() -> None:
    enrolled, obj = enrollment("C-1", "K-1"), replaced("C-1", "K-1", "K-2", reason="lost")
    made, loaded = decided(enrolled, obj)
    assert reasons(made) == []
    assert [r.type for r in made.recorded] == ["customer_enrolled", "card_replaced"]
    assert [r.stream for r in made.recorded] == ["customer-C-1", "customer-C-1"]
    assert made.claims == [
        Claim("K-1", "C-1", enrolled["event_id"]),
        Claim("K-2", "C-1", obj["event_id"]),
    ]
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert made.retirements == [Retirement("K-1", "K-2", "C-1", at)]
    assert loaded.holders == {"K-1": "C-1", "K-2": "C-1"}
    customer = loaded.streams["customer-C-1"]
    assert customer is not None and customer.cards == ["K-1", "K-2"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("holders", "retired", "obj", "named", "reason"),
    [
        (
            {},
            {},
            replaced("C-1", "K-1", "K-2"),
            errors.CardNotHeld,
            "customer 'C-1' does not hold card 'K-1'",
        ),
        (
            {"K-1": "C-2"},
            {},
            replaced("C-1", "K-1", "K-2"),
            errors.CardNotHeld,
            "customer 'C-1' does not hold card 'K-1'",
        ),
        (
            {"K-1": "C-1", "K-2": "C-2"},
            {},
            replaced("C-1", "K-1", "K-2"),
            errors.CardHeldByAnother,
            "card 'K-2' is already held by customer 'C-2'",
        ),
        (
            {"K-1": "C-1", "K-2": "C-1"},
            {},
            replaced("C-1", "K-1", "K-2"),
            errors.CardHeldByAnother,
            "card 'K-2' is already held by customer 'C-1'",
        ),
        (
            {"K-1": "C-1", "K-9": "C-3"},
            {"K-9": Retirement("K-9", "K-10", "C-3", datetime(2026, 1, 1, tzinfo=UTC))},
            replaced("C-1", "K-1", "K-9"),
            errors.CardRetired,
            "card 'K-9' was replaced by 'K-10'",
        ),
        (
            {"K-1": "C-1"},
            {"K-1": Retirement("K-1", "K-2", "C-1", datetime(2026, 1, 1, tzinfo=UTC))},
            replaced("C-1", "K-1", "K-3"),
            errors.CardNotHeld,
            "card 'K-1' was already replaced by 'K-2'",
        ),
        (
            {"K-1": "C-1"},
            {"K-1": Retirement("K-1", "K-2", "C-1", datetime(2026, 1, 1, tzinfo=UTC))},
            enrollment("C-1", "K-1"),
            errors.CardRetired,
            "card 'K-1' was replaced by 'K-2'",
        ),
        (
            {"K-1": "C-1"},
            {"K-1": Retirement("K-1", "K-2", "C-1", datetime(2026, 1, 1, tzinfo=UTC))},
            enrollment("C-5", "K-1"),
            errors.CardRetired,
            "card 'K-1' was replaced by 'K-2'",
        ),
    ],
    ids=[
        "old card held by nobody",
        "old card held by another",
        "new card held by another",
        "new card held by the same customer",
        "new card retired",
        "old card already replaced",
        "enrolling a retired card, its last holder",
        "enrolling a retired card, another customer",
    ],
)
def test_each_replacement_rule_rejects_by_name(
    holders: dict[str, str],
    retired: dict[str, Retirement],
    obj: dict[str, Any],
    named: type[errors.RuleViolation],
    reason: str,
) -> None:
    made, loaded = decided(obj, holders=holders, retired=retired)
    assert reasons(made) == [reason]
    assert made.recorded == [] and made.claims == [] and made.retirements == []
    assert (loaded.holders, loaded.retired) == (holders, retired)  # a refusal changes nothing
    ix = parse_interaction(dumps(obj))
    with pytest.raises(named):
        record(ix, dict.fromkeys(streams_named(ix)), dict(holders), dict(retired))


def test_a_swipe_or_purchase_on_a_retired_card_counts_only_when_made_before_the_replacement():
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    retired = {"K-1": Retirement("K-1", "K-2", "C-1", at)}
    before = swiped("K-1", "2026-03-01T11:59:59Z")
    same = swiped("K-1", NOON)
    after = purchase(card_id="K-1", occurred_at="2026-03-01T12:00:01Z")
    made, _ = decided(before, same, after, holders={"K-1": "C-1"}, retired=retired)
    assert [r.event_id for r in made.recorded] == [before["event_id"]]
    assert made.rejections == [
        Rejection(1, same["event_id"], "rule", "card 'K-1' was replaced by 'K-2'"),
        Rejection(2, after["event_id"], "rule", "card 'K-1' was replaced by 'K-2'"),
    ]
    assert made.alone == []  # decided on a retired card: nothing left to check at commit


def test_the_rule_holds_within_one_batch_and_a_customer_named_beside_the_card_is_not_ruled():
    made, _ = decided(
        enrollment("C-1", "K-1"),
        swiped("K-1", "2026-03-01T13:00:00Z"),  # before the replacement in the batch: counts
        replaced("C-1", "K-1", "K-2"),
        swiped("K-1", "2026-03-01T13:00:00Z"),  # after it, and later: refused
        swiped("K-1", "2026-03-01T11:00:00Z"),  # an offline till: counts
        interaction("card_swiped", card_id="K-1", customer_id="C-1", store_id="S-1"),
    )
    assert reasons(made) == ["card 'K-1' was replaced by 'K-2'"]
    assert [r.index for r in made.recorded] == [0, 1, 2, 4, 5]
    assert made.alone == [(1, "K-1")]
    assert made.unretired() == set()  # retired by the batch itself: nothing to check


def test_swipes_on_cards_not_retired_are_checked_again_at_commit() -> None:
    made, _ = decided(swiped("K-7", NOON), purchase(card_id="K-8"), holders={"K-7": "C-1"})
    assert made.unretired() == {"K-7", "K-8"}


def test_a_card_retired_by_another_worker_meanwhile_redecides_what_names_the_card() -> None:
    objs = [swiped("K-1", NOON), purchase(customer_id="C-9"), replaced("C-1", "K-1", "K-2")]
    items: list[Parsed] = [parse_interaction(dumps(o)) for o in objs]
    made, _ = decided(*objs, holders={"K-1": "C-1"})
    redone, streams = involved(items, made, {"K-1"})
    assert redone == [0, 2]
    assert {"card-K-1", "customer-C-1", "card-K-2"} <= streams
