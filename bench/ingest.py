"""Throughput benchmark: produce, bare consume, ledger ingest and the projections.

Run: `python bench/ingest.py [--events 100000] [--workers N] [--home DIR]` (see
bench/README.md). With `--workers N` (N > 1) the same topic is also ingested, each time into
a fresh database, by 1 and by N worker processes in one consumer group, and their rates,
ratio and batch rollbacks are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from ledger import bootstrap, embedded
from ledger.settings import Settings
from producers.publisher import Publisher
from producers.simulator import SimulationPlan, simulate

TARGET = 5_000.0  # interactions/s, for ingest and for the projections
MiB = 1024 * 1024


@dataclass
class RssSampler:
    """This process's RSS every `interval` seconds, from a daemon thread."""

    interval: float = 0.5
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextlib.contextmanager
    def running(self) -> Iterator[RssSampler]:
        proc = psutil.Process()
        self.samples.append(proc.memory_info().rss)

        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.samples.append(proc.memory_info().rss)

        thread = threading.Thread(target=loop, name="rss-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.samples.append(proc.memory_info().rss)

    def summary(self) -> str:
        s = [x / MiB for x in self.samples]
        quarters = " / ".join(f"{s[min(len(s) - 1, len(s) * q // 4)]:.0f}" for q in (1, 2, 3))
        return (
            f"start {s[0]:.0f} MiB, peak {max(s):.0f} MiB, end {s[-1]:.0f} MiB; "
            f"at 25/50/75% of the run {quarters} MiB ({len(s)} samples, every {self.interval} s)"
        )


def fresh_settings(servers: embedded.EmbeddedServers, home: Path) -> Settings:
    """A new database and topic prefix with schema and topics, as tests/conftest.py does."""
    name = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = servers.database_url.rsplit("/", 1)[0] + "/" + name
    settings = Settings(url, servers.kafka_bootstrap, topic_prefix=name, home=home)
    bootstrap.init_schema(settings)
    bootstrap.init_topics(settings)
    return settings


def produce(
    settings: Settings, events: int, customers: int | None = None, *, retail: bool = False
) -> float:
    """Simulate and publish `events` interactions (for `events // 20` customers unless
    told); return the seconds taken."""
    customers = customers or max(1, events // 20)
    plan = SimulationPlan(customers=customers, partners=50, events=events, seed=1, retail=retail)
    kafka = bootstrap.producer(settings)
    publisher = Publisher(kafka, settings.inbound_topic)
    t0 = time.perf_counter()
    for obj in simulate(plan):
        publisher.publish(obj)
    acked = publisher.flush()
    seconds = time.perf_counter() - t0
    kafka.close()
    assert acked == events, f"{acked} of {events} acknowledged"
    return seconds


def bare_consume(settings: Settings, events: int) -> tuple[int, float]:
    """Read the inbound topic with a plain assigned consumer; (records, seconds)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    tps = [
        TopicPartition(settings.inbound_topic, p)
        for p in sorted(consumer.partitions_for_topic(settings.inbound_topic) or ())
    ]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen, t0 = 0, time.perf_counter()
    deadline = t0 + 300
    while time.perf_counter() < deadline:
        for records in consumer.poll(timeout_ms=500, max_records=5000).values():
            seen += len(records)
        # Tansu's end_offsets under-reports; the fetch high watermark is exact.
        ends = {tp: consumer.highwater(tp) for tp in tps}
        at_end = all(h is not None and consumer.position(tp) >= h for tp, h in ends.items())
        if seen >= events or at_end:
            break
    seconds = time.perf_counter() - t0
    consumer.close()
    return seen, seconds


def ingest(settings: Settings, rss: RssSampler, *, seal: bool = True) -> tuple[int, float, float]:
    """Run the ingest worker until idle; (recorded, raw seconds, seconds of batches).

    The second duration runs from the first poll that held records (after the group join
    and the first fetch) to the commit of the last batch: it leaves out the join wait and
    the final idle check.
    """
    worker = bootstrap.ingest_worker(settings, seal=seal)
    with rss.running():
        t0 = time.perf_counter()
        stats = worker.run(threading.Event(), until_idle=True)
        raw = time.perf_counter() - t0
    batches = raw
    if stats.first_poll_at is not None and stats.last_commit_at is not None:
        batches = stats.last_commit_at - stats.first_poll_at
    return stats.recorded, raw, batches


@dataclass(frozen=True)
class WorkerRun:
    """What one worker process reported."""

    recorded: int
    rollbacks: int  # batches rolled back and read again (stream conflicts among them)
    stream_conflicts: int
    redecided: int  # records decided again after a card claim lost to another worker
    first_poll_at: float | None  # time.perf_counter(): CLOCK_MONOTONIC, one clock for all
    last_commit_at: float | None
    peak_rss: int  # bytes


def _worker(settings: Settings, runs: multiprocessing.Queue[WorkerRun]) -> None:
    stats = bootstrap.ingest_worker(settings).run(threading.Event(), until_idle=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    runs.put(
        WorkerRun(
            stats.recorded,
            stats.retries,
            stats.stream_conflicts,
            stats.redecided,
            stats.first_poll_at,
            stats.last_commit_at,
            peak,
        )
    )


def ingest_in_processes(settings: Settings, workers: int) -> tuple[list[WorkerRun], float]:
    """`workers` ingest processes in one consumer group until idle; (their runs, seconds
    from the first poll that held records to the last commit, over all of them)."""
    context = multiprocessing.get_context("spawn")
    runs: multiprocessing.Queue[WorkerRun] = context.Queue()
    processes = [context.Process(target=_worker, args=(settings, runs)) for _ in range(workers)]
    for process in processes:
        process.start()
    done = [runs.get(timeout=1800) for _ in processes]
    for process in processes:
        process.join()
    firsts = [r.first_poll_at for r in done if r.first_poll_at is not None]
    lasts = [r.last_commit_at for r in done if r.last_commit_at is not None]
    return done, (max(lasts) - min(firsts)) if firsts and lasts else float("nan")


def same_topic(servers: embedded.EmbeddedServers, settings: Settings) -> Settings:
    """A fresh database (schema made) reading `settings`' topics."""
    name = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = servers.database_url.rsplit("/", 1)[0] + "/" + name
    fresh = Settings(
        url, servers.kafka_bootstrap, topic_prefix=settings.topic_prefix, home=settings.home
    )
    bootstrap.init_schema(fresh)
    return fresh


def drop_database(servers: embedded.EmbeddedServers, settings: Settings) -> None:
    url = settings.database_url or ""
    with (
        contextlib.suppress(Exception),
        psycopg.connect(servers.database_url, autocommit=True) as conn,
    ):
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')  # type: ignore[arg-type]


def scale_out(
    servers: embedded.EmbeddedServers, settings: Settings, workers: int
) -> list[tuple[int, list[WorkerRun], float]]:
    """The topic ingested by 1, then by `workers` processes, each into a fresh database."""
    found = []
    for n in (1, workers):
        fresh = same_topic(servers, settings)
        print(f"ledger ingest, {n} worker process(es) ...", flush=True)
        try:
            found.append((n, *ingest_in_processes(fresh, n)))
        finally:
            drop_database(servers, fresh)
    return found


def project(settings: Settings) -> tuple[int, float]:
    """Run every projection (with audiences and their relay) until caught up;
    (notifications, seconds)."""
    t0 = time.perf_counter()
    done = bootstrap.ledger(settings).project(threading.Event(), until_idle=True)
    return done.processed, time.perf_counter() - t0


def drop(servers: embedded.EmbeddedServers, settings: Settings) -> None:
    """Best effort: the bench's database and topics go (they matter on a reused home)."""
    name = settings.topic_prefix
    with (
        contextlib.suppress(Exception),
        psycopg.connect(servers.database_url, autocommit=True) as conn,
    ):
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        admin.delete_topics(
            [settings.inbound_topic, settings.dead_letter_topic, settings.audiences_topic]
        )
        admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="interactions to simulate")
    parser.add_argument("--home", type=Path, help="LEDGER_HOME to start or reuse servers in")
    parser.add_argument(
        "--workers", type=int, default=1, help="also ingest with 1 and this many processes"
    )
    parser.add_argument(
        "--retail",
        action="store_true",
        help="the retail mix of contract 8: returns, lost cards, merges, sales notes",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.workers < 1:
        parser.error("--events and --workers must be at least 1")
    home = args.home.resolve() if args.home else Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    n = args.events
    print(f"servers under {home} ...", flush=True)
    servers = embedded.up(home)
    settings = fresh_settings(servers, home)
    try:
        print(f"producing {n} interactions to {settings.inbound_topic} ...", flush=True)
        produce_s = produce(settings, n, retail=args.retail)
        print("bare consume ...", flush=True)
        consumed, bare_s = bare_consume(settings, n)
        print("ledger ingest ...", flush=True)
        rss = RssSampler()
        recorded, ingest_raw_s, ingest_s = ingest(settings, rss)
        print("projections (profiles, partners, audiences) ...", flush=True)
        projected, project_s = project(settings)
        scaled = scale_out(servers, settings, args.workers) if args.workers > 1 else []
    finally:
        drop(servers, settings)
        if args.home is None or servers.postgres_started:
            embedded.down(home)  # stops what we started; a reused home keeps running
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)

    bare = consumed / bare_s
    rates = [
        ("produce", n, produce_s),
        ("bare consume", consumed, bare_s),
        ("ingest, raw (with group join)", recorded, ingest_raw_s),
        ("ingest, first to last batch", recorded, ingest_s),
        ("projections (events)", projected, project_s),
        ("projections (interactions)", recorded, project_s),
    ]
    print(f"\n{'stage':<36}{'count':>9}{'seconds':>10}{'per s':>10}{'/ bare':>9}")
    for label, count, seconds in rates:
        rate = count / seconds
        print(f"{label:<36}{count:>9}{seconds:>10.2f}{rate:>10.0f}{rate / bare:>9.2f}")
    for workers, runs, seconds in scaled:
        total = sum(r.recorded for r in runs)
        rate = total / seconds
        print(
            f"{f'ingest, {workers} process(es), first to last':<36}{total:>9}{seconds:>10.2f}"
            f"{rate:>10.0f}{rate / bare:>9.2f}"
        )
    print(f"\ningest RSS: {rss.summary()}")
    if scaled:
        (_, one, one_s), (workers, many, many_s) = scaled
        speedup = (sum(r.recorded for r in many) / many_s) / (sum(r.recorded for r in one) / one_s)
        print(f"{workers} workers / 1 worker: {speedup:.2f}x")
        for count, runs, _ in scaled:
            print(
                f"{count} process(es): recorded {[r.recorded for r in runs]}, "
                f"batch rollbacks {sum(r.rollbacks for r in runs)} "
                f"(stream conflicts {sum(r.stream_conflicts for r in runs)}), "
                f"records decided again {sum(r.redecided for r in runs)}, "
                f"peak RSS {', '.join(f'{r.peak_rss / MiB:.0f}' for r in runs)} MiB"
            )
    verdicts = [
        ("ingest", recorded / ingest_s),
        ("projection", recorded / project_s),
    ]
    for what, rate in verdicts:
        status = "meets" if rate >= TARGET else "MISSES"
        print(f"{what}: {rate:.0f} interactions/s {status} the {TARGET:.0f}/s target")
    if recorded != n or consumed != n:
        print(f"note: {n} published, {consumed} consumed, {recorded} recorded", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
