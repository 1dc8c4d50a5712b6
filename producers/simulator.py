"""Synthetic point-of-sale traffic: believable, rule-abiding, and the same for the same seed.

The demo, the benchmarks and the end-to-end tests all need traffic that looks like a real
retailer's (heavy-tailed customers, baskets, complaints that get resolved, partner contracts
with a lifecycle), that the ledger should accept in full unless faults are asked for, and
that is reproducible so that a failing run can be replayed. So everything comes from one
`random.Random(seed)`, time is derived from the plan (never the wall clock), and the stream
rules of contract section 4 hold in yield order, because the ledger checks them in the order
it records each stream, and a stream is one Kafka key, hence one partition, in yield order.
"""

from __future__ import annotations

import json
import time
from bisect import bisect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from itertools import accumulate, count
from math import ceil
from random import Random
from typing import Any

from domain.schema import InteractionType
from producers.card_traffic import SKEW, Replacements
from producers.merge_traffic import Merges
from producers.note_traffic import Notes
from producers.return_traffic import Returns

Interaction = dict[str, Any]

DAY = 86_400
SPAN = 120 * DAY  # traffic covers about 120 days after `plan.start`
STORES = 25  # numbered from 0 here, from 1 in their names
_TILLS = tuple(f"pos-store-{k + 1}" for k in range(STORES))
_STORE_IDS = tuple(f"S-{k + 1:03d}" for k in range(STORES))
USD_STORES = frozenset({23, 24})  # a couple of stores abroad, so totals come in two currencies
FAULT_RATE = 0.02
FAULT_KINDS = ("duplicate", "conflict", "invalid", "rule")
"""Faults come in this rotation, so each kind is about a quarter of them."""

# category -> (lowest unit price in cents, highest, largest usual quantity, basket weight)
CATEGORIES: dict[str, tuple[int, int, int, int]] = {
    "grocery": (49, 899, 6, 30),
    "dairy": (59, 649, 4, 16),
    "bakery": (79, 549, 4, 12),
    "electronics": (1499, 89999, 1, 4),
    "toys": (499, 7999, 2, 6),
    "garden": (299, 14999, 3, 5),
    "clothing": (799, 11999, 2, 9),
    "beauty": (299, 5999, 3, 7),
    "wine": (599, 8999, 6, 6),
    "books": (599, 3999, 2, 5),
}
_CAT_NAMES = tuple(CATEGORIES)
_CAT_CUM = tuple(accumulate(spec[3] for spec in CATEGORIES.values()))
_BASKET_SIZES = (30, 55, 75, 90, 100)  # cumulative weights of 1..5 lines
FIRST_NAMES = (
    "Ana",
    "Ben",
    "Chloe",
    "David",
    "Emma",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Katya",
    "Liam",
    "Maria",
    "Noah",
    "Olga",
    "Pedro",
    "Quinn",
    "Rosa",
    "Sven",
    "Yuki",
)
LAST_NAMES = (
    "Almeida",
    "Berg",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jansen",
    "Kowalski",
    "Lopez",
    "Muller",
    "Novak",
    "Okafor",
    "Peeters",
)
CALL_TOPICS = (
    "order status",
    "loyalty points",
    "product question",
    "billing",
    "returns",
    "store hours",
    "card replacement",
)
COMPLAINTS = {
    "product": "Item was damaged or faulty",
    "service": "Staff were unhelpful",
    "delivery": "Order arrived late",
    "billing": "Charged twice at the till",
    "store": "Store was untidy and queues were long",
}
RESOLUTIONS = ("refund issued", "replacement sent", "voucher offered", "apology and explanation")
DISPUTE_REASONS = ("late delivery", "invoice mismatch", "quality issue", "short shipment")
PARTNER_KINDS = ("vendor", "supplier", "distributor", "reseller")


@dataclass(frozen=True)
class SimulationPlan:
    """What to simulate; equal plans give identical traffic."""

    customers: int = 200
    partners: int = 10
    events: int = 2000  # total interactions yielded (exactly this many)
    seed: int = 1
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)  # first occurred_at (naive means UTC)
    faults: bool = False  # when True, ~2% of yielded interactions are deliberate faults
    retail: bool = False  # when True, contract section 8's types too (returns, lost cards,
    # duplicate enrollments merged, notes)


def simulate(plan: SimulationPlan) -> Iterator[Interaction]:
    """Yield `plan.events` interactions as JSON-ready dicts, deterministic for `plan`."""
    return (interaction for interaction, _fault in simulate_labelled(plan))


def simulate_labelled(plan: SimulationPlan) -> Iterator[tuple[Interaction, str | None]]:
    """Like `simulate`, with each interaction's fault kind (None for valid traffic).

    The dicts carry no mark (they must look like real traffic), so tests that expect a
    dead-letter count per `error_type` learn which interactions were faults from here.
    """
    if plan.events > 0 and plan.customers <= 0 and plan.partners <= 0:
        raise ValueError("a simulation needs at least one customer or one partner")
    return _Simulator(plan).run()


def _money(cents: int) -> str:
    """Money as the contract's decimal string; integer cents keep sums exact and fast."""
    return f"{cents // 100}.{cents % 100:02d}"


def _day(ts: int) -> str:
    """The YYYY-MM-DD of epoch seconds, in UTC."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


@lru_cache(maxsize=4096)
def _hour(hours: int) -> str:
    return time.strftime("%Y-%m-%dT%H:", time.gmtime(hours * 3600))


def _stamp(ts: int) -> str:
    """RFC 3339 UTC of epoch seconds; traffic is time-ordered, so each hour's text is cached."""
    hours, rest = divmod(ts, 3600)
    return f"{_hour(hours)}{rest // 60:02d}:{rest % 60:02d}Z"


_UUID4_KEEP = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def _uuid4(bits: int) -> str:
    """`str(uuid.UUID(int=bits, version=4))` at a third of the cost (a test holds them equal)."""
    h = "%032x" % (bits & _UUID4_KEEP | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Simulator:
    """The world's state, so that every generated interaction is possible when yielded."""

    def __init__(self, plan: SimulationPlan) -> None:
        rng = self.rng = Random(plan.seed)
        start = plan.start if plan.start.tzinfo else plan.start.replace(tzinfo=UTC)
        self.plan, self.t0 = plan, int(start.timestamp())
        self.ts, n = self.t0, plan.customers
        # Enrollment order is a shuffle, so the enrolled customers are always a prefix of it
        # and a weighted pick among them is one bisect over cumulative Pareto weights.
        self.order = list(range(n))
        rng.shuffle(self.order)
        weights = [min(rng.paretovariate(1.16), 500.0) for _ in range(n)]
        self.cum = list(accumulate(weights[c] for c in self.order))
        self.to_enroll, self.enrolled = (min(n, max(1, plan.events // 3)) if n else 0), 0
        self.home = [rng.randrange(STORES) for _ in range(n)]
        self.cids = [f"C-{c + 1:05d}" for c in range(n)]
        self.favourites = [rng.sample(_CAT_NAMES, 2) for _ in range(n)]
        self.cards = [[f"K-{c + 1:05d}"] for c in range(n)]  # held now (a replacement swaps)
        self.consent = [False] * n
        self.catalog = {
            cat: [
                (f"{cat[:3].upper()}-{k:04d}", cents, _money(cents))
                for k, cents in enumerate(rng.choices(range(lo, hi), k=20), 1)
            ]
            for cat, (lo, hi, _q, _w) in CATEGORIES.items()
        }
        self.kinds = [rng.choice(PARTNER_KINDS) for _ in range(plan.partners)]
        self.contracts: list[dict[str, list[Any]]] = [{} for _ in range(plan.partners)]
        self.disputes: list[list[str]] = [[] for _ in range(plan.partners)]
        self.opened: list[tuple[int, str]] = []  # every dispute ever opened, for rule faults
        self.open_complaints: list[tuple[int, str]] = []
        # What a POS retry would resend, as JSON: the caller owns (and may change) what it got.
        self.recent: deque[str] = deque(maxlen=64)
        self.order_no, self.complaint_no, self.contract_no, self.dispute_no = (
            count(1),
            count(1),
            count(1),
            count(1),
        )
        self.card_no = count(n + 1)  # second cards number on after everyone's first
        self.notes = Notes()
        self.returns = Returns()
        self.replacements = Replacements()
        self.merges, self.step = Merges(), 0  # step: interactions yielded so far

    def run(self) -> Iterator[tuple[Interaction, str | None]]:
        """One interaction per step; faults replace valid steps, so the count is exact."""
        plan, rng, faults = self.plan, self.rng, 0
        gap = max(1, SPAN // max(plan.events, 1))
        for i in range(plan.events):
            self.step = i
            # Strictly increasing base clock, so latest-wins fields agree with yield order;
            # only till events (see `envelope`) get skew on top of it.
            self.ts = self.t0 + SPAN * i // plan.events + (int(rng.random() * gap) if i else 0)
            # A fault needs a past to repeat or contradict (for rules: a customer or dispute).
            if (
                plan.faults
                and self.recent
                and (self.enrolled or self.opened)
                and rng.random() < FAULT_RATE
            ):
                kind = FAULT_KINDS[faults % len(FAULT_KINDS)]
                faults += 1
                yield self.fault(kind), kind
                continue
            due = ceil(self.to_enroll * min(1.0, (i + 1) / (0.5 * plan.events)))
            if self.enrolled < due:  # enrollments front-loaded over the first half
                self.enrolled += 1
                obj = self.enroll(self.order[self.enrolled - 1])
            elif plan.partners and (not self.enrolled or rng.random() < 0.06):
                obj = self.partner_event()
            else:
                obj = self.customer_event()
            if plan.faults and rng.random() < 0.1:  # a sample suffices, and costs a tenth
                self.recent.append(json.dumps(obj))
            yield obj, None

    def envelope(self, type: InteractionType, source: str, **fields: Any) -> Interaction:
        ts = self.ts
        if type in (InteractionType.PURCHASE, InteractionType.CARD_SWIPED):
            # till clocks drift, uploads batch: skew
            ts = max(self.t0, ts - SKEW + int(self.rng.random() * (2 * SKEW + 1)))
        return {
            "event_id": _uuid4(self.rng.getrandbits(128)),
            "type": type.value,  # a plain str: the interaction is JSON-ready as it is
            "occurred_at": _stamp(ts),
            "source": source,
            "schema_version": 1,
            **fields,
        }

    def enroll(self, c: int, first: bool = True) -> Interaction:
        """A first enrollment carries personal data; a later one only adds a new card."""
        rng, fields = self.rng, {}
        if first:
            self.consent[c] = rng.random() < 0.6
            given, family = FIRST_NAMES[c % 20], LAST_NAMES[(c // 20 + c) % 16]
            born = rng.randrange(-9131, 13514) * DAY  # 1945-01-01 .. 2006-12-31
            fields = {
                "name": f"{given} {family}",
                "birth_date": _day(born),
                "email": f"{given}.{family}{c + 1}@example.com".lower(),
            }
            if self.plan.retail:  # a duplicate enrollment repeats these
                self.merges.enrolled(c, fields, self.step)
        else:  # a new number that nobody has held
            self.cards[c].append(f"K-{next(self.card_no):05d}")
        source = _TILLS[self.home[c]] if rng.random() < 0.7 else "crm-web"
        # Consent is latest-wins, so a second enrollment repeats the current answer.
        return self.envelope(
            InteractionType.CUSTOMER_ENROLLED,
            source,
            customer_id=self.cids[c],
            card_id=self.cards[c][-1],
            **fields,
            marketing_consent=self.consent[c],
        )

    def customer_event(self) -> Interaction:
        """One heavy-tailed pick of an enrolled customer, then a type by its share of traffic."""
        rng = self.rng
        j = min(bisect(self.cum, rng.random() * self.cum[self.enrolled - 1]), self.enrolled - 1)
        c, roll = self.order[j], rng.random() * 100
        if roll < 72:
            return self.till(c, roll < 46)
        if roll < 81:
            inbound = rng.random() < 0.8  # outbound calls are shorter
            seconds = int(rng.lognormvariate(5.3 if inbound else 4.6, 0.7))
            agent = {"agent_id": f"A-{rng.randint(1, 40):03d}"} if rng.random() < 0.9 else {}
            return self.envelope(
                InteractionType.CALL,
                "callcentre",
                customer_id=self.cids[c],
                direction="inbound" if inbound else "outbound",
                duration_seconds=seconds,
                topic=rng.choice(CALL_TOPICS),
                **agent,
            )
        if roll < 85:
            complaint_id = f"CP-{next(self.complaint_no):06d}"
            self.open_complaints.append((c, complaint_id))
            category = rng.choice(tuple(COMPLAINTS))
            return self.envelope(
                InteractionType.COMPLAINT_FILED,
                rng.choice(("callcentre", "crm-web")),
                customer_id=self.cids[c],
                complaint_id=complaint_id,
                category=category,
                description=COMPLAINTS[category],
                severity=rng.choices(("low", "medium", "high"), (55, 33, 12))[0],
            )
        if roll < 88.4 and self.open_complaints:  # so ~85% of complaints end up resolved
            k = rng.randrange(len(self.open_complaints))
            owner, complaint_id = self.open_complaints[k]
            self.open_complaints[k] = self.open_complaints[-1]
            self.open_complaints.pop()
            outcome = {"satisfied": rng.random() < 0.72} if rng.random() < 0.9 else {}
            return self.envelope(
                InteractionType.COMPLAINT_RESOLVED,
                "callcentre",
                customer_id=self.cids[owner],
                complaint_id=complaint_id,
                resolution=rng.choice(RESOLUTIONS),
                **outcome,
            )
        if roll < 94.4:
            score = rng.choices(range(11), (2, 1, 1, 2, 2, 4, 6, 10, 14, 12, 9))[0]
            return self.envelope(
                InteractionType.SURVEY_ANSWERED,
                "crm-web",
                customer_id=self.cids[c],
                survey_id=f"NPS-{_stamp(self.ts)[:7]}",
                score=score,
            )
        if roll < 97.4:
            self.consent[c] = not self.consent[c]
            return self.envelope(
                InteractionType.CONSENT_CHANGED,
                rng.choice(("crm-web", "app")),
                customer_id=self.cids[c],
                marketing_consent=self.consent[c],
            )
        if roll < 97.8 and len(self.cards[c]) == 1:
            return self.enroll(c, first=False)
        lost = self.plan.retail and 97.8 <= roll < 98.2  # lost cards, ~0.3% replaced
        if lost and (made := self.replacements.step(self, c, roll < 98.05)):
            return made
        if self.plan.retail and roll >= 99.0:  # notes, unless a duplicate or merge is due
            if roll < 99.5 and (made := self.merges.step(self, c, roll < 99.08)):
                return made
            return self.notes.customer(self, c)
        if self.plan.retail and roll >= 98.2 and (made := self.returns.valid(self)):
            return made
        return self.till(c, True)

    def till(self, c: int, purchase: bool, only: str | None = None) -> Interaction:
        """A purchase or swipe; ~5% name only a card, a few a card enrolled later (`only`:
        this card alone, for `producers.card_traffic`).

        Most traffic passes here, so it draws with `rand()` (one C call) rather than
        `randint`/`choice` (several Python frames each) and fills the dict in place.
        """
        rand, cards = self.rng.random, self.cards[c]
        store = self.home[c] if rand() < 0.8 else int(rand() * STORES)
        sold = InteractionType.PURCHASE if purchase else InteractionType.CARD_SWIPED
        obj = self.envelope(sold, _TILLS[store])
        card = only or cards[int(rand() * len(cards))]
        if only or rand() < 0.05:  # card only
            if not only and self.enrolled < self.to_enroll and rand() < 0.2:  # held later
                ahead = self.enrolled + int(rand() * min(5, self.to_enroll - self.enrolled))
                card = self.cards[self.order[ahead]][0]
            self.replacements.seen[card] = self.ts  # its replacement must come after
        else:
            obj["customer_id"] = self.cids[c]
            if purchase and rand() < 0.5:  # tills that send the customer, not the card
                card = ""
        if card:
            obj["card_id"] = card
        obj["store_id"] = _STORE_IDS[store]
        if purchase:
            lines, total, favourites = [], 0, self.favourites[c]
            for _ in range(1 + bisect(_BASKET_SIZES, rand() * _BASKET_SIZES[-1])):
                if rand() < 0.6:
                    cat = favourites[int(rand() * 2)]
                else:
                    cat = _CAT_NAMES[bisect(_CAT_CUM, rand() * _CAT_CUM[-1])]
                sku, price, unit_price = self.catalog[cat][int(rand() * 20)]
                most = CATEGORIES[cat][2]
                qty = 1 + int(min(rand(), rand()) * most)  # mostly small
                total += qty * price
                lines.append(
                    {"sku": sku, "category": cat, "quantity": qty, "unit_price": unit_price}
                )
            obj["order_id"] = f"O-{next(self.order_no):07d}"
            obj["currency"] = "USD" if store in USD_STORES else "EUR"
            obj["total"], obj["lines"] = _money(total), lines
            if self.plan.retail:
                self.returns.bought(obj)
        return obj

    def partner_event(self) -> Interaction:
        """Contract lifecycles only move forward; disputes open once and resolve once."""
        rng = self.rng
        p = rng.randrange(self.plan.partners)
        pid, contracts, disputes = f"P-{p + 1:03d}", self.contracts[p], self.disputes[p]
        roll = rng.random()
        if not contracts or (roll < 0.25 and len(contracts) < 3):
            return self.propose(p)
        if roll < 0.75:
            contract_id = rng.choice(sorted(contracts))
            state, fields = contracts[contract_id], {}
            if state[0] == "proposed":
                change = "signed" if rng.random() < 0.8 else "terminated"
                fields["effective_at"] = _day(self.ts + rng.randint(0, 14) * DAY)
            else:
                change = rng.choices(("amended", "renewed", "terminated"), (45, 30, 25))[0]
                if change == "renewed":
                    state[1] += 365 * DAY
                    fields["ends_at"] = _day(state[1])
                if change != "terminated":
                    fields["value"] = _money(rng.randint(500, 50_000) * 1000)
            if change == "terminated":
                del contracts[contract_id]
            else:
                state[0] = "active"
            return self.envelope(
                InteractionType.CONTRACT_CHANGED,
                "b2b-portal",
                partner_id=pid,
                contract_id=contract_id,
                change=change,
                **fields,
            )
        if self.plan.retail and roll >= 0.97:
            return self.notes.partner(self, p)
        if roll < 0.88 and disputes:
            dispute_id = disputes.pop(rng.randrange(len(disputes)))
            return self.envelope(
                InteractionType.DISPUTE_RESOLVED,
                "b2b-portal",
                partner_id=pid,
                dispute_id=dispute_id,
                resolution=rng.choice(RESOLUTIONS),
            )
        dispute_id = f"DS-{next(self.dispute_no):05d}"
        disputes.append(dispute_id)
        self.opened.append((p, dispute_id))
        return self.envelope(
            InteractionType.DISPUTE_OPENED,
            "b2b-portal",
            partner_id=pid,
            dispute_id=dispute_id,
            reason=rng.choice(DISPUTE_REASONS),
        )

    def propose(self, p: int) -> Interaction:
        rng, contract_id = self.rng, f"CT-{next(self.contract_no):05d}"
        effective = self.ts + rng.randint(0, 30) * DAY
        if rng.random() < 0.3:  # up for renewal within 60 days after the traffic ends
            ends = self.t0 + SPAN + rng.randint(1, 60) * DAY
        else:
            ends = effective + rng.choice((1, 2, 3)) * 365 * DAY
        self.contracts[p][contract_id] = ["proposed", ends]
        return self.envelope(
            InteractionType.CONTRACT_CHANGED,
            "b2b-portal",
            partner_id=f"P-{p + 1:03d}",
            contract_id=contract_id,
            change="proposed",
            partner_kind=self.kinds[p],
            value=_money(rng.randint(500, 50_000) * 1000),
            currency=rng.choices(("EUR", "USD", "GBP"), (80, 15, 5))[0],
            effective_at=_day(effective),
            ends_at=_day(ends),
        )

    def fault(self, kind: str) -> Interaction:
        """A deliberate fault; none changes the world, since the ledger rejects each one.

        Duplicates and conflicts keep the original's key fields, so they land on its
        partition after it: the order in which the ledger must meet them.
        """
        rng = self.rng
        obj = json.loads(self.recent[rng.randrange(len(self.recent))])
        if kind == "duplicate":  # a POS retry
            return obj
        if kind == "conflict":  # a misconfigured till reusing an event_id
            store = rng.randrange(STORES)
            if obj["source"] == _TILLS[store]:
                store = (store + 1) % STORES
            obj.update(source=_TILLS[store], occurred_at=_stamp(self.ts))
            return obj
        if kind == "invalid":
            obj.update(event_id=_uuid4(rng.getrandbits(128)))
            if obj["type"] == InteractionType.PURCHASE and rng.random() < 0.5:
                obj["lines"][0]["quantity"] = str(obj["lines"][0]["quantity"])
            elif obj["type"] == InteractionType.PURCHASE:
                obj["total"] = _money(int(Decimal(obj["total"]) * 100) + 100)
            elif rng.random() < 0.5:
                del obj["occurred_at"]
            else:
                obj["type"] = "customer_upgraded"
            return obj
        # A rule: valid alone, impossible in its stream.
        if self.plan.retail and rng.random() < 0.5:
            roll = rng.random()
            if roll < 0.15:
                breach = self.notes.repeated(self)
            elif roll < 0.5:
                breach = self.returns.breach(self)
            else:
                breach = self.replacements.breach(self) if roll < 0.8 else self.merges.breach(self)
            if breach is not None:
                return breach
        if self.opened and (not self.enrolled or rng.random() < 0.3):
            p, dispute_id = rng.choice(self.opened)
            return self.envelope(
                InteractionType.DISPUTE_OPENED,
                "b2b-portal",
                partner_id=f"P-{p + 1:03d}",
                dispute_id=dispute_id,
                reason=rng.choice(DISPUTE_REASONS),
            )
        c = self.order[rng.randrange(self.enrolled)]  # and a complaint id never issued:
        return self.envelope(
            InteractionType.COMPLAINT_RESOLVED,
            "callcentre",
            customer_id=self.cids[c],
            complaint_id=f"CP-{rng.randrange(10**7, 10**8)}",  # 6 digits are
            resolution=rng.choice(RESOLUTIONS),
        )
