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

PLAN = SimulationPlan(customers=40, partners=5, events=900, seed=23, faults=False)


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
