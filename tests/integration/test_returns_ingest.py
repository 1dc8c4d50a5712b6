"""Returns through the real ingest worker: a stream keeps its orders only while a batch
returns goods on it (`consumers.loader.BatchLoader._orders_for`), so a return is checked
against orders read again from the store when its stream was cached without them, and
against a purchase of the same batch. One record per batch and the whole topic in one
batch must decide alike."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from support import enrollment, interaction, keyed, publish, purchase

from ledger import bootstrap
from ledger.settings import Settings

LINE = {"sku": "a", "category": "grocery", "quantity": 2, "unit_price": "3.00"}


def returned(return_id: str, order_id: str, quantity: int) -> dict[str, Any]:
    line = {**LINE, "quantity": quantity}
    return interaction(
        "purchase_returned",
        customer_id="C-1",
        store_id="S-1",
        order_id=order_id,
        return_id=return_id,
        currency="EUR",
        total=f"{3 * quantity:.2f}",
        lines=[line],
    )


def traffic() -> list[dict[str, Any]]:
    bought = purchase("6.00", customer_id="C-1", lines=[LINE])
    order = bought["order_id"]
    swipe = interaction("card_swiped", card_id="K-1", customer_id="C-1", store_id="S-1")
    return [
        enrollment("C-1", "K-1"),
        bought,
        swipe,  # a batch that loads C-1's stream and returns nothing: its orders dropped
        returned("R-1", order, 1),  # read again from the store
        returned("R-2", order, 2),  # one is left: more than bought
        returned("R-3", "O-never", 1),
        returned("R-1", order, 1),  # a return id already on the stream
    ]


def outcome(settings: Settings) -> tuple[int, list[str]]:
    with psycopg.connect(settings.database_url or "") as conn:
        (recorded,) = conn.execute("SELECT count(*) FROM ledger_interactions").fetchone() or (0,)
        errors = conn.execute(
            "SELECT error FROM ledger_dead_letters ORDER BY source_offset"
        ).fetchall()
    return recorded, [e for (e,) in errors]


def test_returns_decide_alike_one_record_a_batch_or_all_in_one(
    make_settings: Callable[[], Settings],
) -> None:
    results = []
    for per_batch in (1, 5000):
        settings = make_settings()
        publish(settings, [keyed(obj) for obj in traffic()])
        worker = bootstrap.ingest_worker(settings)
        worker._max_records = per_batch  # one record a poll: every batch meets the cache
        worker.run(threading.Event(), until_idle=True)
        results.append(outcome(settings))
    one_by_one, together = results
    recorded, errors = one_by_one
    assert recorded == 4  # enrollment, purchase, swipe, R-1
    assert len(errors) == 3
    assert "1 of 2 bought left to return" in errors[0]
    assert "'O-never' has no purchase" in errors[1]
    assert "return 'R-1' was already recorded" in errors[2]
    assert together[0] == recorded and len(together[1]) == 3
