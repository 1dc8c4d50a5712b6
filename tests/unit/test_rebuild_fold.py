"""The bulk rebuild's folds (`projections.rebuild`), with no server: the card rules of the
live projection, holders learnt from claims and from enrollments alike, and passes."""

from __future__ import annotations

import uuid
from typing import Any

from domain import profile as fold
from projections.rebuild import Rebuild, bucket


def event(type: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    payload = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": fields.pop("occurred_at", "2026-03-01T10:00:00Z"),
        **fields,
    }
    return type, payload


def swipe(card: str) -> tuple[str, dict[str, Any]]:
    return event("card_swiped", card_id=card, store_id="S-1")


def enrolled(customer: str, card: str) -> tuple[str, dict[str, Any]]:
    return event("customer_enrolled", customer_id=customer, card_id=card, marketing_consent=True)


def claimed(enrollment: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The card stream's side of an enrollment (older ledgers): same event_id."""
    payload = enrollment[1]
    return "card_claimed", {
        "event_id": payload["event_id"],
        "occurred_at": payload["occurred_at"],
        "customer_id": payload["customer_id"],
        "card_id": payload["card_id"],
    }


def rebuilt(events: list[tuple[str, dict[str, Any]]], part: int = 0, passes: int = 1) -> Rebuild:
    rebuild = Rebuild(part, passes)
    for position, (type, payload) in enumerate(events, start=1):
        rebuild.feed(position, type, payload)
    rebuild.open_sealed({})
    return rebuild


def profiles(rebuild: Rebuild) -> dict[str, dict[str, Any]]:
    return {c: fold.render(s) for c, s in rebuild.states.items()}


def test_card_only_interactions_count_for_the_holder_learnt_from_either_record() -> None:
    joined = enrolled("C-1", "K-1")
    early, late, stray = swipe("K-1"), swipe("K-1"), swipe("K-9")
    old = rebuilt([early, joined, claimed(joined), late, stray])  # claims on card streams
    new = rebuilt([early, joined, late, stray])  # enrollments only
    claim_first = rebuilt([early, claimed(joined), joined, late, stray])
    for rebuild in (old, new, claim_first):
        assert rebuild.holders == {"K-1": "C-1"}
        assert profiles(rebuild)["C-1"]["swipe_count"] == 2
        assert profiles(rebuild)["C-1"]["interaction_count"] == 3
        assert list(rebuild.parked) == ["K-9"], "a card nobody holds keeps its interactions"
        assert rebuild.triggers["C-1"][0] == "card_swiped"
    assert old.states == new.states == claim_first.states


def test_a_cards_first_holder_stands() -> None:
    first, second = enrolled("C-1", "K-1"), enrolled("C-2", "K-1")
    rebuild = rebuilt([first, second, swipe("K-1")])
    assert rebuild.holders == {"K-1": "C-1"}
    assert profiles(rebuild)["C-1"]["swipe_count"] == 1


def test_parked_interactions_are_credited_as_the_enrollment() -> None:
    joined = enrolled("C-1", "K-1")
    rebuild = rebuilt([swipe("K-1"), joined])
    assert rebuild.triggers["C-1"] == ("customer_enrolled", joined[1]["event_id"])
    assert rebuild.positions["C-1"] == 2


def test_passes_split_the_customers_and_together_give_one_pass() -> None:
    events = []
    for n in range(40):
        joined = enrolled(f"C-{n}", f"K-{n}")
        events += [swipe(f"K-{n}"), joined, claimed(joined), swipe(f"K-{n}")]
    events += [swipe("K-unheld")]
    events += [event("dispute_opened", partner_id="P-1", dispute_id="D-1")]
    whole = rebuilt(events)
    parts = [rebuilt(events, part, 3) for part in range(3)]
    merged: dict[str, Any] = {}
    for part, rebuild in enumerate(parts):
        assert all(bucket(c, 3) == part for c in rebuild.states)
        assert not merged.keys() & rebuild.states.keys()
        merged |= rebuild.states
        assert bool(rebuild.partners) == (part == 0)
    assert merged == whole.states
    assert {k: v for p in parts for k, v in p.holders.items()} == whole.holders
    assert all(p.parked.keys() == {"K-unheld"} for p in parts)  # pass 0 alone writes them


def test_sealed_enrollments_are_folded_once_the_keys_are_read() -> None:
    joined = event("customer_enrolled", customer_id="C-1", card_id="K-1", name="aesgcm:AAAA")
    rebuild = Rebuild()
    rebuild.feed(1, *joined)
    assert rebuild.sealed_owners() == {"C-1"}
    rebuild.open_sealed({"C-1": None})  # a forgotten customer's key: the field stays null
    assert profiles(rebuild)["C-1"]["name"] is None
    assert profiles(rebuild)["C-1"]["cards"] == ["K-1"]
