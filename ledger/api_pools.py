"""The API's connection pools through a PostgreSQL restart."""

from __future__ import annotations

import threading
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

RECONNECT_WITHIN = 5.0
"""Seconds a pool keeps retrying to open one connection while PostgreSQL is away
(psycopg_pool's `reconnect_timeout`, 5 minutes by default). Its retries back off 1, 2, 4,
8 ... s, so after a long outage the next one could come half a minute after PostgreSQL was
back; given up after 5 s instead, the next read opens a connection at once (measured: the
first read after a 96 s outage with reads during it took 5.5 s, now 0.01 s)."""


class SweepingCheck:
    """The pool's check of a connection handed out; the first broken one (PostgreSQL
    restarted: every pooled connection is dead) starts a check of all idle ones at once.

    psycopg_pool otherwise finds the dead connections one checkout at a time, waiting 1, 2,
    4 ... s between them, so with a grown pool the first reads after a restart answered 503
    for half a minute. The sweep runs on a thread of its own: the check runs inside the
    pool's checkout, where `pool.check()` must not be called."""

    def __init__(self) -> None:
        self.pool: ConnectionPool[Any] | None = None
        self._sweeping = threading.Lock()

    def __call__(self, conn: Connection[Any]) -> None:
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            threading.Thread(target=self._sweep, name="ledger-pool-sweep", daemon=True).start()
            raise

    def _sweep(self) -> None:
        if self.pool is None or not self._sweeping.acquire(blocking=False):
            return  # a sweep is under way: it replaces this connection's peers too
        try:
            self.pool.check()
        except Exception:  # still down: the next broken checkout sweeps again
            pass
        finally:
            self._sweeping.release()
