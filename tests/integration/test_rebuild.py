"""The bulk rebuild against the live projection on real servers: in one part or several
(processes at once, or a log larger than the memory budget), the same rows."""

from __future__ import annotations

import psycopg
import pytest
from support import simulated

from ledger import bootstrap
from ledger.settings import Settings
from producers.simulator import SimulationPlan
from projections.compare import differences
from services.replay import replay
from services.verify import verify

PLAN = SimulationPlan(customers=40, partners=5, events=900, seed=23, faults=False, retail=True)


@pytest.mark.parametrize(
    ("workers", "events_per_part"),
    [(1, 10**9), (2, 10**9), (2, 300), (1, 400)],
    ids=["one part", "two parts at once", "four parts, two at a time", "parts one at a time"],
)
def test_a_rebuild_in_one_part_or_several_equals_the_live_projection(
    settings: Settings, workers: int, events_per_part: int
) -> None:
    simulated(settings, PLAN)
    ports = bootstrap.ports(settings)
    done = replay(ports, "rebuilt", workers=workers, events_per_part=events_per_part)
    with psycopg.connect(settings.database_url or "") as conn:
        head = conn.execute("SELECT max(notification_id) FROM ledger_events").fetchone()
        assert head is not None and done.position == head[0] and done.unreadable == 0
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM rebuilt.profiles), "
            "(SELECT count(*) FROM rebuilt.audience_members WHERE member), "
            "(SELECT min(notification_id) FROM rebuilt.projection_tracking "
            "WHERE application_name IN ('profiles', 'partners'))"
        ).fetchone()
        assert counts is not None and counts[0] >= PLAN.customers // 2 and counts[1] > 0
        assert counts[2] == head[0], "each projection's position, as a replay's schema holds"
    with (
        psycopg.connect(settings.database_url or "") as live,
        psycopg.connect(settings.database_url or "") as again,
    ):
        assert list(differences(live, "public", again, "rebuilt")) == []


def test_verify_in_parts_finds_what_one_process_finds(settings: Settings) -> None:
    simulated(settings, PLAN)
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        streams = conn.execute(
            "SELECT originator_id FROM ledger_events GROUP BY 1 HAVING count(*) >= 4 "
            "ORDER BY 1 LIMIT 3"
        ).fetchall()
        edited, removed, garbled = (row[0] for row in streams)
        conn.execute(
            "UPDATE ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
            "'\"occurred_at\":\"', '\"occurred_at\":\"1'), 'UTF8') "
            "WHERE originator_id = %s AND originator_version = 2",
            (edited,),
        )
        conn.execute(
            "DELETE FROM ledger_events WHERE originator_id = %s AND originator_version = 2",
            (removed,),
        )
        conn.execute(
            "UPDATE ledger_events SET state = '\\x00'::bytea "
            "WHERE originator_id = %s AND originator_version = 3",
            (garbled,),
        )
        conn.execute("UPDATE profiles SET profile = profile || '{\"nps\": 11}'")
    ports = bootstrap.ports(settings)
    one, two = verify(ports, workers=1), verify(ports, workers=2)
    assert one.findings and one.differences and one.rebuild is None
    assert {f.kind for f in one.findings} >= {"edited", "removed", "unreadable"}
    assert (two.findings, two.differences, two.records) == (
        one.findings,
        one.differences,
        one.records,
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_holders_are_learnt_from_enrollments_when_no_claim_is_recorded(
    settings: Settings, workers: int
) -> None:
    """Ledgers record an enrollment once, on the customer's stream, and no `card_claimed`:
    the rebuild credits each card's interactions to its holder, in one part or across
    parts."""
    simulated(settings, PLAN)
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        claims = conn.execute(
            "SELECT count(*) FROM ledger_events "
            "WHERE convert_from(state, 'UTF8')::jsonb->>'kind' = 'card_claimed'"
        ).fetchone()
        card_only = conn.execute(
            "SELECT count(*) FROM ledger_events WHERE topic LIKE '%Card.%' "
            "AND convert_from(state, 'UTF8')::jsonb->'payload'->>'customer_id' IS NULL"
        ).fetchone()
    assert claims == (0,) and card_only is not None and card_only[0] > 0
    replay(bootstrap.ports(settings), "rebuilt", workers=workers, events_per_part=300)
    with (
        psycopg.connect(settings.database_url or "") as live,
        psycopg.connect(settings.database_url or "") as again,
    ):
        assert list(differences(live, "public", again, "rebuilt")) == []
