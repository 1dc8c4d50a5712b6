"""Audience benchmark: evaluation rate, and the clock pass over N stored profiles.

Run: `python bench/audiences.py [--profiles 1000000] [--home DIR]` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import shutil
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from random import Random
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from domain import membership_batch
from domain import profile as fold
from domain.audiences import Audience
from domain.membership import step
from ledger import bootstrap, embedded
from ledger.settings import Settings
from producers.simulator import CATEGORIES, FIRST_NAMES, LAST_NAMES
from projections import audiences as book_module
from projections.audiences import AudienceBook

TARGET = 2.0  # seconds for a clock pass over 1,000,000 stored profiles (issue 15's target)
NOW0 = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)  # the fill evaluates every row at this time
PASSES = [  # each on the state the previous one left
    ("+1 minute", NOW0 + timedelta(minutes=1)),
    ("+1 hour", NOW0 + timedelta(hours=1)),
    ("+1 day (one midnight)", NOW0 + timedelta(days=1)),
    ("into December", datetime(2026, 12, 1, 0, 1, tzinfo=UTC)),
]
SAMPLE = 100_000  # profiles for the pure-Python rates
CHUNK = 20_000  # profiles per COPY transaction
DAY = 86_400
_CATS = tuple(CATEGORIES)
_CAT_WEIGHTS = tuple(spec[3] for spec in CATEGORIES.values())
_NPS_WEIGHTS = (2, 1, 1, 2, 2, 4, 6, 10, 14, 12, 9)  # the simulator's survey scores
_MEMBER_COLUMNS = ("audience", "customer_id", "member", "since", "reason", "seq", "tests")
_MEMBER_ROW = attrgetter(*_MEMBER_COLUMNS, "next_flip")
_MEMBERS_COPY = (
    f"COPY audience_members ({', '.join(_MEMBER_COLUMNS)}, next_flip, inputs) FROM STDIN"
)


def _instant(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(ts))


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def profiles(n: int, seed: int = 1) -> Iterator[tuple[str, dict[str, Any]]]:
    """`n` rendered profiles: `fold.render` of fold states made up with the simulator's
    shapes (birth dates 1945-2006, 60% consent, heavy-tailed activity, favourite categories,
    8% USD), enrolled over the two years before NOW0, last purchases skewed to recent."""
    rng = Random(seed)
    rand, now = rng.random, NOW0.timestamp()
    for c in range(n):
        cid = f"C-{c + 1:07d}"
        enrolled = now - 730 * DAY * rand()
        at = _instant(enrolled)
        given, family = FIRST_NAMES[c % 20], LAST_NAMES[(c // 20 + c) % 16]
        born = time.strftime("%Y-%m-%d", time.gmtime(rng.randrange(-9131, 13514) * DAY))
        state = fold.new_state(cid)
        state["cards"] = [f"K-{c + 1:07d}"]
        state["enrolled_at"] = at
        email = f"{given}.{family}{c + 1}@example.com".lower()
        personal = {"name": f"{given} {family}", "email": email, "birth_date": born}
        state["personal"] = {name: [at, "", value] for name, value in personal.items()}
        state["consent"] = [at, "", rand() < 0.6]
        purchases = int(min(rng.paretovariate(1.16), 500.0) * 3) - 3
        swipes, calls = int(purchases * 0.57 + rand()), int(purchases * 0.2 + rand())
        complaints = int(purchases * 0.06 + rand() * 0.6)
        last = enrolled + (now - enrolled) * (1 - rand() ** 3)
        if purchases:
            bought = now - (now - enrolled) * rand() ** 2
            last = max(last, bought)
            state["last_purchase_at"] = _instant(bought)
            cents = purchases * int(rng.lognormvariate(8.0, 0.8))
            state["spend"] = {"USD" if rand() < 0.08 else "EUR": _money(cents)}
            kinds = rng.sample(_CATS, 2) + rng.choices(_CATS, _CAT_WEIGHTS, k=min(purchases, 4))
            shares = {cat: 1 + rand() for cat in kinds}
            total = sum(shares.values())
            state["category_spend"] = {
                cat: _money(int(cents * share / total)) for cat, share in shares.items()
            }
        state["last_interaction_at"] = _instant(last)
        state["counts"] = {
            "interaction_count": 1 + purchases + swipes + calls + 2 * complaints,
            "swipe_count": swipes,
            "purchase_count": purchases,
            "call_count": calls,
        }
        state["complaints_total"] = complaints
        state["complaints_resolved"] = complaints - (complaints > 0 and rand() < 0.15)
        if rand() < 0.5:
            state["nps"] = [at, "", rng.choices(range(11), _NPS_WEIGHTS)[0]]
        yield cid, fold.render(state)


def rate(work: Callable[[], object], count: int) -> tuple[float, float]:
    """Seconds and count/s of one call, with the cyclic GC off (as `timeit` does)."""
    gc.collect()
    gc.disable()
    t0 = time.perf_counter()
    try:
        work()
    finally:
        seconds = time.perf_counter() - t0
        gc.enable()
    return seconds, count / seconds


def evaluation(audiences: list[Audience], n: int) -> None:
    """Pure Python: profiles per second through every audience, against `orjson.loads`."""
    sample = list(profiles(min(n, SAMPLE)))
    blobs = [orjson.dumps(p) for _, p in sample]
    drain = deque[object](maxlen=0).extend  # drops each result: keeping them times malloc

    def evaluate(chosen: list[Audience]) -> Callable[[], object]:
        return lambda: drain(a.evaluate(p, NOW0) for _, p in sample for a in chosen)

    work: list[tuple[str, Callable[[], object]]] = [
        ("orjson.loads (baseline)", lambda: drain(orjson.loads(b) for b in blobs)),
        ("evaluate, every audience", evaluate(audiences)),
        (
            "step from no row, every audience",
            lambda: drain(step(a, c, None, p, NOW0, "b") for c, p in sample for a in audiences),
        ),
        *((f"  evaluate {a.name}", evaluate([a])) for a in audiences),
    ]
    k = len(sample)
    print(f"\n1. evaluation in pure Python, {k} profiles, {len(audiences)} audiences")
    print(f"{'':<40}{'seconds':>9}{'profiles/s':>12}{'/ loads':>9}")
    base = 0.0
    for label, job in work:
        seconds, per_s = rate(job, k)
        base = base or per_s
        print(f"{label:<40}{seconds:>9.2f}{per_s:>12.0f}{per_s / base:>9.2f}")


def fresh_settings(servers: embedded.EmbeddedServers, home: Path) -> Settings:
    """A new database with the schema, as tests/conftest.py does (no topics: none is used)."""
    name = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = servers.database_url.rsplit("/", 1)[0] + "/" + name
    settings = Settings(url, servers.kafka_bootstrap, topic_prefix=name, home=home)
    bootstrap.init_schema(settings)
    return settings


def load(conn: psycopg.Connection[Any], audiences: list[Audience], n: int) -> int:
    """COPY `n` profiles and the membership rows `step` gives each at NOW0 (as a live
    projection leaves a new customer); return the membership rows written."""
    written, source = 0, profiles(n)
    with conn.cursor() as curs:
        while chunk := list(itertools.islice(source, CHUNK)):
            rows = [
                row
                for cid, p in chunk
                for a in audiences
                if (row := step(a, cid, None, p, NOW0, "bench")[0]) is not None
            ]
            with conn.transaction():
                with curs.copy(
                    "COPY profiles (customer_id, state, profile, position) FROM STDIN"
                ) as copy:
                    for cid, p in chunk:
                        copy.write_row((cid, "{}", orjson.dumps(p).decode(), 0))
                with curs.copy(_MEMBERS_COPY) as copy:
                    for r in rows:
                        inputs = None if r.inputs is None else orjson.dumps(r.inputs).decode()
                        copy.write_row((*_MEMBER_ROW(r), inputs))
            written += len(rows)
    return written


def one(conn: psycopg.Connection[Any], sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return row[0]


def full_scan(conn: psycopg.Connection[Any]) -> float:
    """Seconds to read and decode every stored profile (server-side cursor, 20,000 a fetch)."""
    t0 = time.perf_counter()
    with conn.transaction(), conn.cursor(name="scan") as curs:
        set_json_loads(orjson.loads, curs)
        curs.itersize = 20_000
        curs.execute("SELECT customer_id, profile FROM profiles")
        for _ in curs:
            pass
    return time.perf_counter() - t0


def drop(servers: embedded.EmbeddedServers, settings: Settings) -> None:
    """Best effort: the bench's database goes (it matters on a reused home)."""
    with (
        contextlib.suppress(Exception),
        psycopg.connect(servers.database_url, autocommit=True) as conn,
    ):
        conn.execute(f'DROP DATABASE IF EXISTS "{settings.topic_prefix}" WITH (FORCE)')  # type: ignore[arg-type]


def fill(conn: psycopg.Connection[Any], audiences: list[Audience], n: int) -> float:
    """Load, vacuum, print sizes and the scan baselines; return the full scan's rows/s."""
    print(
        f"\nloading {n} profiles and their audience rows at {NOW0:%Y-%m-%d %H:%M} ...", flush=True
    )
    t0 = time.perf_counter()
    members = load(conn, audiences, n)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    conn.execute("VACUUM ANALYZE profiles")
    conn.execute("VACUUM ANALYZE audience_members")
    vacuum_s = time.perf_counter() - t0
    print(f"\n2. clock pass over {n} stored profiles")
    print(f"load: {members} audience rows, {load_s:.1f} s ({n / load_s:.0f} profiles/s, made up")
    print(f"      and stepped in Python, then COPY); VACUUM ANALYZE {vacuum_s:.1f} s")
    sizes = ", ".join(
        f"{t} {one(conn, 'SELECT pg_total_relation_size(%s)', t) / 2**20:.0f} MiB"
        for t in ("profiles", "audience_members")
    )
    flips, held = conn.execute(
        "SELECT count(next_flip), count(*) FILTER (WHERE member) FROM audience_members"
    ).fetchone() or (0, 0)
    print(f"sizes with indexes: {sizes}; rows with a next flip {flips}, members {held}")
    t0 = time.perf_counter()
    count = one(conn, "SELECT count(*) FROM profiles")
    count_s = time.perf_counter() - t0
    scan_s = full_scan(conn)
    print(f"baseline: SELECT count(*) {count_s:.2f} s ({count / count_s:.0f} rows/s); read and")
    print(f"          decode every profile {scan_s:.2f} s ({count / scan_s:.0f} rows/s) = scan")
    return float(count / scan_s)


@contextlib.contextmanager
def timing(module: Any, name: str, spent: list[float]) -> Iterator[None]:
    """Add the seconds of every call of `module.<name>` to spent[0]."""
    real = getattr(module, name)

    def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        result = real(*args)
        spent[0] += time.perf_counter() - t0
        return result

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, real)


def passes(conn: psycopg.Connection[Any], audiences: list[Audience], scan: float) -> None:
    """Time `AudienceBook.clock_pass` at each of PASSES, in order, with the seconds spent
    in `clock_shifts` (evaluating each group of due rows that store the same answer) and
    in `apply_shifts` (the statements that update the due rows and fill the outbox, summed
    over the two writing threads, which overlap)."""
    moment = [NOW0]
    reader = psycopg.connect(conn.info.dsn, autocommit=True)
    writer = psycopg.connect(conn.info.dsn, autocommit=True)
    book = AudienceBook(audiences, lambda: moment[0])
    print(f"\n{'pass':<22}{'due':>7}{'changes':>8}{'seconds':>8}{'rows/s':>7}{'/ scan':>7}", end="")
    print(f"{'eval':>6}{'write':>6}  target")
    due_by: list[str] = []
    total = 0
    for label, now in PASSES:
        counts = conn.execute(
            "SELECT audience, count(*) FROM audience_members WHERE next_flip <= %s "
            "GROUP BY audience ORDER BY 2 DESC",
            (now,),
        ).fetchall()
        due_by.append(f"due at {label}: " + (", ".join(f"{a} {c}" for a, c in counts) or "-"))
        moment[0] = now
        step_s, write_s = [0.0], [0.0]
        with (
            timing(membership_batch, "clock_shifts", step_s),
            timing(book_module, "apply_shifts", write_s),
        ):
            t0 = time.perf_counter()
            evaluated, changed = book.clock_pass(reader, (conn, writer))
            seconds = time.perf_counter() - t0
        total += changed
        per_s = evaluated / seconds
        verdict = "meets" if seconds < TARGET else "MISSES"
        print(f"{label:<22}{evaluated:>7}{changed:>8}{seconds:>8.2f}{per_s:>7.0f}", end="")
        print(f"{per_s / scan:>7.2f}{step_s[0]:>6.1f}{write_s[0]:>6.1f}", end="")
        print(f"  {verdict} < {TARGET:.0f} s")
    print("\n".join(due_by))
    outbox = one(conn, "SELECT count(*) FROM audience_outbox")
    print(f"audience_outbox: {outbox} rows (the passes reported {total} changes)")
    reader.close()
    writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000, help="stored profiles")
    parser.add_argument("--home", type=Path, help="LEDGER_HOME to start or reuse servers in")
    args = parser.parse_args(argv)
    if args.profiles < 1:
        parser.error("--profiles must be at least 1")
    audiences = bootstrap.audiences(Settings())
    evaluation(audiences, args.profiles)
    home = args.home.resolve() if args.home else Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    print(f"\nservers under {home} ...", flush=True)
    servers = embedded.up(home)
    settings = fresh_settings(servers, home)
    try:
        with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
            passes(conn, audiences, fill(conn, audiences, args.profiles))
        if args.profiles != 1_000_000:
            print(f"(the target is stated for 1,000,000 profiles; this run has {args.profiles})")
    finally:
        drop(servers, settings)
        if args.home is None or servers.postgres_started:
            embedded.down(home)  # stops what we started; a reused home keeps running
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
