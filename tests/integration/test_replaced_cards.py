"""Lost and replaced cards (contract section 8) through the real ingest worker and
projection: the new card held and the old retired in the replacement's transaction, the
offline-till rule, parked card-only interactions credited by the replacement, what the
profile, the history and `ledger verify` show, a replay equal to live, and a card retired
by another worker while a batch's swipes were being decided."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from support import decided_batch as decided
from support import enrollment, ingest, interaction, keyed, project, publish, purchase

from ledger import bootstrap
from ledger.settings import Settings
from projections import profiles
from projections.compare import differences
from projections.history import customer_events
from services.replay import replay
from services.verify import verify

LINE = {"sku": "a", "category": "grocery", "quantity": 2, "unit_price": "3.00"}
NOON = "2026-03-01T12:00:00Z"


def replaced(customer: str, old: str, new: str, at: str = NOON, **fields: Any) -> dict[str, Any]:
    return interaction(
        "card_replaced",
        customer_id=customer,
        old_card_id=old,
        new_card_id=new,
        occurred_at=at,
        **fields,
    )


def swiped(card: str, at: str) -> dict[str, Any]:
    return interaction("card_swiped", card_id=card, store_id="S-1", occurred_at=at)


def rows(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(query).fetchall()


def step(settings: Settings, *objs: dict[str, Any]) -> None:
    """Publish, then ingest all: messages of different keys may go to different partitions,
    so what must be recorded after something else is published in a later step."""
    publish(settings, [keyed(obj) for obj in objs])
    ingest(settings)


def test_a_lost_card_replaced_moves_holding_and_rules_late_tills(settings: Settings) -> None:
    bought = purchase("6.00", card_id="K-1", lines=[LINE], occurred_at="2026-03-01T10:30:00Z")
    step(
        settings,
        enrollment("C-1", "K-1", occurred_at="2026-03-01T10:00:00Z"),
        bought,  # card-only, K-1 held: counts for C-1
        swiped("K-2", "2026-03-01T10:45:00Z"),  # nobody holds K-2 yet: parked
    )
    step(settings, replaced("C-1", "K-1", "K-2", reason="lost"))
    late = swiped("K-1", NOON)
    retired_enrollment = enrollment("C-2", "K-1")
    again = replaced("C-1", "K-1", "K-3", at="2026-03-01T12:30:00Z")
    held = enrollment("C-2", "K-2")
    step(
        settings,
        swiped("K-1", "2026-03-01T11:59:59Z"),  # an offline till: counts for C-1
        late,
        interaction(
            "purchase_returned",
            card_id="K-1",
            store_id="S-1",
            order_id=bought["order_id"],
            return_id="R-1",
            currency="EUR",
            total="3.00",
            lines=[{**LINE, "quantity": 1}],
        ),
        retired_enrollment,
        again,
        held,
        swiped("K-2", "2026-03-01T13:00:00Z"),
    )
    project(settings)

    dead = dict(rows(settings, "SELECT event_id, error FROM ledger_dead_letters"))
    assert dead == {
        late["event_id"]: "card 'K-1' was replaced by 'K-2'",
        retired_enrollment["event_id"]: "card 'K-1' was replaced by 'K-2'",
        again["event_id"]: "card 'K-1' was already replaced by 'K-2'",
        held["event_id"]: "card 'K-2' is already held by customer 'C-1'",
    }
    holdings = rows(
        settings,
        "SELECT card_id, customer_id, replaced_by, replaced_at FROM ledger_card_holders ORDER BY 1",
    )
    assert holdings == [
        ("K-1", "C-1", "K-2", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("K-2", "C-1", None, None),
    ]
    with psycopg.connect(settings.database_url or "") as conn:
        profile = profiles.profile(conn, "C-1")
        history = customer_events(conn, "C-1")
    assert profile is not None
    assert (profile["cards"], profile["retired_cards"]) == (["K-2"], ["K-1"])
    assert (profile["swipe_count"], profile["purchase_count"], profile["return_count"]) == (3, 1, 1)
    assert profile["interaction_count"] == 7
    assert profile["net_spend"] == {"EUR": "3.00"}
    assert {e["stream"] for e in history} == {"customer-C-1", "card-K-1", "card-K-2"}
    assert len(history) == 7

    ports = bootstrap.ports(settings)
    checked = verify(ports, workers=1)
    assert (checked.findings, checked.differences) == ([], [])
    replay(ports, "rebuilt", workers=2)
    with (
        psycopg.connect(settings.database_url or "") as live,
        psycopg.connect(settings.database_url or "") as again_,
    ):
        assert list(differences(live, "public", again_, "rebuilt")) == []


def test_a_card_retired_by_another_worker_meanwhile_decides_its_swipes_again(
    settings: Settings,
) -> None:
    first, second = bootstrap.ingest(settings, seal=False), bootstrap.ingest(settings, seal=False)
    first.commit(decided(first, settings, 0, [enrollment("C-1", "K-1")]))
    late = swiped("K-1", "2026-03-01T12:00:01Z")
    offline = swiped("K-1", "2026-03-01T11:00:00Z")
    other = purchase(customer_id="C-9")
    batch = decided(second, settings, 1, [late, other, offline])  # K-1 not retired yet
    first.commit(decided(first, settings, 2, [replaced("C-1", "K-1", "K-2")]))

    result = second.commit(batch)

    assert (result.recorded, dict(result.rejected), result.redecided) == (2, {"rule": 1}, 2)
    assert rows(settings, "SELECT event_id, error FROM ledger_dead_letters") == [
        (late["event_id"], "card 'K-1' was replaced by 'K-2'")
    ]
    recorded = rows(settings, "SELECT event_id FROM ledger_interactions")
    assert {offline["event_id"], other["event_id"]} <= {e for (e,) in recorded}
