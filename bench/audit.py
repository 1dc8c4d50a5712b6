"""Audit benchmark: replay, verify and digest over a ledger of 1,000,000 recorded events.

Run: `python bench/audit.py [--events 1000000] [--home DIR]` (see bench/README.md). It fills
a fresh database through the real path (simulate, publish, ingest), runs the live
projections once, then `ledger replay`, `ledger verify` and `ledger digest` as the commands
run them, and compares the replay's tables with the live ones row for row
(`projections.compare`). Baseline in the same run: bare kafka-python consumption of the
same inbound topic. The targets (issue 15): replay 50,000 events/s, the chain check
100,000 records/s, the whole verify 25,000 records/s, the replay equal to the live
projection.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from ingest import RssSampler, bare_consume, drop, fresh_settings, ingest, produce, project

from ledger import bootstrap, embedded
from projections.compare import differences
from services.replay import REPLAY_SCHEMA

TARGETS = {"replay (events)": 50_000, "verify: hash chains (records)": 100_000}
TARGETS["verify: chains + rebuild + compare"] = 25_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="interactions to simulate")
    parser.add_argument("--home", type=Path, help="LEDGER_HOME to start or reuse servers in")
    args = parser.parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    servers = embedded.up(home)
    settings = fresh_settings(servers, home)
    rows: list[tuple[str, int, float]] = []
    try:
        print(f"filling: {args.events} interactions through Kafka and ingest ...", flush=True)
        produce(settings, args.events)
        rows.append(("bare kafka-python consume", *bare_consume(settings, args.events)))
        recorded, raw, _ = ingest(settings, RssSampler())
        rows.append(("ingest (records)", recorded, raw))
        print("live projections ...", flush=True)
        rows.append(("live projections (events)", *project(settings)))
        print("ledger replay ...", flush=True)
        t0 = time.perf_counter()
        replayed = bootstrap.ledger(settings).replay(REPLAY_SCHEMA)
        rows.append(("replay (events)", replayed.position, time.perf_counter() - t0))
        unequal = replay_differences(settings.database_url or "")
        parts_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("ledger verify ...", flush=True)
        marks: dict[str, float] = {}
        t0 = time.perf_counter()
        report = bootstrap.ledger(settings).verify(
            chains=lambda done, total: marks.__setitem__("chains", time.perf_counter()),
        )
        total = time.perf_counter() - t0
        rows.append(("verify: hash chains (records)", report.records, marks["chains"] - t0))
        rows.append(("verify: chains + rebuild + compare", report.records, total))
        t0 = time.perf_counter()
        digest = bootstrap.ledger(settings).digest()
        rows.append(("digest (streams)", digest["streams"], time.perf_counter() - t0))
    finally:
        drop(servers, settings)
        if args.home is None:
            embedded.down(home)
            shutil.rmtree(home, ignore_errors=True)
    bare = rows[0][1] / rows[0][2]
    live = rows[2][1] / rows[2][2]
    print(f"\n{'':<38}{'count':>10}{'seconds':>10}{'per s':>10}{'/ bare':>8}")
    for label, count, seconds in rows:
        rate = count / seconds
        print(f"{label:<38}{count:>10}{seconds:>10.2f}{rate:>10.0f}{rate / bare:>8.2f}")
    replay_rate = rows[3][1] / rows[3][2]
    print(f"\nverify: {'clean' if report.clean else 'FINDINGS'} (position {report.position})")
    print(
        f"replay equals the live projection: {'yes' if not unequal else 'NO'} "
        f"({unequal} rows differ)"
    )
    print(f"replay {replay_rate:.0f} events/s, {replay_rate / live:.2f}x the live projections")
    print(
        f"peak RSS after the replay: this process {own_rss:.0f} MiB, its largest finished "
        f"child (a rebuild part, forked from it) {parts_rss:.0f} MiB"
    )
    for label, count, seconds in rows:
        if label in TARGETS:
            rate, target = count / seconds, TARGETS[label]
            verdict = "meets" if rate >= target else "MISSES"
            print(f"{label}: {rate:,.0f}/s, {verdict} the target of {target:,}/s")
    return 0 if report.clean and not unequal else 1


def replay_differences(url: str) -> int:
    """How many rows differ between the replay's schema and the live tables."""
    with psycopg.connect(url) as live, psycopg.connect(url) as rebuilt:
        return sum(1 for _ in differences(live, "public", rebuilt, REPLAY_SCHEMA))


if __name__ == "__main__":
    sys.exit(main())
