"""Ingest with personal fields sealed (AES-GCM, a key per customer) against the same
ingest with them in the clear: the same topic, in the same run, rounds alternating.

Run: `python bench/sealing.py [--events 100000] [--customers N] [--rounds 3] [--home DIR]`
(see bench/README.md). The goal: sealing costs less than 10% of the ingest rate.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg
from ingest import RssSampler, bare_consume, drop, fresh_settings, ingest, produce

from ledger import bootstrap, embedded
from ledger.settings import Settings

GOAL = 0.90  # sealed rate / clear rate


def fresh_database(servers: embedded.EmbeddedServers, settings: Settings) -> Settings:
    """The same topics, a new empty ledger: the worker starts again from offset 0."""
    name = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    ledger = replace(settings, database_url=servers.database_url.rsplit("/", 1)[0] + "/" + name)
    bootstrap.init_schema(ledger)
    return ledger


def drop_database(servers: embedded.EmbeddedServers, settings: Settings) -> None:
    name = (settings.database_url or "").rsplit("/", 1)[1]
    with (
        contextlib.suppress(Exception),
        psycopg.connect(servers.database_url, autocommit=True) as conn,
    ):
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def sealed_values(settings: Settings) -> int:
    with psycopg.connect(settings.database_url or "") as conn:
        row = conn.execute(
            "SELECT count(*) FROM ledger_events WHERE position('aesgcm:'::bytea IN state) > 0"
        ).fetchone()
    return int(row[0]) if row else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="interactions to simulate")
    parser.add_argument(
        "--customers", type=int, help="customers (default events / 20; more: more enrollments)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="ingests of each kind")
    parser.add_argument("--home", type=Path, help="LEDGER_HOME to start or reuse servers in")
    args = parser.parse_args(argv)
    if args.events < 1 or args.rounds < 1:
        parser.error("--events and --rounds must be at least 1")
    home = args.home.resolve() if args.home else Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    n = args.events
    print(f"servers under {home} ...", flush=True)
    servers = embedded.up(home)
    settings = fresh_settings(servers, home)
    rates: dict[bool, list[float]] = {False: [], True: []}
    try:
        print(f"producing {n} interactions to {settings.inbound_topic} ...", flush=True)
        produce(settings, n, args.customers)
        consumed, bare_s = bare_consume(settings, n)
        for round_ in range(1, args.rounds + 1):
            for seal in (False, True):
                ledger = fresh_database(servers, settings)
                try:
                    recorded, _, seconds = ingest(ledger, RssSampler(), seal=seal)
                    sealed = sealed_values(ledger)
                finally:
                    drop_database(servers, ledger)
                rate = recorded / seconds
                rates[seal].append(rate)
                what = "sealed" if seal else "clear "
                print(
                    f"round {round_}, {what}: {recorded} recorded in {seconds:.2f} s = "
                    f"{rate:,.0f}/s ({sealed} events hold sealed values)",
                    flush=True,
                )
    finally:
        drop(servers, settings)
        if args.home is None or servers.postgres_started:
            embedded.down(home)
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)

    bare = consumed / bare_s
    clear, sealed = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"\n{'ingest (median of ' + str(args.rounds) + ')':<28}{'per s':>10}{'/ bare':>9}")
    print(f"{'bare kafka-python consume':<28}{bare:>10,.0f}{1:>9.2f}")
    print(f"{'clear (no sealing)':<28}{clear:>10,.0f}{clear / bare:>9.2f}")
    print(f"{'sealed (AES-GCM per customer)':<28}{sealed:>10,.0f}{sealed / bare:>9.2f}")
    ratio = sealed / clear
    verdict = "meets" if ratio >= GOAL else "MISSES"
    print(f"\nsealed / clear = {ratio:.3f}: {verdict} the goal of at most 10% lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
