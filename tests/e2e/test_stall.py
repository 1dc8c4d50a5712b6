"""A consumer group stuck on the embedded broker does not hang ingest in silence: the
worker that owns no partition while records wait says so in one line, and `--until-idle`
ends with exit 1 instead of waiting for ever; deleting the group (the README's recovery)
lets the next worker record everything."""

from __future__ import annotations

import time

from stall import stuck_group_by_consumers, unstick_group
from support import enrollment, keyed, publish, purchase, run_ledger

from ledger.settings import Settings


def test_a_stuck_group_ends_until_idle_with_one_line_and_exit_1(settings: Settings) -> None:
    stuck_group_by_consumers(settings, gap=1.0)  # follower stopped, then the leader 1 s later
    publish(
        settings,
        [keyed(enrollment("C-1", "K-1")), *(keyed(purchase(customer_id="C-1")) for _ in range(4))],
    )

    started = time.monotonic()
    stalled = run_ledger(settings, "consume", "--until-idle")
    assert stalled.returncode == 1, stalled.stdout + stalled.stderr
    assert time.monotonic() - started < 60
    lines = stalled.stderr.strip().splitlines()
    assert len(lines) == 1, stalled.stderr
    assert lines[0].startswith("ledger consume: ingest stalled: this worker has owned no")
    assert "while records wait (at least " in lines[0]  # Tansu under-reports a partition's end
    assert f"the consumer group {settings.ingest_group} is stuck" in lines[0]

    unstick_group(settings)
    done = run_ledger(settings, "consume", "--until-idle")
    assert done.returncode == 0, done.stderr
    assert "recorded 5, duplicates 0" in done.stdout
