"""Audience membership on real servers: time passing, and the relay's at-least-once."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from support import (
    audience_changes,
    distinct_changes,
    enrollment,
    ingest,
    keyed,
    ledger_env,
    members,
    project,
    publish,
    purchase,
    wait_for,
)

from ledger import bootstrap
from ledger.settings import Settings
from services import project as projecting


def history(settings: Settings, customer: str) -> dict[str, list[tuple[int, str]]]:
    """Each audience's published (seq, change) for one customer, in seq order."""
    found: dict[str, list[tuple[int, str]]] = {}
    for (audience, customer_id, seq), change in sorted(
        distinct_changes(audience_changes(settings)).items()
    ):
        if customer_id == customer:
            found.setdefault(audience, []).append((seq, change["change"]))
    return found


def test_time_passing_moves_a_customer_into_and_out_of_time_based_audiences(
    settings: Settings,
) -> None:
    assert settings.now == datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    joined = enrollment(
        "C-1",
        "K-1",
        occurred_at="2026-06-01T09:00:00Z",
        birth_date="1990-07-04",
        marketing_consent=True,
    )
    bought = [purchase(customer_id="C-1", occurred_at=f"2026-06-0{d}T10:00:00Z") for d in (2, 3, 4)]
    publish(settings, [keyed(joined), *(keyed(p) for p in bought)])
    ingest(settings)
    project(settings)
    assert "C-1" in members(settings)["new_members"]

    july = replace(settings, now=datetime(2026, 7, 10, tzinfo=UTC))
    project(july)  # the clock alone: birthday month
    assert "C-1" in members(settings)["birthday_this_month"]

    september = replace(settings, now=datetime(2026, 9, 15, tzinfo=UTC))
    project(september)  # 90 days on: no longer new, lapsed; birthday month over
    now_in = members(settings)
    assert "C-1" not in now_in.get("new_members", set())
    assert "C-1" not in now_in.get("birthday_this_month", set())
    assert "C-1" in now_in["lapsed_buyers"]

    next_spring = replace(settings, now=datetime(2027, 5, 28, tzinfo=UTC))
    project(next_spring)  # the card's first anniversary is 4 days ahead
    assert "C-1" in members(settings)["loyalty_anniversary"]

    assert history(settings, "C-1") == {
        "new_members": [(1, "entered"), (2, "exited")],
        "birthday_this_month": [(1, "entered"), (2, "exited")],
        "lapsed_buyers": [(1, "entered")],
        "loyalty_anniversary": [(1, "entered")],
        "bakery_cross_sell": [(1, "entered")],  # groceries, never bakery
    }
    exits = [
        c
        for c in audience_changes(settings)
        if c["audience"] == "new_members" and c["change"] == "exited"
    ]
    assert exits[0]["at"] == "2026-09-15T00:00:00Z"
    assert exits[0]["reason"] == (
        "enrolled_at within_days 90 became false, by clock 2026-09-15T00:00:00Z"
    )


def test_an_event_moves_a_customer_with_the_event_named_in_the_reason(settings: Settings) -> None:
    joined = enrollment("C-2", "K-2", occurred_at="2026-06-01T09:00:00Z", marketing_consent=True)
    publish(settings, [keyed(joined)])
    ingest(settings)
    project(settings)
    assert "C-2" in members(settings)["new_members"]
    withdrawn = {
        "event_id": "6a1f2a4e-8c55-4f3b-9d3a-1b2c3d4e5f60",
        "type": "consent_changed",
        "occurred_at": "2026-06-10T09:00:00Z",
        "source": "crm-web",
        "customer_id": "C-2",
        "marketing_consent": False,
    }
    publish(settings, [keyed(withdrawn)])
    ingest(settings)
    project(settings)

    assert "C-2" not in members(settings).get("new_members", set())
    (exit_,) = [c for c in audience_changes(settings) if c["change"] == "exited"]
    assert exit_["seq"] == 2
    assert exit_["reason"] == (
        "marketing_consent == true became false, "
        "by event consent_changed 6a1f2a4e-8c55-4f3b-9d3a-1b2c3d4e5f60"
    )


def test_a_relay_killed_after_sending_sends_again_and_loses_nothing(settings: Settings) -> None:
    customers = [f"C-{n}" for n in range(40)]
    publish(
        settings,
        [
            keyed(
                enrollment(c, f"K-{c}", occurred_at="2026-06-01T09:00:00Z", marketing_consent=True)
            )
            for c in customers
        ],
    )
    ingest(settings)
    # The projection alone (no relay): the changes wait in the outbox.
    pages = projecting.runner(bootstrap.ports(settings))
    projecting.follow(pages, threading.Event(), until_idle=True)
    with psycopg.connect(settings.database_url or "") as conn:
        pending = conn.execute("SELECT count(*) FROM audience_outbox").fetchone()
        assert pending is not None and pending[0] >= len(customers)
        # Hold the rows, so the relay publishes them and then blocks on deleting them.
        conn.execute("SELECT id FROM audience_outbox FOR SHARE")
        relay = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "project"],
            env=ledger_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: len(audience_changes(settings)) >= pending[0], 60, "the relay's sends")
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        # Its server session still waits on our lock (PostgreSQL notices a gone client only
        # when it next talks to it): end it, as a crashed host's session would end.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        conn.rollback()
    project(settings)  # a new relay finds the rows still in the outbox and sends them again

    changes = audience_changes(settings)
    distinct = distinct_changes(changes)
    assert len(changes) == 2 * len(distinct), "every change sent twice, identically"
    assert len(distinct) == pending[0]
    assert {c for (a, c, _) in distinct if a == "new_members"} == set(customers)
    assert members(settings)["new_members"] == set(customers)


def test_a_new_definitions_file_is_applied_to_every_stored_profile(
    settings: Settings, tmp_path: Path
) -> None:
    spenders = [f"C-{n}" for n in range(3)]
    publish(
        settings,
        [keyed(enrollment(c, f"K-{c}", marketing_consent=True)) for c in spenders]
        + [
            keyed(purchase(total=f"{500 * (n + 1)}.00", customer_id=c))
            for n, c in enumerate(spenders)
        ],
    )
    ingest(settings)
    project(settings)
    assert members(settings)["big_spenders"] == {"C-1", "C-2"}  # 1,000 EUR and 1,500 EUR

    definitions = tmp_path / "audiences.toml"
    definitions.write_text(
        """
[audiences.big_spenders]
description = "Spent 500 EUR or more"
all = [{ field = "total_spend.EUR", op = ">=", value = 500 }]

[audiences.everyone]
description = "Every customer with a card"
all = [{ field = "cards", op = "contains", value = "K-C-0" }]
"""
    )
    project(replace(settings, audiences_path=definitions))  # no new event: the file alone

    now_in = members(settings)
    assert now_in == {"big_spenders": set(spenders), "everyone": {"C-0"}}
    distinct = distinct_changes(audience_changes(settings))
    entered = {k: c["reason"] for k, c in distinct.items() if c["change"] == "entered"}
    assert entered[("big_spenders", "C-0", 1)] == (
        "total_spend.EUR >= 500 became true, by definition change"
    )
    retired = [c for c in distinct.values() if c["audience"] == "bakery_cross_sell"]
    assert {c["customer_id"] for c in retired if c["change"] == "exited"} == set(spenders)
    assert all(
        c["reason"] == "audience no longer defined, by definition change"
        for c in retired
        if c["change"] == "exited"
    )


def test_setting_the_clock_back_evaluates_the_clock_audiences_afresh(settings: Settings) -> None:
    joined = enrollment(
        "C-5",
        "K-5",
        occurred_at="2026-06-01T09:00:00Z",
        birth_date="1990-06-04",
        marketing_consent=True,
    )
    publish(settings, [keyed(joined)])
    ingest(settings)
    project(settings)  # June: a birthday this month, a new member
    assert "C-5" in members(settings)["birthday_this_month"]
    project(replace(settings, now=datetime(2027, 3, 1, tzinfo=UTC)))
    assert "C-5" not in members(settings).get("birthday_this_month", set())
    project(settings)  # back to June 2026
    assert "C-5" in members(settings)["birthday_this_month"]
    assert "C-5" in members(settings)["new_members"]
