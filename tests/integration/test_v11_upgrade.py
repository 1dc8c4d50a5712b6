"""A ledger projected before contract v1.1 upgrades on `ledger init`: its stored profiles
and partner statuses gain section 8's fields as a fold gives them (no return, no note, no
replaced card), so `ledger verify` finds them equal to a rebuild."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from domain import partner, profile
from ledger import bootstrap
from ledger.settings import Settings

V11 = (
    "return_count",
    "total_refunded",
    "net_spend",
    "notes_count",
    "last_note_at",
    "stage",
    "retired_cards",
)


def test_init_gives_old_rows_the_new_fields_as_a_fold_would(settings: Settings) -> None:
    purchase = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "occurred_at": "2026-03-01T10:00:00Z",
        "order_id": "O-1",
        "currency": "EUR",
        "total": "12.50",
        "lines": [{"sku": "a", "category": "toys", "quantity": 1, "unit_price": "12.50"}],
    }
    state = profile.new_state("C-1")
    profile.apply(state, "purchase", purchase)
    fresh = profile.render(state)
    old = {k: v for k, v in fresh.items() if k not in V11}
    status_state = partner.new_state("P-1")
    fresh_status = partner.render(status_state)
    old_status = {k: v for k, v in fresh_status.items() if k not in V11}
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        conn.execute("INSERT INTO profiles VALUES ('C-1', %s, %s, 1)", (Jsonb(state), Jsonb(old)))
        conn.execute(
            "INSERT INTO partners VALUES ('P-1', %s, %s, 2)",
            (Jsonb(status_state), Jsonb(old_status)),
        )
    bootstrap.init_schema(settings)
    bootstrap.init_schema(settings)  # twice: nothing more changes
    with psycopg.connect(settings.database_url or "") as conn:
        ((upgraded,),) = conn.execute("SELECT profile FROM profiles").fetchall()
        ((upgraded_status,),) = conn.execute("SELECT status FROM partners").fetchall()
    assert upgraded == fresh and upgraded["net_spend"] == {"EUR": "12.50"}
    assert upgraded_status == fresh_status
