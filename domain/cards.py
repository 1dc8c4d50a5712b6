"""Who holds which card, and the rules of holding (contract sections 4 and 8). Pure.

A card is held by one customer: the one whose enrollment, or replacement (`card_replaced`,
its `new_card_id`), claimed it first. A replacement retires the old card for good: nobody
holds it again, and a swipe or purchase naming only it counts for its last holder when the
till was offline (made strictly before the replacement), and is refused otherwise. The
ingest worker loads the holdings of the cards a batch names (`store.card_holdings`, never
cached: another worker may claim or retire a card at any moment), and the decision extends
them as it records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain import errors
from domain.interactions import Interaction

CARD_REPLACED = "card_replaced"
RULED_ALONE = frozenset({"card_swiped", "purchase"})
"""The card-only interactions the offline-till rule decides on a retired card (a return
naming only the retired card is accepted: its purchase was made with the card)."""


@dataclass(frozen=True)
class Retirement:
    """A card retired by a replacement: its last holder, the card that replaced it, and the
    replacement's `occurred_at` (what a late till's interaction is compared with)."""

    card_id: str
    new_card_id: str
    customer_id: str
    occurred_at: datetime
    index: int = field(default=0, compare=False, repr=False)  # the item's place in its batch


def replaced(retirement: Retirement) -> str:
    return f"card {retirement.card_id!r} was replaced by {retirement.new_card_id!r}"


def check_claim(
    holders: Mapping[str, str], retired: Mapping[str, Retirement], card_id: str, customer_id: str
) -> None:
    """May `customer_id` enroll this card? Not a retired card, nor one another holds."""
    gone = retired.get(card_id)
    if gone is not None:
        raise errors.CardRetired(replaced(gone))
    owner = holders.get(card_id)
    if owner is not None and owner != customer_id:
        raise errors.CardHeldByAnother(f"card {card_id!r} is already held by customer {owner!r}")


def check_replacement(
    holders: Mapping[str, str], retired: Mapping[str, Retirement], payload: dict[str, Any]
) -> None:
    """May this customer replace `old_card_id` by `new_card_id`? Only a card it holds now,
    by a card nobody holds (itself included) and never retired."""
    customer_id, old, new = payload["customer_id"], payload["old_card_id"], payload["new_card_id"]
    gone = retired.get(old)
    if gone is not None and gone.customer_id == customer_id:
        raise errors.CardNotHeld(f"card {old!r} was already replaced by {gone.new_card_id!r}")
    if gone is not None or holders.get(old) != customer_id:
        raise errors.CardNotHeld(f"customer {customer_id!r} does not hold card {old!r}")
    if new in retired:
        raise errors.CardRetired(replaced(retired[new]))
    owner = holders.get(new)
    if owner is not None:
        raise errors.CardHeldByAnother(f"card {new!r} is already held by customer {owner!r}")


def check_alone(
    retired: Mapping[str, Retirement], card_id: str, type: str, occurred_at: datetime
) -> None:
    """The offline-till rule: a swipe or purchase naming only a retired card counts when
    it was made strictly before the replacement, and is refused otherwise."""
    gone = retired.get(card_id)
    if gone is not None and type in RULED_ALONE and occurred_at >= gone.occurred_at:
        raise errors.CardReplaced(replaced(gone))


def cards_ruled(interactions: Iterable[Interaction]) -> set[str]:
    """The cards whose holdings the rules of these interactions need: enrolled, replaced
    and replacing cards, and those named alone by a swipe or purchase."""
    cards: set[str] = set()
    for ix in interactions:
        if ix.type == CARD_REPLACED:
            cards.update((ix.payload["old_card_id"], ix.payload["new_card_id"]))
        elif ix.card_id and (
            ix.type == "customer_enrolled" or (ix.customer_id is None and ix.type in RULED_ALONE)
        ):
            cards.add(ix.card_id)
    return cards


def claimed_card(type: str, payload: dict[str, Any]) -> str | None:
    """The card a recorded event makes its customer hold (an enrollment's, an older
    ledger's `card_claimed`, a replacement's new card), or None."""
    if type == CARD_REPLACED:
        return str(payload["new_card_id"])
    if type in ("customer_enrolled", "card_claimed"):
        return str(payload["card_id"])
    return None
