"""The ingest decision: what a batch of parsed records does to the ledger. Pure: no I/O.

Given the batch's records, parsed (an `Interaction` or the `RejectedInteraction` it was),
and what one loader fetched for the whole batch (`Loaded`: the content digests of the
event ids already recorded, the streams the interactions name, the customers' keys), decide
each record in order: a duplicate (same event_id, same content), a conflict (same event_id,
other content), a rule's refusal, or recorded on its streams. The streams gain the
batch's events in memory; the store writes them, with the index rows and the dead letters,
in one transaction.

Sealing happens once, here, before the chain hash: a personal field is sealed with its
customer's key and the payload made canonical again, and `record` hashes those bytes into
the stream's chain. The content digest stays the one of the message as sent
(`Interaction.digest`), so a message sent again is still a duplicate.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from domain.aggregates import LedgerStream, card_stream, customer_stream
from domain.canonical import canonical_bytes
from domain.cards import CARD_REPLACED, RULED_ALONE, Retirement
from domain.errors import CustomerForgotten, RuleViolation
from domain.forgetting import ERASED_DIGEST
from domain.interactions import Interaction, RejectedInteraction
from domain.merges import MERGES, MergeChange, change
from domain.recording import record, streams_named
from domain.shredding import seal, sealed_fields

Parsed = Interaction | RejectedInteraction


class Unforeseen(RejectedInteraction):
    """A record the ledger failed to decide for a reason nobody foresaw (a bug): it is
    dead-lettered as `internal` with the failure, so that it can be redriven once fixed,
    and the rest of its batch is recorded."""

    error_type = "internal"

    @classmethod
    def of(cls, error: BaseException, event_id: str | None) -> Unforeseen:
        text = f"{type(error).__name__}: {error}"[:300]
        rejection = cls(f"the ledger failed to decide this message ({text})")
        rejection.event_id = event_id
        return rejection


class Poisoned(Exception):
    """Item `index` failed unforeseen while it was being recorded. Its streams may be
    half-changed in memory: decide the batch again from the stored streams, with the item
    replaced by `rejection`."""

    def __init__(self, index: int, rejection: Unforeseen) -> None:
        super().__init__(rejection.reason)
        self.index = index
        self.rejection = rejection


@dataclass(frozen=True)
class Loaded:
    """What one loader fetched for a batch, before anything was decided."""

    digests: dict[str, str]  # content digests of the batch's event ids already recorded
    streams: dict[str, LedgerStream | None]  # the named streams as they stand (None: no events)
    keys: Mapping[str, bytes | None] | None  # customers' keys (None: no sealing at all)
    holders: dict[str, str] = field(default_factory=dict)  # card -> customer, of held cards
    retired: dict[str, Retirement] = field(default_factory=dict)  # of the cards the batch names
    parents: dict[str, str] = field(default_factory=dict)  # merged -> survivor, of its merges


@dataclass(frozen=True)
class Recorded:
    """An interaction recorded: its content digest and where its event is (a row of the
    interaction index)."""

    event_id: str
    digest: str
    type: str
    stream: str
    originator_id: Any
    originator_version: int
    index: int = field(default=0, compare=False, repr=False)  # the item's place in its batch


@dataclass(frozen=True)
class Claim:
    """An enrollment's card (or a replacement's new card), held from now on by its
    customer (`store.card_holdings`)."""

    card_id: str
    customer_id: str
    event_id: str
    index: int = field(default=0, compare=False, repr=False)  # the item's place in its batch


@dataclass(frozen=True)
class Rejection:
    """Item `index` is not recorded: it is dead-lettered with `error_type` and `reason`."""

    index: int
    event_id: str | None
    error_type: str
    reason: str
    forgotten: bool = False  # about a forgotten customer: none of the message's bytes stay


@dataclass
class Decision:
    streams: list[LedgerStream] = field(default_factory=list)  # the streams that gained events
    recorded: list[Recorded] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)  # cards the batch holds anew
    retirements: list[Retirement] = field(default_factory=list)  # cards the batch retires
    merges: list[MergeChange] = field(default_factory=list)  # merges and unmerges, in order
    alone: list[tuple[int, str]] = field(default_factory=list)
    """(index, card) of each swipe or purchase recorded on a card only while the card was
    not retired: the store checks, in the events' transaction, that no other worker has
    retired it meanwhile (`store.card_holdings.check_not_retired`)."""
    duplicates: int = 0

    def unretired(self) -> set[str]:
        """The cards of `alone` that this batch does not retire itself."""
        return {card for _, card in self.alone} - {r.card_id for r in self.retirements}


def decide(items: Sequence[Parsed], loaded: Loaded) -> Decision:
    """Decide each item in order against `loaded`, whose streams, digests and card holders
    it extends in place (the streams and digests are the ingest worker's caches: the next
    batch starts from them). No I/O; new events take the library's timestamps.

    Raises `Poisoned` when recording an item fails unforeseen."""
    seen = loaded.digests
    streams = loaded.streams
    decision = Decision()
    touched: dict[Any, LedgerStream] = {}
    for index, item in enumerate(items):
        if isinstance(item, RejectedInteraction):
            decision.rejections.append(
                Rejection(index, item.event_id, item.error_type, item.reason)
            )
            continue
        known = seen.get(item.event_id)
        if known is not None:
            # A forgotten customer's digest is gone: what comes again is not recorded.
            if known in (item.digest, ERASED_DIGEST):
                decision.duplicates += 1
            else:
                reason = f"event_id {item.event_id} was already recorded with other content"
                decision.rejections.append(Rejection(index, item.event_id, "conflict", reason))
            continue
        holder = loaded.holders.get(item.card_id) if item.card_id else None
        retired = item.card_id in loaded.retired if item.card_id else False
        try:
            gained = record(
                sealed(item, loaded.keys), streams, loaded.holders, loaded.retired, loaded.parents
            )
        except CustomerForgotten as forgotten:
            # Nothing about a forgotten person is kept: not even the message's bytes.
            decision.rejections.append(
                Rejection(index, item.event_id, "rule", forgotten.reason, forgotten=True)
            )
            continue
        except RuleViolation as violation:
            decision.rejections.append(Rejection(index, item.event_id, "rule", violation.reason))
            continue
        except Exception as error:
            raise Poisoned(index, Unforeseen.of(error, item.event_id)) from error
        for stream in gained:
            streams[stream.stream] = stream
            touched[stream.id] = stream
        home = gained[0]
        decision.recorded.append(
            Recorded(
                item.event_id, item.digest, item.type, home.stream, home.id, home.version, index
            )
        )
        if item.type == "customer_enrolled" and holder is None:
            assert item.card_id is not None and item.customer_id is not None
            decision.claims.append(Claim(item.card_id, item.customer_id, item.event_id, index))
        elif item.type == CARD_REPLACED:
            _replaced(decision, item, loaded, index)
        elif item.type in MERGES:
            decision.merges.append(change(item.type, item.payload, item.event_id, index))
        elif item.customer_id is None and item.type in RULED_ALONE and not retired:
            assert item.card_id is not None
            decision.alone.append((index, item.card_id))
        seen[item.event_id] = item.digest
    decision.streams = list(touched.values())
    return decision


def _replaced(decision: Decision, item: Interaction, loaded: Loaded, index: int) -> None:
    """A recorded replacement's new card claimed and old card retired (as `record` left
    them in `loaded`)."""
    payload = item.payload
    new, old = payload["new_card_id"], payload["old_card_id"]
    decision.claims.append(Claim(new, payload["customer_id"], item.event_id, index))
    decision.retirements.append(replace(loaded.retired[old], index=index))


def involved(
    items: Sequence[Parsed],
    made: Decision,
    lost: Collection[str] = (),
    lost_merges: Collection[str] = (),
) -> tuple[list[int], set[str]]:
    """After the store refused the claims of the `lost` cards (another worker held them
    first, or retired them after the batch's swipes were decided), or the merges of the
    `lost_merges` customers (another worker merged them first), the items to decide again,
    in order, and the streams they name: the lost cards' enrollments and replacements and
    whatever names the lost cards (or the lost merges' customers), then every item naming a
    stream those name, or sharing an event id with one of them, until none is added. The
    other items' decisions stand: nothing they were decided on changes."""
    streams = {card_stream(card) for card in lost} | {
        customer_stream(c.customer_id) for c in made.claims if c.card_id in lost
    }
    streams |= {
        customer_stream(customer)
        for m in made.merges
        if m.merged_id in lost_merges
        for customer in (m.merged_id, m.survivor_id)
    }
    named = {
        i: streams_named(item) for i, item in enumerate(items) if isinstance(item, Interaction)
    }
    chosen: set[int] = set()
    event_ids: set[str] = set()
    grew = True
    while grew:
        grew = False
        for i, names in named.items():
            item = items[i]
            assert isinstance(item, Interaction)
            if i not in chosen and (streams.intersection(names) or item.event_id in event_ids):
                chosen.add(i)
                streams.update(names)
                event_ids.add(item.event_id)
                grew = True
    return sorted(chosen), streams


def merged(before: Decision, again: Decision, redone: Sequence[int], total: int) -> Decision:
    """`before` with the items at `redone` replaced by `again`, their decision anew (whose
    item indexes count within `redone`)."""
    out = set(redone)
    decision = Decision(
        recorded=sorted(
            [r for r in before.recorded if r.index not in out]
            + [replace(r, index=redone[r.index]) for r in again.recorded],
            key=lambda r: r.index,
        ),
        rejections=sorted(
            [r for r in before.rejections if r.index not in out]
            + [replace(r, index=redone[r.index]) for r in again.rejections],
            key=lambda r: r.index,
        ),
        claims=sorted(
            [c for c in before.claims if c.index not in out]
            + [replace(c, index=redone[c.index]) for c in again.claims],
            key=lambda c: c.index,
        ),
        retirements=sorted(
            [r for r in before.retirements if r.index not in out]
            + [replace(r, index=redone[r.index]) for r in again.retirements],
            key=lambda r: r.index,
        ),
        alone=sorted(
            [a for a in before.alone if a[0] not in out]
            + [(redone[i], card) for i, card in again.alone]
        ),
        merges=sorted(
            [m for m in before.merges if m.index not in out]
            + [replace(m, index=redone[m.index]) for m in again.merges],
            key=lambda m: m.index,
        ),
    )
    decision.duplicates = total - len(decision.recorded) - len(decision.rejections)
    return decision


def sealed(ix: Interaction, keys: Mapping[str, bytes | None] | None) -> Interaction:
    """`ix` with its personal fields sealed with its customer's key, and its canonical
    bytes (the chain hash's input) made of the sealed payload; the same `ix` if it carries
    none or `keys` is None. Raises `CustomerForgotten` if the customer's key is gone."""
    if keys is None or not ix.customer_id or not sealed_fields(ix.type, ix.payload):
        return ix
    key = keys.get(ix.customer_id)
    if key is None:
        raise CustomerForgotten(f"customer {ix.customer_id!r} was forgotten")
    payload = seal(ix.type, ix.payload, ix.customer_id, key)
    return replace(ix, payload=payload, canonical=canonical_bytes(payload))


def keys_wanted(valid: Iterable[Interaction]) -> set[str]:
    """The customers whose keys the batch needs: those whose personal fields it carries."""
    return {ix.customer_id for ix in valid if ix.customer_id and sealed_fields(ix.type, ix.payload)}
