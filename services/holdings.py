"""Use case, part of `ledger verify`: the card holders' table (`store.card_holdings`)
against the log. Ingest writes the table in the events' transaction; the log alone says
who holds each card (the first `customer_enrolled` or `card_replaced` claiming it, or an
older ledger's `card_claimed`) and which cards were replaced, so the table is rebuilt from
the log and compared, as the projections are.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from psycopg import Connection

from domain.profile import utc_text
from projections.compare import Difference
from store import card_holdings

WHAT = "card holding"


def differences(conn: Connection[Any]) -> Iterator[Difference]:
    """Every card whose holding in the table (its holder, and for a retired card what
    replaced it and when) is not the one the log says (`conn`: in the snapshot the rest of
    the check reads)."""
    expected = card_holdings.from_log(conn)
    found = dict(card_holdings.every_holding(conn))
    for card in sorted(expected.keys() | found.keys()):
        logged, held = expected.get(card), found.get(card)
        if logged is None:
            yield Difference(
                WHAT, card, f"held by {_shown(held)} in the table, by nobody in the log"
            )
        elif held is None:
            yield Difference(WHAT, card, f"held by {_shown(logged)} in the log, not in the table")
        elif held != logged:
            yield Difference(
                WHAT, card, f"held by {_shown(held)} in the table, by {_shown(logged)} in the log"
            )


def _shown(holding: card_holdings.Holding | None) -> str:
    assert holding is not None
    holder, new, at = holding
    if new is None:
        return holder
    assert at is not None
    return f"{holder} (replaced by {new} at {utc_text(at)})"
