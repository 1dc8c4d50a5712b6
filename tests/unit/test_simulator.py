"""The simulator's traffic is deterministic, believable and, unless faults are asked for,
acceptable to the ledger in full: the checks here restate contract section 4 independently
of the simulator's own bookkeeping."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from producers.simulator import SimulationPlan, _uuid4, simulate, simulate_labelled

TYPES = {
    "customer_enrolled",
    "card_swiped",
    "purchase",
    "call",
    "complaint_filed",
    "complaint_resolved",
    "survey_answered",
    "consent_changed",
    "contract_changed",
    "dispute_opened",
    "dispute_resolved",
}
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MONEY = re.compile(r"^\d+\.\d{2}$")


def at(obj: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(obj["occurred_at"].replace("Z", "+00:00"))


def assert_plain_json(value: Any) -> None:
    """Only str, int, bool, list and dict: what any JSON encoder writes the same way."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str)
            assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_json(item)
    else:
        assert type(value) in (str, int, bool), value


def assert_valid_alone(obj: dict[str, Any]) -> None:
    """Common fields, types and totals: what the ledger calls `invalid` when broken."""
    assert_plain_json(obj)
    assert uuid.UUID(obj["event_id"]).version == 4
    assert obj["type"] in TYPES
    assert STAMP.match(obj["occurred_at"]), obj
    assert obj["source"] and isinstance(obj["source"], str)
    assert obj["schema_version"] == 1
    kind = obj["type"]
    if kind in ("card_swiped", "purchase"):
        assert "customer_id" in obj or "card_id" in obj
        assert obj["store_id"]
    if kind == "purchase":
        assert obj["lines"] and obj["currency"] in ("EUR", "USD")
        total = Decimal(0)
        for line in obj["lines"]:
            assert type(line["quantity"]) is int and line["quantity"] > 0
            assert MONEY.match(line["unit_price"]) and line["sku"] and line["category"]
            total += line["quantity"] * Decimal(line["unit_price"])
        assert MONEY.match(obj["total"]) and Decimal(obj["total"]) == total, obj
    if kind == "call":
        assert obj["direction"] in ("inbound", "outbound")
        assert type(obj["duration_seconds"]) is int and obj["duration_seconds"] >= 0
    if kind == "complaint_filed":
        assert obj["severity"] in ("low", "medium", "high")
    if kind == "survey_answered":
        assert type(obj["score"]) is int and 0 <= obj["score"] <= 10
    if kind in ("customer_enrolled", "consent_changed"):
        assert type(obj.get("marketing_consent", False)) is bool
    if kind == "customer_enrolled" and "birth_date" in obj:
        assert DATE.match(obj["birth_date"])
    if kind == "contract_changed":
        assert obj["change"] in ("proposed", "signed", "amended", "renewed", "terminated")
        assert obj.get("partner_kind", "vendor") in (
            "vendor",
            "supplier",
            "distributor",
            "reseller",
        )
        for field in ("effective_at", "ends_at"):
            assert field not in obj or DATE.match(obj[field])
        assert "value" not in obj or MONEY.match(obj["value"])


class Streams:
    """The contract's stream rules, applied in yield order (one stream = one Kafka key)."""

    def __init__(self) -> None:
        self.enrolled: set[str] = set()
        self.card_owner: dict[str, str] = {}
        self.complaints: dict[tuple[str, str], bool] = {}  # (customer, id) -> resolved
        self.contracts: dict[tuple[str, str], str] = {}  # (partner, id) -> last change
        self.disputes: dict[tuple[str, str], bool] = {}
        self.event_ids: set[str] = set()
        self.order_ids: set[str] = set()

    def record(self, obj: dict[str, Any]) -> None:
        kind, customer = obj["type"], str(obj.get("customer_id", ""))
        assert obj["event_id"] not in self.event_ids, "valid traffic never repeats an event_id"
        self.event_ids.add(obj["event_id"])
        if kind == "customer_enrolled":
            owner = self.card_owner.setdefault(obj["card_id"], customer)
            assert owner == customer, f"card {obj['card_id']} given to a second customer"
            self.enrolled.add(customer)
        elif customer:
            assert customer in self.enrolled, f"{kind} before {customer} enrolled"
        if kind == "purchase":
            assert obj["order_id"] not in self.order_ids
            self.order_ids.add(obj["order_id"])
        elif kind == "complaint_filed":
            assert (customer, obj["complaint_id"]) not in self.complaints
            self.complaints[customer, obj["complaint_id"]] = False
        elif kind == "complaint_resolved":
            assert self.complaints.get((customer, obj["complaint_id"])) is False, obj
            self.complaints[customer, obj["complaint_id"]] = True
        elif kind == "contract_changed":
            key, change = (obj["partner_id"], obj["contract_id"]), obj["change"]
            last = self.contracts.get(key)
            assert last != "terminated", f"{change} after terminated: {obj}"
            assert (last is None) == (change == "proposed"), obj
            self.contracts[key] = change
        elif kind == "dispute_opened":
            assert (obj["partner_id"], obj["dispute_id"]) not in self.disputes
            self.disputes[obj["partner_id"], obj["dispute_id"]] = False
        elif kind == "dispute_resolved":
            assert self.disputes.get((obj["partner_id"], obj["dispute_id"])) is False, obj
            self.disputes[obj["partner_id"], obj["dispute_id"]] = True


def assert_acceptable(interactions: Iterable[dict[str, Any]]) -> Streams:
    streams = Streams()
    for obj in interactions:
        assert_valid_alone(obj)
        streams.record(obj)
    return streams


def test_the_same_plan_gives_identical_traffic_and_another_seed_differs() -> None:
    plan = SimulationPlan(events=3000, faults=True)
    first = list(simulate(plan))
    assert first == list(simulate(SimulationPlan(events=3000, faults=True)))
    assert json.dumps(first) == json.dumps(list(simulate(plan)))
    assert first != list(simulate(SimulationPlan(events=3000, faults=True, seed=2)))


def test_global_random_state_neither_matters_nor_moves() -> None:
    random.seed(123)
    before = random.getstate()
    first = list(simulate(SimulationPlan(events=500)))
    assert random.getstate() == before
    random.seed(456)
    assert list(simulate(SimulationPlan(events=500))) == first


@pytest.mark.parametrize("events", [0, 1, 7, 2000, 5001])
@pytest.mark.parametrize("faults", [False, True])
def test_exactly_the_planned_number_of_interactions_is_yielded(events: int, faults: bool) -> None:
    assert sum(1 for _ in simulate(SimulationPlan(events=events, faults=faults))) == events


def test_valid_traffic_passes_every_contract_check() -> None:
    traffic = list(simulate(SimulationPlan()))
    streams = assert_acceptable(traffic)
    kinds = Counter(obj["type"] for obj in traffic)
    assert set(kinds) == TYPES, kinds
    assert kinds["purchase"] > kinds["card_swiped"] > kinds["call"] > kinds["complaint_filed"]
    assert len(streams.enrolled) == 200
    resolved = sum(streams.complaints.values())
    assert 0.6 < resolved / len(streams.complaints) < 1  # most complaints, not all
    assert 0 < sum(streams.disputes.values()) < len(streams.disputes)


@pytest.mark.parametrize("seed", [2, 3, 99])
@pytest.mark.parametrize(("customers", "partners"), [(50, 3), (1, 1), (0, 4), (30, 0)])
def test_rules_hold_for_other_seeds_and_shapes(seed: int, customers: int, partners: int) -> None:
    plan = SimulationPlan(customers=customers, partners=partners, events=1500, seed=seed)
    assert_acceptable(simulate(plan))


def test_a_plan_with_nobody_in_it_is_refused() -> None:
    with pytest.raises(ValueError):
        simulate(SimulationPlan(customers=0, partners=0))


def test_time_starts_at_the_plan_and_runs_forward_for_about_120_days() -> None:
    start = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    traffic = list(simulate(SimulationPlan(events=5000, start=start)))
    times = [at(obj) for obj in traffic]
    assert times[0] == start and min(times) >= start
    assert timedelta(days=115) < max(times) - start <= timedelta(days=120)
    latest = times[0]
    for moment in times:  # a few minutes out of order at most
        assert moment >= latest - timedelta(minutes=10)
        latest = max(latest, moment)
    assert any(later < earlier for earlier, later in zip(times, times[1:], strict=False))


def test_some_swipes_and_purchases_name_only_a_card_some_enrolled_later() -> None:
    traffic = list(simulate(SimulationPlan()))
    till = [obj for obj in traffic if obj["type"] in ("card_swiped", "purchase")]
    card_only = [obj for obj in till if "customer_id" not in obj]
    assert 0.02 < len(card_only) / len(till) < 0.09
    enrolled_at: dict[str, int] = {}
    for position, obj in enumerate(traffic):
        if obj["type"] == "customer_enrolled":
            enrolled_at.setdefault(obj["card_id"], position)
    later = [obj for obj in card_only if enrolled_at[obj["card_id"]] > traffic.index(obj)]
    assert later, "no card-only interaction names a card enrolled later"
    assert all(obj["card_id"] in enrolled_at for obj in card_only)  # every card is held at last


def test_a_few_customers_get_a_second_card() -> None:
    traffic = list(simulate(SimulationPlan(events=5000)))
    enrollments = Counter(o["customer_id"] for o in traffic if o["type"] == "customer_enrolled")
    twice = [customer for customer, n in enrollments.items() if n == 2]
    assert 0 < len(twice) < 0.2 * len(enrollments) and max(enrollments.values()) == 2


def test_activity_is_heavy_tailed() -> None:
    traffic = simulate(SimulationPlan(events=20_000))
    per_customer = Counter(o["customer_id"] for o in traffic if "customer_id" in o)
    counts = sorted(per_customer.values(), reverse=True)
    top_tenth = sum(counts[: len(counts) // 10])
    assert top_tenth > 0.35 * sum(counts)
    assert counts[len(counts) // 2] < 0.2 * counts[0]


def test_purchases_look_like_baskets_in_two_currencies() -> None:
    purchases = [o for o in simulate(SimulationPlan(events=5000)) if o["type"] == "purchase"]
    assert {len(o["lines"]) for o in purchases} == {1, 2, 3, 4, 5}
    assert len({line["category"] for o in purchases for line in o["lines"]}) == 10
    currencies = Counter(o["currency"] for o in purchases)
    assert currencies["EUR"] > 4 * currencies["USD"] > 0


def test_some_contracts_end_within_60_days_of_the_traffic_end() -> None:
    plan = SimulationPlan(events=5000)
    end = plan.start + timedelta(days=120)
    ends = [
        datetime.fromisoformat(o["ends_at"]).replace(tzinfo=UTC)
        for o in simulate(plan)
        if o["type"] == "contract_changed" and "ends_at" in o
    ]
    assert any(end <= when <= end + timedelta(days=60) for when in ends)
    assert any(when > end + timedelta(days=60) for when in ends)


def test_faults_are_about_two_percent_of_four_even_kinds() -> None:
    labelled = list(simulate_labelled(SimulationPlan(events=20_000, faults=True)))
    kinds = Counter(fault for _obj, fault in labelled if fault)
    assert set(kinds) == {"duplicate", "conflict", "invalid", "rule"}
    assert 0.01 < sum(kinds.values()) / len(labelled) < 0.03
    assert max(kinds.values()) - min(kinds.values()) <= 1  # a rotation


def test_faults_look_like_the_failures_they_stand_for() -> None:
    labelled = list(simulate_labelled(SimulationPlan(events=20_000, faults=True)))
    first_seen: dict[str, dict[str, Any]] = {}
    valid = []
    for obj, fault in labelled:
        earlier = first_seen.get(obj["event_id"])
        if fault is None:
            valid.append(obj)
        if fault == "duplicate":
            assert earlier == obj
        elif fault == "conflict":
            assert earlier is not None and earlier != obj
            assert_valid_alone(obj)
        elif fault == "invalid":
            assert earlier is None
            with pytest.raises((AssertionError, KeyError)):
                assert_valid_alone(obj)
        elif fault == "rule":
            assert earlier is None
            assert_valid_alone(obj)
        first_seen.setdefault(obj["event_id"], obj)
    streams = assert_acceptable(valid)  # the ledger rejects faults, so they change nothing
    for obj, fault in labelled:
        if fault == "rule":
            with pytest.raises(AssertionError):
                streams.record(obj)
    ids = Counter(obj["event_id"] for obj in simulate(SimulationPlan(faults=True)))
    assert any(n > 1 for n in ids.values())  # the default plan has duplicates too


def test_the_fast_uuid_is_the_standard_version_4_text() -> None:
    rng = random.Random(7)
    for bits in [0, 2**128 - 1, *(rng.getrandbits(128) for _ in range(1000))]:
        assert _uuid4(bits) == str(uuid.UUID(int=bits, version=4))


def test_the_domain_model_accepts_all_valid_traffic_and_rejects_invalid_faults() -> None:
    interactions = pytest.importorskip("domain.interactions")
    for obj in simulate(SimulationPlan(events=5000)):
        interactions.validate_object(obj)
    for obj, fault in simulate_labelled(SimulationPlan(events=20_000, faults=True)):
        if fault == "invalid":
            with pytest.raises(interactions.RejectedInteraction):
                interactions.validate_object(obj)
        else:
            interactions.validate_object(obj)
