"""Every PostgreSQL advisory lock the ledger takes, named in one place.

Each is a session lock, or a transaction's (`hold_for_transaction`): PostgreSQL releases
it when its holder's connection (or transaction) ends, so a SIGKILLed holder never leaves
one behind. Keys are distinct integers of the ledger's own;
another application sharing the database must not take these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import IntEnum
from typing import Any

import psycopg


class Lock(IntEnum):
    SCHEMA = 4242
    """`ledger init` and worker starts: the library's `create_table()` replaces its insert
    function each time, which PostgreSQL refuses to do concurrently."""
    PROJECTIONS = 4243
    """One projection runner at a time."""
    DEAD_LETTER_RELAY = 7_042_001
    """One dead-letter relay at a time, which keeps a key's dead letters in order."""
    AUDIENCE_RELAY = 7_042_002
    """One audience relay at a time, which keeps a key's changes in `seq` order."""
    MERGES = 7_042_003
    """One writer of merges at a time (a transaction lock, `hold_for_transaction`): the
    rules of the forest are checked again on the committed edges before they change, so
    that two workers cannot close a loop between them (`store.merges`)."""


def try_lock(conn: psycopg.Connection[Any], lock: Lock) -> bool:
    """Take `lock` for `conn`'s session if nobody holds it; True if taken."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (int(lock),)).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection[Any], lock: Lock) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (int(lock),))


@contextlib.contextmanager
def held(conn: psycopg.Connection[Any], lock: Lock) -> Iterator[None]:
    """Wait for `lock`, hold it for the block (`conn` must be in autocommit)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (int(lock),))
    try:
        yield
    finally:
        unlock(conn, lock)


def hold_for_transaction(curs: psycopg.Cursor[Any], lock: Lock) -> None:
    """Wait for `lock` and hold it until `curs`'s transaction ends (commit or rollback)."""
    curs.execute("SELECT pg_advisory_xact_lock(%s)", (int(lock),))
