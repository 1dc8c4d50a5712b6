"""Two workers enrolling one card for two customers in the same moment: the first commit
holds the card; the other worker decides again only the records that claim involves, and
commits the rest of its batch as it had decided it."""

from __future__ import annotations

from typing import Any

import psycopg
from support import decided_batch as decided
from support import enrollment, interaction, purchase

from domain.aggregates import CARD_CLAIMED, Card, card_stream
from ledger import bootstrap
from ledger.settings import Settings


def rows(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(query).fetchall()


def test_a_lost_claim_decides_again_only_the_records_it_involves(settings: Settings) -> None:
    first, second = bootstrap.ingest(settings, seal=False), bootstrap.ingest(settings, seal=False)
    other = purchase(customer_id="C-X", total="2.00")
    loser = enrollment("C-B", "K-1")
    losers_purchase = purchase(customer_id="C-B", total="3.00")
    card_only = interaction("card_swiped", card_id="K-1", store_id="S-1")
    holds_another = enrollment("C-Y", "K-3")
    late = decided(second, settings, 1, [other, loser, losers_purchase, card_only, holds_another])
    # Decided while K-1 was free; the first worker's enrollment of it commits first.
    first.commit(decided(first, settings, 0, [enrollment("C-A", "K-1")]))

    result = second.commit(late)

    assert (result.recorded, dict(result.rejected), result.duplicates) == (4, {"rule": 1}, 0)
    assert result.redecided == 3  # the loser's enrollment, its purchase, the card's swipe
    assert rows(settings, "SELECT card_id, customer_id FROM ledger_card_holders ORDER BY 1") == [
        ("K-1", "C-A"),
        ("K-3", "C-Y"),
    ]
    assert rows(settings, "SELECT event_id, error FROM ledger_dead_letters") == [
        (loser["event_id"], "card 'K-1' is already held by customer 'C-A'")
    ]
    recorded = rows(settings, "SELECT stream, originator_version FROM ledger_interactions")
    assert sorted(recorded) == [
        ("card-K-1", 1),
        ("customer-C-A", 1),
        ("customer-C-B", 1),  # its purchase only: no gap where the enrollment was
        ("customer-C-X", 1),
        ("customer-C-Y", 1),
    ]
    assert rows(settings, "SELECT sum(next_offset) FROM ledger_offsets") == [(6,)]


def test_the_same_customer_enrolling_a_card_it_holds_loses_nothing(settings: Settings) -> None:
    ingest = bootstrap.ingest(settings, seal=False)
    ingest.commit(decided(ingest, settings, 0, [enrollment("C-A", "K-1")]))
    again = enrollment("C-A", "K-1", email="ada@new.example")
    result = ingest.commit(decided(ingest, settings, 0, [again], at=1))
    assert (result.recorded, dict(result.rejected), result.redecided) == (1, {}, 0)


def test_init_holds_the_cards_an_older_ledger_claimed_on_their_streams(settings: Settings) -> None:
    app = bootstrap.ledger_application(settings)
    claim = {"event_id": "e-9", "customer_id": "C-9", "card_id": "K-9", "occurred_at": "x"}
    app.save(Card.open(card_stream("K-9"), CARD_CLAIMED, "e-9", claim))
    app.close()
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        conn.execute("DROP TABLE ledger_card_holders")  # as before the table existed
    bootstrap.init_schema(settings)
    bootstrap.init_schema(settings)  # once only: a second init finds the table
    assert rows(settings, "SELECT card_id, customer_id, event_id FROM ledger_card_holders") == [
        ("K-9", "C-9", "e-9")
    ]
