"""The bulk rebuild against the live projection on real servers: one pass or several
(a log larger than the memory budget), the same rows."""

from __future__ import annotations

import psycopg
import pytest
from support import simulated

from ledger import bootstrap
from ledger.settings import Settings
from producers.simulator import SimulationPlan
from projections.compare import differences
from services.replay import replay

PLAN = SimulationPlan(customers=40, partners=5, events=900, seed=23, faults=False)


@pytest.mark.parametrize("events_per_pass", [10**9, 300])
def test_a_rebuild_in_one_pass_or_several_equals_the_live_projection(
    settings: Settings, events_per_pass: int
) -> None:
    simulated(settings, PLAN)
    ports = bootstrap.ports(settings)
    done = replay(ports, "rebuilt", events_per_pass=events_per_pass)
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
