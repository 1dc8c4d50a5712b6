"""Lost and replaced cards in simulated traffic (contract section 8): a customer's card
replaced by a brand-new one, the tills that were offline when it happened, returns of
goods bought with the old card, cards used before their replacement claims them, and,
with faults, replacements, enrollments and swipes that break the section's card rules.

Kept apart from `producers.simulator`, which calls these when its plan asks for retail
life (`SimulationPlan.retail`); each draws from the simulator's own random generator, so
equal plans still give identical traffic.

A replacement is keyed by its customer, a card-only swipe by its card: the ledger may
record the two in either order (two partitions). So valid traffic is acceptable in any
such order: a card is replaced only when every card-only till naming it that came before
occurred strictly before the replacement (offline tills, yielded after, do too). The
faults that claim a card are the customer's own (one stream, so rejected in any order);
another customer's card could be claimed before its own holder's enrollment is recorded,
which would take a valid customer's card away. A late swipe alone depends on that order:
it is rejected only when recorded after its replacement (else it counts for the holder).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

from domain.schema import InteractionType
from producers.fault_turns import in_turn
from producers.return_traffic import Returns

REASONS = ("lost", "damaged", "stolen", "upgrade", None)  # None: no reason given
REASON_WEIGHTS = (40, 30, 10, 8, 12)
SKEW = 240
"""The most a till's clock is off the simulator's, either way (`_Simulator.envelope`)."""
OFFLINE = 6 * 3600
"""How long before its replacement an offline till's swipe may have occurred."""
RULE_FAULTS = ("old_not_held", "new_held", "new_retired", "enroll_retired")
"""The card rules of section 8 a faulty interaction breaks, in turn. Each breaks its rule
whatever order the ledger reads the topic's partitions in: all are keyed by the customer
who breaks it. A late till on a retired card is not among them: keyed by the card, it is
refused only when the ledger reads it after its replacement, which is keyed by the
customer (another partition), so its fate would depend on the order partitions are read
in, and runs that must agree (a crash test's) would not. Tests publish it after the
replacement was recorded (`tests/integration/test_replaced_cards.py`)."""


class Traffic(Protocol):
    """What the card traffic needs of the simulator."""

    rng: Any
    ts: int
    t0: int
    enrolled: int
    order: list[int]
    cids: list[str]
    home: list[int]
    cards: list[list[str]]  # each customer's cards held now (the tills use these)
    consent: list[bool]
    returns: Returns

    @property
    def card_no(self) -> Iterator[int]: ...

    def envelope(self, type: InteractionType, source: str, **fields: Any) -> dict[str, Any]: ...

    def till(self, c: int, purchase: bool, only: str | None = None) -> dict[str, Any]: ...


def _stamp(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Replacements:
    """Every valid replacement made, the follow-ups they are owed, and when each card was
    last named alone at a till."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}  # card -> simulator time of its latest card-only till
        self.since: dict[str, int] = {}  # card -> when a replacement claimed it
        self.made: list[tuple[int, str, int]] = []  # (customer, retired card, replaced at)
        self.reserved: dict[int, str] = {}  # customer -> a card its replacement will claim
        # (what, customer, card, replaced at): "offline" swipes and "return"s of the old
        # card, yielded after its replacement; the "claim" of a reserved card.
        self.pending: deque[tuple[str, int, str, int]] = deque()
        self.faults = 0

    def step(self, sim: Traffic, c: int, replace: bool) -> dict[str, Any] | None:
        """A replacement of one of `c`'s cards, or else a follow-up (None: neither is
        possible now)."""
        return self.replace(sim, c) if replace else self.follow_up(sim, c)

    def replace(self, sim: Traffic, c: int) -> dict[str, Any] | None:
        """`c`'s card replaced by a card nobody held (None: a till named it alone too
        recently: that swipe might have occurred after this replacement)."""
        rng, cards = sim.rng, sim.cards[c]
        k = int(rng.random() * len(cards))
        old = cards[k]
        if old in self.seen and sim.ts <= self.seen[old] + SKEW:
            return None
        new = self.reserved.pop(c, None) or f"K-{next(sim.card_no):05d}"
        cards[k] = new  # from now on the tills name the new card
        self.since[new] = sim.ts
        self.made.append((c, old, sim.ts))
        reason = rng.choices(REASONS, REASON_WEIGHTS)[0]
        source = f"pos-store-{sim.home[c] + 1}" if rng.random() < 0.5 else "callcentre"
        roll = rng.random()
        if roll < 0.3:  # a till that was offline named the old card
            self.pending.append(("offline", c, old, sim.ts))
        elif roll < 0.6 and any(order["holder"] == {"card_id": old} for order in sim.returns.open):
            self.pending.append(("return", c, old, sim.ts))
        return sim.envelope(
            InteractionType.CARD_REPLACED,
            source,
            customer_id=sim.cids[c],
            old_card_id=old,
            new_card_id=new,
            **({"reason": reason} if reason else {}),
        )

    def follow_up(self, sim: Traffic, c: int) -> dict[str, Any] | None:
        """What an earlier replacement left to do, else a card `c` will be given used
        alone at a till before its replacement claims it."""
        rng = sim.rng
        if self.pending:
            what, holder, card, at = item = self.pending.popleft()
            if what == "return":  # goods bought with the retired card, named alone
                return sim.returns.valid(sim, {"card_id": card})
            if what == "claim":
                made = self.replace(sim, holder)
                if made is None:
                    self.pending.append(item)  # later, once that till is long past
                return made
            obj = sim.till(holder, rng.random() < 0.5, only=card)
            # Strictly before the replacement, and after the card was claimed if it was.
            lo = max(sim.t0, at - OFFLINE, self.since.get(card, sim.t0))
            lo = min(lo, at - 1)
            obj["occurred_at"] = _stamp(lo + int(rng.random() * (at - lo)))
            return obj
        if c in self.reserved:
            return None
        card = self.reserved[c] = f"K-{next(sim.card_no):05d}"
        self.pending.append(("claim", c, card, sim.ts))
        return sim.till(c, rng.random() < 0.5, only=card)

    def breach(self, sim: Traffic) -> dict[str, Any] | None:
        """An interaction that breaks one card rule of section 8, each rule in turn (None:
        no rule can be broken yet)."""
        made, self.faults = in_turn(
            RULE_FAULTS, self.faults, lambda kind: getattr(self, "_" + kind)(sim)
        )
        return made

    def _replacement(self, sim: Traffic, c: int, old: str, new: str) -> dict[str, Any]:
        return sim.envelope(
            InteractionType.CARD_REPLACED,
            "callcentre",
            customer_id=sim.cids[c],
            old_card_id=old,
            new_card_id=new,
            reason="lost",
        )

    def _old_not_held(self, sim: Traffic) -> dict[str, Any] | None:
        """A card the customer does not hold: another customer's, or one never issued."""
        if not sim.enrolled:
            return None
        rng = sim.rng
        c = sim.order[int(rng.random() * sim.enrolled)]
        other = sim.order[int(rng.random() * sim.enrolled)]
        if other != c and rng.random() < 0.5:
            old = sim.cards[other][int(rng.random() * len(sim.cards[other]))]
        else:
            old = f"K-N{rng.randrange(10**6, 10**7)}"  # no card number looks like this
        return self._replacement(sim, c, old, f"K-{next(sim.card_no):05d}")

    def _new_held(self, sim: Traffic) -> dict[str, Any] | None:
        """A new card the customer holds already (its other card)."""
        rng = sim.rng
        for _ in range(min(50, sim.enrolled)):
            c = sim.order[int(rng.random() * sim.enrolled)]
            if len(sim.cards[c]) > 1:
                old, new = rng.sample(sim.cards[c], 2)
                return self._replacement(sim, c, old, new)
        return None

    def _new_retired(self, sim: Traffic) -> dict[str, Any] | None:
        """A new card the customer held and replaced."""
        if not self.made:
            return None
        c, retired, _at = self.made[int(sim.rng.random() * len(self.made))]
        held = sim.cards[c][int(sim.rng.random() * len(sim.cards[c]))]
        return self._replacement(sim, c, held, retired)

    def _enroll_retired(self, sim: Traffic) -> dict[str, Any] | None:
        """An enrollment of the customer under a card it replaced."""
        if not self.made:
            return None
        c, retired, _at = self.made[int(sim.rng.random() * len(self.made))]
        return sim.envelope(
            InteractionType.CUSTOMER_ENROLLED,
            f"pos-store-{sim.home[c] + 1}",
            customer_id=sim.cids[c],
            card_id=retired,
            marketing_consent=sim.consent[c],
        )
