"""Use case, part of `ledger verify`: the card holders' table (`store.card_holdings`)
against the log. Ingest writes the table in the events' transaction; the log alone says
who holds each card (the first `customer_enrolled` of it, or an older ledger's
`card_claimed`), so the table is rebuilt from the log and compared, as the projections are.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from psycopg import Connection

from projections.compare import Difference
from store import card_holdings

WHAT = "card holding"


def differences(conn: Connection[Any]) -> Iterator[Difference]:
    """Every card whose holder in the table is not the one the log says (`conn`: in the
    snapshot the rest of the check reads)."""
    expected = card_holdings.from_log(conn)
    found = dict(card_holdings.every_holding(conn))
    for card in sorted(expected.keys() | found.keys()):
        claim, holder = expected.get(card), found.get(card)
        if claim is None:
            yield Difference(WHAT, card, f"held by {holder} in the table, by nobody in the log")
        elif holder is None:
            yield Difference(
                WHAT, card, f"held by {claim.customer_id} in the log, not in the table"
            )
        elif holder != claim.customer_id:
            yield Difference(
                WHAT, card, f"held by {holder} in the table, by {claim.customer_id} in the log"
            )
