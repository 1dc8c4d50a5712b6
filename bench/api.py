"""Read API benchmark: GET /customers/{id} under concurrent load from another process.

Run: `python bench/api.py [--customers 5000] [--workers 2] [--seconds 15]`. It starts the
embedded servers, fills a fresh database through the real path (simulate, ingest,
project), starts `ledger serve --workers N`, and loads it with `wrk` (Debian's `wrk`
package) over random customer ids, printing requests/s and the latency percentiles. The
baseline, measured in the same run, is the same profile read straight from PostgreSQL with
an async psycopg pool and as many concurrent readers: the ratio is what HTTP, FastAPI and
validation cost on top of the database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from ingest import drop, fresh_settings, produce
from psycopg_pool import AsyncConnectionPool

from ledger import bootstrap, embedded
from projections import profiles

TARGET_RATE, TARGET_P99_MS = 2_000.0, 50.0
LUA = """
counter = 0
request = function()
  counter = counter + 1
  local id = string.format("C-%05d", (counter * 7919) % {customers} + 1)
  return wrk.format("GET", "/customers/" .. id)
end
"""


def baseline(url: str, customers: int, connections: int, seconds: float) -> float:
    """Profile reads per second straight from PostgreSQL (the API's own query)."""

    async def run() -> float:
        pool = AsyncConnectionPool(
            url, min_size=connections, max_size=connections, kwargs={"autocommit": True}, open=False
        )
        await pool.open(wait=True)
        done, deadline = 0, time.monotonic() + seconds

        async def reader(k: int) -> None:
            nonlocal done
            i = k
            while time.monotonic() < deadline:
                i += 7919
                async with pool.connection() as conn:
                    cursor = await conn.execute(
                        *profiles.with_position_query(f"C-{i % customers + 1:05d}")
                    )
                    await cursor.fetchone()
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(reader(k) for k in range(connections)))
        await pool.close()
        return done / (time.monotonic() - started)

    return asyncio.run(run())


def load(base_url: str, customers: int, connections: int, seconds: int) -> dict[str, float]:
    """wrk's requests/s and latency percentiles (ms)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench/api.py needs wrk (Debian: apt install wrk) to load the server")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA.format(customers=customers))
    out = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, base_url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    figures = {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}  # type: ignore[index]
    for pct in ("50", "90", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        figures[f"p{pct}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = float(errors[1]) if errors else 0.0
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=2, help="ledger serve --workers")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients")
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    servers = embedded.up(home)
    settings = fresh_settings(servers, home)
    server = None
    try:
        events = args.customers * 20  # bench/ingest.py's mix: 20 interactions a customer
        print(f"filling: {events} interactions for {args.customers} customers ...", flush=True)
        produce(settings, events)
        bootstrap.ingest_worker(settings).run(threading.Event(), until_idle=True)
        bootstrap.ledger(settings).project(threading.Event(), until_idle=True)
        port = 18_000 + os.getpid() % 1000
        env = {**os.environ, "LEDGER_DATABASE_URL": settings.database_url or ""}
        env |= {"LEDGER_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or ""}
        env |= {"LEDGER_TOPIC_PREFIX": settings.topic_prefix, "LEDGER_HOME": str(home)}
        server = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port)]
            + ["--workers", str(args.workers)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                sys.exit("the API did not answer /health within 60 s")
            time.sleep(0.2)
        print("baseline: the same read straight from PostgreSQL ...", flush=True)
        bare = baseline(settings.database_url or "", args.customers, args.connections, 10)
        print(f"cold: GET /customers/{{id}} with wrk for {args.seconds} s ...", flush=True)
        cold = load(base_url, args.customers, args.connections, args.seconds)
        print(f"warm: GET /customers/{{id}} with wrk for {args.seconds} s ...", flush=True)
        got = load(base_url, args.customers, args.connections, args.seconds)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        drop(servers, settings)
        embedded.down(home)
        shutil.rmtree(home, ignore_errors=True)
    print(f"\n{'':<42}{'reads/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'/ bare':>8}")
    print(f"{'PostgreSQL, async psycopg (bare)':<42}{bare:>10.0f}{'':>27}{1:>8.2f}")
    for label, figures in (("first run (cold caches)", cold), ("second run", got)):
        print(
            f"{f'GET /customers/{{id}}, {label}':<42}{figures['rate']:>10.0f}"
            f"{figures['p50']:>9.1f}{figures['p90']:>9.1f}{figures['p99']:>9.1f}"
            f"{figures['rate'] / bare:>8.2f}"
        )
    met = got["rate"] >= TARGET_RATE and got["p99"] < TARGET_P99_MS
    print(f"{args.workers} API worker(s); non-2xx answers: {cold['non_2xx'] + got['non_2xx']:.0f}")
    print(
        f"target {TARGET_RATE:.0f} reads/s with p99 < {TARGET_P99_MS:.0f} ms: "
        f"{'met' if met else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
