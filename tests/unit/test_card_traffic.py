"""Lost and replaced cards in the simulator's retail traffic (contract section 8): the
replacements, offline tills, returns and early uses of a new card are acceptable to the
ledger, and with faults each card rule is broken. The checks restate the section's card
rules independently of `producers.card_traffic`'s own bookkeeping."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from producers.card_traffic import RULE_FAULTS, SKEW
from producers.simulator import SimulationPlan, _Simulator, simulate, simulate_labelled

PLAN = SimulationPlan(customers=400, partners=10, events=30_000, seed=7, retail=True)
TILL = ("card_swiped", "purchase")


@dataclass
class Cards:
    """Who holds which card, and which cards were retired when, in yield order."""

    holder: dict[str, str] = field(default_factory=dict)  # card -> customer holding it
    retired: dict[str, tuple[str, str]] = field(default_factory=dict)  # card -> (who, when)
    named_alone: dict[str, list[str]] = field(default_factory=dict)  # card -> occurred_ats
    seen: Counter[str] = field(default_factory=Counter)

    def valid(self, obj: dict[str, Any]) -> None:
        kind, card = obj["type"], obj.get("card_id", "")
        if kind == "customer_enrolled":
            assert card not in self.retired, obj
            assert self.holder.setdefault(card, obj["customer_id"]) == obj["customer_id"], obj
        elif kind == "card_replaced":
            old, new, who = obj["old_card_id"], obj["new_card_id"], obj["customer_id"]
            assert self.holder.get(old) == who, f"not the customer's current card: {obj}"
            assert new not in self.holder and new not in self.retired, f"issued before: {obj}"
            for at in self.named_alone.get(old, []):  # the ledger may record these later
                assert at < obj["occurred_at"], f"a swipe of {old} at {at} would be rejected"
            if new in self.named_alone:
                self.seen["used before its claim"] += 1
            del self.holder[old]
            self.holder[new], self.retired[old] = who, (who, obj["occurred_at"])
            self.seen["replaced"] += 1
            self.seen[f"reason {obj.get('reason')}"] += 1
        elif kind in TILL and "customer_id" not in obj:
            if card in self.retired:  # yielded after the replacement: an offline till
                assert obj["occurred_at"] < self.retired[card][1], obj
                self.seen["offline"] += 1
            self.named_alone.setdefault(card, []).append(obj["occurred_at"])
        elif kind in TILL and card:
            assert self.holder.get(card) == obj["customer_id"], f"not the current card: {obj}"
        elif kind == "purchase_returned" and obj.get("card_id") in self.retired:
            self.seen["returned with a retired card"] += 1

    def fault(self, obj: dict[str, Any]) -> str | None:
        """Which card rule `obj` breaks, if any."""
        kind, card = obj["type"], obj.get("card_id", "")
        if kind == "card_replaced":
            if self.holder.get(obj["old_card_id"]) != obj["customer_id"]:
                return "old_not_held"
            if obj["new_card_id"] in self.holder:
                return "new_held"
            assert obj["new_card_id"] in self.retired, f"breaks no rule: {obj}"
            return "new_retired"
        if kind == "customer_enrolled" and card in self.retired:
            return "enroll_retired"
        if kind in TILL and "customer_id" not in obj and card in self.retired:
            assert obj["occurred_at"] >= self.retired[card][1], f"an offline till: {obj}"
            return "late_swipe"
        return None


def replay(plan: SimulationPlan) -> tuple[Cards, Counter[str]]:
    cards, faults = Cards(), Counter[str]()
    for obj, fault in simulate_labelled(plan):
        if fault is None:
            cards.valid(obj)
        elif fault == "rule" and (broken := cards.fault(obj)):
            faults[broken] += 1
    return cards, faults


def test_retail_traffic_replaces_cards_as_the_rules_allow() -> None:
    cards, _ = replay(PLAN)
    customer_events = sum(
        1 for obj in simulate(PLAN) if "customer_id" in obj and obj["type"] != "note_added"
    )
    assert 0.002 < cards.seen["replaced"] / customer_events < 0.004, cards.seen
    reasons = {k: n for k, n in cards.seen.items() if k.startswith("reason")}
    assert reasons["reason lost"] + reasons["reason damaged"] > cards.seen["replaced"] / 2
    assert {"reason stolen", "reason upgrade", "reason None"} <= set(reasons)
    assert cards.seen["offline"] > 0, cards.seen
    assert cards.seen["used before its claim"] > 0, cards.seen
    assert cards.seen["returned with a retired card"] > 0, cards.seen


def test_after_a_replacement_the_tills_name_the_new_card() -> None:
    current: dict[str, str] = {}  # customer -> its latest new card
    named_new = 0
    for obj in simulate(PLAN):
        if obj["type"] == "card_replaced":
            current[obj["customer_id"]] = obj["new_card_id"]
        elif obj["type"] in TILL and obj.get("customer_id") in current and "card_id" in obj:
            named_new += obj["card_id"] == current[obj["customer_id"]]
    assert named_new > 20  # and none names a card not held: `Cards.valid`


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_valid_traffic_keeps_the_card_rules_for_other_seeds(seed: int) -> None:
    plan = SimulationPlan(customers=60, partners=4, events=6000, seed=seed, retail=True)
    cards, _ = replay(plan)
    assert cards.seen["replaced"] > 0


def test_each_card_rule_is_broken_with_faults() -> None:
    plan = SimulationPlan(customers=400, partners=10, events=60_000, seed=3, faults=True)
    _, faults = replay(plan)  # not retail: no card traffic
    assert not faults
    cards, faults = replay(SimulationPlan(**{**plan.__dict__, "retail": True}))
    assert set(faults) == set(RULE_FAULTS), faults
    assert cards.seen["replaced"] > 0


def test_equal_plans_give_identical_card_traffic() -> None:
    plan = SimulationPlan(customers=100, events=8000, seed=4, faults=True, retail=True)
    first = list(simulate_labelled(plan))
    assert any(obj["type"] == "card_replaced" for obj, _ in first)
    assert first == list(simulate_labelled(SimulationPlan(**plan.__dict__)))
    assert first != list(simulate_labelled(SimulationPlan(**{**plan.__dict__, "seed": 5})))


def test_plain_traffic_has_no_replacements() -> None:
    assert not any(o["type"] == "card_replaced" for o in simulate(SimulationPlan(events=5000)))


def test_a_card_named_alone_within_a_tills_skew_is_not_replaced_yet() -> None:
    """A swipe yielded before the replacement may be recorded after it (another key), so
    it must have occurred before it: a till's clock may run `SKEW` seconds ahead."""
    sim = _Simulator(SimulationPlan(customers=1, partners=0, events=10, retail=True))
    sim.enrolled, sim.ts = 1, sim.t0 + 1000
    card = sim.cards[0][-1]
    sim.replacements.seen[card] = sim.ts - SKEW
    assert sim.replacements.replace(sim, 0) is None and sim.cards[0][-1] == card
    sim.replacements.seen[card] = sim.ts - SKEW - 1
    made = sim.replacements.replace(sim, 0)
    assert made is not None and made["old_card_id"] == card
    assert sim.cards[0][-1] == made["new_card_id"] != card
