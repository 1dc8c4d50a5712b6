"""Duplicate enrollments later merged in the simulator's retail traffic (contract section
8): the merges and unmerges are acceptable to the ledger whatever order it reads the
topic's partitions in (given chunks of `MERGE_LAG`), and with faults each merge rule is
broken. The checks restate the section's merge rules independently of
`producers.merge_traffic`'s own bookkeeping."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from random import Random
from typing import Any

import pytest

from producers.merge_traffic import MERGE_LAG, RULE_FAULTS
from producers.simulator import SimulationPlan, simulate, simulate_labelled

PLAN = SimulationPlan(customers=400, partners=10, events=40_000, seed=7, retail=True)
FAULTY = SimulationPlan(customers=400, partners=10, events=60_000, seed=3, faults=True, retail=True)
MERGES = ("customers_merged", "customers_unmerged")
PERSONAL = ("name", "birth_date", "email")


def key(obj: dict[str, Any]) -> str:
    """The contract's key rule, for the types merges depend on."""
    return str(obj.get("customer_id") or obj["survivor_id"])


@dataclass
class Forest:
    """Enrollments and who is merged directly into whom, in yield order, with the step of
    every merge-related event naming each customer."""

    customers: int
    enrolled: dict[str, int] = field(default_factory=dict)  # customer -> step enrolled
    people: dict[str, dict[str, Any]] = field(default_factory=dict)  # e-mail -> original
    parent: dict[str, str] = field(default_factory=dict)
    named: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # id -> (step, key)
    merged: list[tuple[str, str]] = field(default_factory=list)
    unmerged: list[tuple[str, str]] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)

    def root(self, c: str) -> str:
        while c in self.parent:
            c = self.parent[c]
        return c

    def tree(self, c: str) -> set[str]:
        top = self.root(c)
        return {x for x in {*self.enrolled, *self.parent} if self.root(x) == top}

    def lag_kept(self, i: int, at: str, members: set[str]) -> None:
        """Every earlier event naming a member, keyed by another customer than `at`, is
        `MERGE_LAG` yielded events old."""
        for x in members:
            for step, k in self.named.get(x, []):
                assert k == at or i - step >= MERGE_LAG, (i, at, x, step, k)

    def valid(self, i: int, obj: dict[str, Any]) -> None:
        kind = obj["type"]
        if kind == "customer_enrolled":
            cid = obj["customer_id"]
            if cid in self.enrolled:
                return
            self.enrolled[cid] = i
            self.named.setdefault(cid, []).append((i, cid))
            if int(cid[2:]) <= self.customers:
                self.people[obj["email"]] = obj
                return
            original = self.people[obj["email"]]  # the same person, enrolled before
            assert {k: obj[k] for k in PERSONAL} == {k: original[k] for k in PERSONAL}
            assert obj["card_id"] != original["card_id"]
            self.seen["duplicate"] += 1
        elif kind == "customers_merged":
            s, m = obj["survivor_id"], obj["merged_id"]
            assert s in self.enrolled and m in self.enrolled, obj
            assert m not in self.parent, f"merged already: {obj}"
            assert self.root(s) != m, f"a loop: {obj}"
            assert i - self.enrolled[s] >= MERGE_LAG and i - self.enrolled[m] >= MERGE_LAG
            self.lag_kept(i, s, self.tree(s) | self.tree(m))
            self.seen["chain" if s in self.parent else "merge"] += 1
            self.seen[f"reason {obj.get('reason')}"] += 1
            self.parent[m] = s
            self.merged.append((s, m))
            self.name(i, obj)
        elif kind == "customers_unmerged":
            s, m = obj["survivor_id"], obj["merged_id"]
            assert self.parent.get(m) == s, f"not merged directly: {obj}"
            assert (s, m) in self.merged
            self.lag_kept(i, s, self.tree(s))
            del self.parent[m]
            self.unmerged.append((s, m))
            self.seen["unmerge"] += 1
            self.name(i, obj)
        elif (cid := obj.get("customer_id")) in self.enrolled and int(cid[2:]) > self.customers:
            self.seen["merged acts" if cid in self.parent else "acts"] += 1  # a duplicate's

    def name(self, i: int, obj: dict[str, Any]) -> None:
        for c in (obj["survivor_id"], obj["merged_id"]):
            self.named.setdefault(c, []).append((i, obj["survivor_id"]))

    def fault(self, i: int, obj: dict[str, Any]) -> str | None:
        """Which merge rule `obj` breaks, if any (None: not a merge or unmerge)."""
        if obj["type"] not in MERGES:
            return None
        s, m = obj["survivor_id"], obj["merged_id"]
        self.name(i, obj)  # its fate must not depend on the partition order either
        if obj["type"] == "customers_unmerged":
            assert self.parent.get(m) != s, f"breaks no rule: {obj}"
            if (s, m) in self.unmerged:
                self.seen["unmerged again"] += 1
            return "not_merged"
        if s not in self.enrolled or m not in self.enrolled:
            return "never_enrolled"
        if m in self.parent:
            if self.parent[m] != s:
                self.seen["merged elsewhere"] += 1
            return "already_merged"
        assert self.root(s) == m, f"breaks no rule: {obj}"
        return "loop"


def replay(plan: SimulationPlan) -> tuple[Forest, Counter[str]]:
    forest, faults = Forest(plan.customers), Counter[str]()
    for i, (obj, fault) in enumerate(simulate_labelled(plan)):
        if fault is None:
            forest.valid(i, obj)
        elif fault == "rule" and (broken := forest.fault(i, obj)):
            faults[broken] += 1
    for c in {*forest.named} - {*forest.enrolled}:  # never enrolled, not merely later
        assert c.startswith("C-N"), c
    return forest, faults


@cache
def replayed(plan: SimulationPlan) -> tuple[Forest, Counter[str]]:
    return replay(plan)


def fates(events: list[tuple[dict[str, Any], str | None]]) -> list[bool]:
    """The section's merge rules applied in the order given: accepted or not, each."""
    enrolled: set[str] = set()
    parent: dict[str, str] = {}
    accepted = []
    for obj, fault in events:
        kind, ok = obj["type"], True
        if kind == "customer_enrolled":  # a faulty one (a retired card) enrolls nobody
            ok = fault is None
            if ok:
                enrolled.add(obj["customer_id"])
        elif kind == "customers_merged":
            s, m = obj["survivor_id"], obj["merged_id"]
            top = s
            while top in parent:
                top = parent[top]
            ok = s in enrolled and m in enrolled and m not in parent and top != m
            if ok:
                parent[m] = s
        else:
            ok = parent.get(obj["merged_id"]) == obj["survivor_id"]
            if ok:
                del parent[obj["merged_id"]]
        accepted.append(ok)
    return accepted


def interleavings(chunk: list[Any], rng: Random) -> list[list[Any]]:
    """Orders a ledger may read a chunk in: each key's events in order, keys in any order
    (every key its own partition: finer than any real topic)."""
    queues: dict[str, list[Any]] = {}
    for item in chunk:
        queues.setdefault(key(item[1][0]), []).append(item)
    keys = sorted(queues)
    orders = [[x for k in keys for x in queues[k]], [x for k in keys[::-1] for x in queues[k]]]
    for _ in range(4):  # and a few shuffles that keep each key's order
        heads = {k: 0 for k in keys}
        order = []
        while heads:
            k = rng.choice(sorted(heads))
            order.append(queues[k][heads[k]])
            heads[k] += 1
            if heads[k] == len(queues[k]):
                del heads[k]
        orders.append(order)
    return orders


@pytest.mark.parametrize("plan", [PLAN, FAULTY], ids=["valid", "faults"])
@pytest.mark.parametrize("offset", [0, MERGE_LAG // 2])
def test_every_merge_has_one_fate_whatever_order_partitions_are_read_in(
    plan: SimulationPlan, offset: int
) -> None:
    """Published in chunks of `MERGE_LAG`, each ingested before the next: valid merges and
    unmerges are accepted, faulty ones rejected, however a chunk's keys interleave."""
    events = [
        (i, (obj, fault))
        for i, (obj, fault) in enumerate(simulate_labelled(plan))
        if fault in (None, "rule") and obj["type"] in ("customer_enrolled", *MERGES)
    ]
    expected = [fault is None for _i, (_obj, fault) in events]
    assert fates([item for _i, item in events]) == expected  # in yield order
    assert sum(obj["type"] in MERGES for _i, (obj, _f) in events) > 5
    rng = Random(1)
    chunks: dict[int, list[Any]] = {}
    for i, item in events:
        chunks.setdefault((i + offset) // MERGE_LAG, []).append((i, item))
    for _ in range(6):
        chosen = [rng.choice(interleavings(chunk, rng)) for _k, chunk in sorted(chunks.items())]
        read = [item for order in chosen for item in order]
        got = dict(zip((i for i, _ in read), fates([item for _i, item in read]), strict=True))
        assert [got[i] for i, _ in events] == expected


def test_retail_traffic_merges_duplicates_as_the_rules_allow() -> None:
    forest, _ = replayed(PLAN)
    seen = forest.seen
    assert 10 <= seen["duplicate"] <= 40, seen  # of 400 customers
    assert seen["merge"] + seen["chain"] >= seen["duplicate"] / 2, seen
    assert seen["chain"] > 0 and seen["unmerge"] > 0, seen
    assert seen["unmerge"] < (seen["merge"] + seen["chain"]) / 2, seen
    assert seen["acts"] > 0 and seen["merged acts"] > 0, seen  # merged ones still act
    assert seen["reason None"] > 0 and len([k for k in seen if k.startswith("reason")]) > 2


@pytest.mark.parametrize("seed", [1, 2])
def test_valid_traffic_keeps_the_merge_rules_for_other_seeds(seed: int) -> None:
    plan = SimulationPlan(customers=150, partners=4, events=20_000, seed=seed, retail=True)
    forest, _ = replay(plan)
    assert forest.seen["merge"] > 0


def test_each_merge_rule_is_broken_with_faults() -> None:
    _, faults = replay(SimulationPlan(**{**FAULTY.__dict__, "retail": False}))
    assert not faults  # not retail: no merge traffic
    forest, faults = replayed(FAULTY)
    assert set(faults) == set(RULE_FAULTS), faults
    assert forest.seen["merged elsewhere"] > 0 and forest.seen["unmerged again"] > 0, forest.seen
    assert forest.seen["merge"] > 0


def test_a_plan_shorter_than_the_lag_makes_no_valid_merge() -> None:
    plan = SimulationPlan(customers=60, partners=4, events=MERGE_LAG, seed=2, retail=True)
    forest, _ = replay(plan)
    assert not forest.merged and forest.seen["duplicate"] > 0  # enrolled twice, not merged


def test_equal_plans_give_identical_merge_traffic() -> None:
    plan = SimulationPlan(customers=100, events=12_000, seed=4, faults=True, retail=True)
    first = list(simulate_labelled(plan))
    assert any(obj["type"] == "customers_merged" and not f for obj, f in first)
    assert first == list(simulate_labelled(SimulationPlan(**plan.__dict__)))
    assert first != list(simulate_labelled(SimulationPlan(**{**plan.__dict__, "seed": 5})))


def test_plain_traffic_has_no_merges_nor_duplicates() -> None:
    plan = SimulationPlan(customers=100, events=12_000, seed=4, faults=True)
    for obj in simulate(plan):
        assert obj["type"] not in MERGES
        assert int(obj.get("customer_id", "C-1")[2:]) <= plan.customers
