"""Duplicate enrollments later merged in simulated traffic (contract section 8): a person
enrolled a second time under a new customer id (same name, e-mail and birth date, a card
of its own), a few interactions naming the duplicate, then `customers_merged` with the
original as survivor (now and then a chain: a later duplicate merged into an earlier one
that is itself merged), and sometimes `customers_unmerged` of that pair; with faults,
merges and unmerges that break each merge rule.

Kept apart from `producers.simulator`, which calls these when its plan asks for retail
life (`SimulationPlan.retail`); each draws from the simulator's own random generator, so
equal plans still give identical traffic.

Order. A merge or unmerge is keyed by its survivor, an enrollment by its customer: they
land on different partitions, and the ledger may read partitions in any order. So every
valid merge or unmerge, and every fault keyed by another customer of the same person, is
yielded at least `MERGE_LAG` events after every earlier merge-related event (an
enrollment, merge, unmerge or such fault) of the same person that is keyed by another
customer. Traffic published in chunks of at most `MERGE_LAG` interactions, each ingested
before the next is sent, then gives every merge and unmerge the same fate whatever order
the partitions are read in (the crash tests compare two runs). A plan too short for the
lag makes no valid merges. Faults keyed by the survivor that owns the state they break
(the same merge again, an unmerge of a pair not merged now), or naming a customer never
enrolled, are rejected in any order and need no lag. Merges never span two persons, so a
person's events are all that a merge's fate depends on.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from itertools import count
from typing import Any, Protocol

from domain.schema import InteractionType
from producers.fault_turns import in_turn

MERGE_LAG = 2000
"""Yielded interactions between a merge or unmerge and any earlier event of the same person
keyed by another customer (see the module docstring); independent of the plan, so a test
knows the chunk size that keeps merge fates independent of partition order."""
REASONS = ("same e-mail", "same name and birth date", "customer asked", "enrolled twice", None)
REASON_WEIGHTS = (35, 20, 10, 15, 20)
UNMERGE_REASONS = ("merged by mistake", "two different people", None)
UNMERGE_SHARE = 0.15
"""Of merges, the share later undone."""
MERGE_SHARE = 0.85
"""Of duplicates, the share merged (if the plan is long enough)."""
AGAIN_SHARE = 0.25
"""Of duplicate enrollments, the share of a person who has a duplicate already."""
CHAIN_SHARE = 0.5
"""Of merges of a person with a merged duplicate already, the share into that duplicate."""
RULE_FAULTS = ("never_enrolled", "already_merged", "loop", "not_merged")
"""The merge rules of section 8 a faulty merge or unmerge breaks, in turn: a customer never
enrolled (an id never issued); a `merged_id` merged into someone now (the same survivor
again, or, once the merge is `MERGE_LAG` old, another customer of the person); a survivor
whose root is `merged_id` (the root merged into a duplicate of its tree, once that tree is
`MERGE_LAG` old); an unmerge of a pair not merged directly now (never merged, or unmerged
already). A customer enrolled only later is not used: its fate would depend on the order
partitions are read in. Forgotten customers are never simulated."""


class Traffic(Protocol):
    """What the merge traffic needs of the simulator."""

    rng: Any
    step: int  # how many interactions were yielded before the one being made
    enrolled: int
    order: list[int]
    cids: list[str]
    home: list[int]
    cards: list[list[str]]
    consent: list[bool]
    favourites: list[list[str]]

    @property
    def card_no(self) -> Iterator[int]: ...

    def envelope(self, type: InteractionType, source: str, **fields: Any) -> dict[str, Any]: ...

    def till(self, c: int, purchase: bool, only: str | None = None) -> dict[str, Any]: ...


class Merges:
    """Every person's enrollments, who is merged directly into whom now, and the work owed."""

    def __init__(self) -> None:
        self.people: dict[int, dict[str, str]] = {}  # original -> its personal fields
        self.person: dict[int, int] = {}  # customer (original or duplicate) -> original
        self.dups: dict[int, list[int]] = {}  # original -> its duplicates, in order
        self.keyed: dict[int, dict[int, int]] = {}  # original -> {key customer: last step}
        self.parent: dict[int, int] = {}  # customer -> the one it is merged directly into
        self.unmerged: list[tuple[int, int]] = []  # (survivor, merged) merged, then parted
        # (ready at step, tie-break, what, customer): "act" of a duplicate, "merge" of
        # one, "unmerge" of one from its survivor.
        self.owed: list[tuple[int, int, str, int]] = []
        self.seq = count()
        self.faults = 0

    def enrolled(self, c: int, fields: dict[str, str], step: int) -> None:
        """An original's first enrollment was yielded at `step` (draws nothing)."""
        self.people[c] = fields
        self.person[c] = c
        self.keyed[c] = {c: step}

    def step(self, sim: Traffic, c: int, new: bool) -> dict[str, Any] | None:
        """A duplicate enrollment of `c`, or else owed work that is due (None: none is)."""
        return self.duplicate(sim, c) if new else self.due(sim)

    def duplicate(self, sim: Traffic, c: int) -> dict[str, Any] | None:
        """`c` enrolled again under a new id and card (None: `c` has two already)."""
        rng, twice = sim.rng, sorted(self.dups)
        if twice and rng.random() < AGAIN_SHARE:  # some people enroll again and again
            c = twice[int(rng.random() * len(twice))]
        dups = self.dups.setdefault(c, [])
        if c not in self.people or len(dups) >= 2:
            return None
        d, now = len(sim.cids), sim.step
        sim.cids.append(f"C-{d + 1:05d}")  # numbered on after every original
        sim.cards.append([f"K-{next(sim.card_no):05d}"])
        sim.home.append(sim.home[sim.order[int(rng.random() * sim.enrolled)]])  # another till
        sim.favourites.append(sim.favourites[c])  # the same person's tastes
        sim.consent.append(rng.random() < 0.6)
        dups.append(d)
        self.person[d] = c
        self.keyed[c][d] = now
        for _ in range(rng.choices((0, 1, 2, 3, 4), (40, 25, 15, 12, 8))[0]):
            self._owe(now + 1 + int(rng.random() * 2 * MERGE_LAG), "act", d)
        if rng.random() < MERGE_SHARE:
            self._owe(now + MERGE_LAG + int(rng.random() * MERGE_LAG), "merge", d)
        source = f"pos-store-{sim.home[d] + 1}" if rng.random() < 0.7 else "crm-web"
        return sim.envelope(
            InteractionType.CUSTOMER_ENROLLED,
            source,
            customer_id=sim.cids[d],
            card_id=sim.cards[d][0],
            **self.people[c],
            marketing_consent=sim.consent[d],
        )

    def due(self, sim: Traffic) -> dict[str, Any] | None:
        """The earliest owed work that is due, if it can be done now."""
        if not self.owed or self.owed[0][0] > sim.step:
            return None
        _ready, _seq, what, d = heapq.heappop(self.owed)
        if what == "act":
            return self._act(sim, d)
        return self._merge(sim, d) if what == "merge" else self._unmerge(sim, d)

    def _owe(self, ready: int, what: str, d: int) -> None:
        heapq.heappush(self.owed, (ready, next(self.seq), what, d))

    def _waited(self, sim: Traffic, key: int) -> int | None:
        """None if every event of `key`'s person keyed by another customer is `MERGE_LAG`
        old, else the step from which it will be."""
        c, now = self.person[key], sim.step
        latest = max((at for k, at in self.keyed[c].items() if k != key), default=-MERGE_LAG)
        return None if now - latest >= MERGE_LAG else latest + MERGE_LAG

    def root(self, c: int) -> int:
        while c in self.parent:
            c = self.parent[c]
        return c

    def _act(self, sim: Traffic, d: int) -> dict[str, Any]:
        """An interaction naming duplicate `d` (merged or not: it counts for its root)."""
        rng = sim.rng
        if rng.random() < 0.8:
            return sim.till(d, rng.random() < 0.5)
        return sim.envelope(
            InteractionType.CALL,
            "callcentre",
            customer_id=sim.cids[d],
            direction="inbound",
            duration_seconds=int(rng.lognormvariate(5.3, 0.7)),
            topic="loyalty points",
        )

    def _merge(self, sim: Traffic, d: int) -> dict[str, Any] | None:
        """`d` merged into its original, or (a chain) into a merged duplicate of it."""
        rng, c = sim.rng, self.person[d]
        merged = [x for x in self.dups[c] if x in self.parent and self.root(x) != d]
        survivor = c
        if merged and rng.random() < CHAIN_SHARE:
            survivor = merged[int(rng.random() * len(merged))]
        if d in self.parent or self.root(survivor) == d:
            return None  # cannot happen as made; kept as the rule
        if (later := self._waited(sim, survivor)) is not None:
            self._owe(later, "merge", d)
            return None
        self.parent[d] = survivor
        self.keyed[c][survivor] = sim.step
        if rng.random() < UNMERGE_SHARE:
            self._owe(sim.step + int(rng.random() * 2 * MERGE_LAG), "unmerge", d)
        reason = rng.choices(REASONS, REASON_WEIGHTS)[0]
        return self._event(sim, InteractionType.CUSTOMERS_MERGED, survivor, d, reason)

    def _unmerge(self, sim: Traffic, d: int) -> dict[str, Any] | None:
        """`d` parted from the customer it is merged directly into."""
        survivor = self.parent.get(d)
        if survivor is None:
            return None
        if (later := self._waited(sim, survivor)) is not None:
            self._owe(later, "unmerge", d)
            return None
        del self.parent[d]
        self.keyed[self.person[d]][survivor] = sim.step
        self.unmerged.append((survivor, d))
        reason = sim.rng.choice(UNMERGE_REASONS)
        return self._event(sim, InteractionType.CUSTOMERS_UNMERGED, survivor, d, reason)

    def _event(
        self, sim: Traffic, type: InteractionType, survivor: int, merged: int, reason: str | None
    ) -> dict[str, Any]:
        return sim.envelope(
            type,
            "crm-web",
            survivor_id=sim.cids[survivor],
            merged_id=sim.cids[merged],
            **({"reason": reason} if reason else {}),
        )

    def breach(self, sim: Traffic) -> dict[str, Any] | None:
        """A merge or unmerge that breaks one merge rule of section 8, each rule in turn
        (None: no rule can be broken yet in a way that holds in any partition order)."""
        made, self.faults = in_turn(
            RULE_FAULTS, self.faults, lambda kind: getattr(self, "_" + kind)(sim)
        )
        return made

    def _fault(
        self, sim: Traffic, type: InteractionType, survivor: str, merged: str
    ) -> dict[str, Any]:
        return sim.envelope(type, "crm-web", survivor_id=survivor, merged_id=merged)

    def _never_enrolled(self, sim: Traffic) -> dict[str, Any] | None:
        """An id never issued as the merged customer (or, now and then, the survivor)."""
        if not sim.enrolled:
            return None
        rng = sim.rng
        real = sim.cids[sim.order[int(rng.random() * sim.enrolled)]]
        ghost = f"C-N{rng.randrange(10**6, 10**7)}"  # no customer id looks like this
        pair = (ghost, real) if rng.random() < 0.3 else (real, ghost)
        return self._fault(sim, InteractionType.CUSTOMERS_MERGED, *pair)

    def _already_merged(self, sim: Traffic) -> dict[str, Any] | None:
        """A customer merged now merged again: into the same survivor (its own partition),
        or into another customer of the person once every other key's event is old."""
        if not self.parent:
            return None
        rng = sim.rng
        merged = sorted(self.parent)
        d = merged[int(rng.random() * len(merged))]
        survivor, c = self.parent[d], self.person[d]
        others = [x for x in (c, *self.dups[c]) if x not in (d, survivor) and self.root(x) != d]
        if others and rng.random() < 0.5:
            other = others[int(rng.random() * len(others))]
            if self._waited(sim, other) is None:
                self.keyed[c][other] = sim.step  # later unmerges of `d` wait for it
                survivor = other
        return self._fault(sim, InteractionType.CUSTOMERS_MERGED, sim.cids[survivor], sim.cids[d])

    def _loop(self, sim: Traffic) -> dict[str, Any] | None:
        """A root merged into a customer of its own tree (keyed by that customer), once
        every event of the person keyed otherwise is `MERGE_LAG` old."""
        ready = [d for d in sorted(self.parent) if self._waited(sim, d) is None]
        if not ready:
            return None
        d = ready[int(sim.rng.random() * len(ready))]
        root = self.root(d)
        self.keyed[self.person[d]][d] = sim.step  # later unmerges in the tree wait for it
        return self._fault(sim, InteractionType.CUSTOMERS_MERGED, sim.cids[d], sim.cids[root])

    def _not_merged(self, sim: Traffic) -> dict[str, Any] | None:
        """An unmerge of a pair parted already, or of two customers never merged directly
        (whether one is merged into the other is kept by the survivor's partition alone)."""
        rng = sim.rng
        if self.unmerged and rng.random() < 0.5:
            survivor, d = self.unmerged[int(rng.random() * len(self.unmerged))]
            if self.parent.get(d) != survivor:
                return self._fault(
                    sim, InteractionType.CUSTOMERS_UNMERGED, sim.cids[survivor], sim.cids[d]
                )
        if sim.enrolled < 2:
            return None
        survivor = sim.order[int(rng.random() * sim.enrolled)]
        other = self.dups.get(survivor) or [sim.order[int(rng.random() * sim.enrolled)]]
        d = other[int(rng.random() * len(other))]
        if d == survivor or self.parent.get(d) == survivor:
            return None
        return self._fault(sim, InteractionType.CUSTOMERS_UNMERGED, sim.cids[survivor], sim.cids[d])
