"""Customers' data keys (`domain.shredding`), behind a small interface a KMS could serve.

`PostgresKeyStore` keeps them in their own table, `customer_keys`: one row per customer, the
key generated on first need, and set to NULL when the customer is forgotten (the row stays,
so "forgotten" is told apart from "never seen").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Protocol

import psycopg
from psycopg import Connection, Cursor

from domain.shredding import new_key

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS customer_keys (
    customer_id text PRIMARY KEY,
    key bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    forgotten_at timestamptz
);
"""


_CREATE_OR_READ = """
WITH wanted AS (SELECT * FROM unnest(%s::text[], %s::bytea[]) AS w(customer_id, key)),
created AS (
    INSERT INTO customer_keys (customer_id, key) SELECT * FROM wanted
    ON CONFLICT DO NOTHING RETURNING customer_id, key
)
SELECT customer_id, key FROM created
UNION ALL
SELECT k.customer_id, k.key FROM customer_keys k JOIN wanted USING (customer_id)
"""
"""New keys are returned by the insert; the statement's snapshot shows the earlier ones."""


class KeyStore(Protocol):
    """What ingest needs of a key store. Forgetting destroys a key in the transaction that
    records the `customer_forgotten` event (`destroy_key`, on this table); a KMS would
    destroy it right after that commit instead, and a repeated `ledger forget` would finish
    the job if the process died in between."""

    def keys(self, customer_ids: Collection[str]) -> dict[str, bytes | None]:
        """Each customer's key, created if the customer has none yet; None if forgotten."""


class PostgresKeyStore:
    def __init__(self, database_url: str) -> None:
        # A new key needs no flush of its own: before any event sealed with it commits,
        # that commit flushes the log up to itself, so the key's earlier record with it.
        self._conn = psycopg.connect(
            database_url, autocommit=True, options="-c synchronous_commit=off"
        )

    def keys(self, customer_ids: Collection[str]) -> dict[str, bytes | None]:
        """Keys are created in their own transaction before any event uses them, so two
        workers that need the same new key both get the one that was stored. One round
        trip: the statement inserts the missing keys and reads the others (a key another
        worker stored while it ran is read again)."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        rows = self._conn.execute(_CREATE_OR_READ, (ids, [new_key() for _ in ids])).fetchall()
        found = {customer: None if key is None else bytes(key) for customer, key in rows}
        missing = [c for c in ids if c not in found]
        if missing:
            found |= read_keys(self._conn, missing)
        return found

    def close(self) -> None:
        self._conn.close()


def read_keys(
    conn: Connection[Any] | Cursor[Any], customer_ids: Collection[str]
) -> dict[str, bytes | None]:
    """The stored keys of these customers (None: forgotten; absent: never seen)."""
    rows = conn.execute(
        "SELECT customer_id, key FROM customer_keys WHERE customer_id = ANY(%s)",
        (list(customer_ids),),
    ).fetchall()
    pairs = [(r["customer_id"], r["key"]) if isinstance(r, dict) else r for r in rows]
    return {customer: None if key is None else bytes(key) for customer, key in pairs}


def destroy_key(curs: Cursor[Any], customer_id: str) -> None:
    """Forget the customer's key for good (a row with no key: never created again)."""
    curs.execute(
        "INSERT INTO customer_keys (customer_id, key, forgotten_at) VALUES (%s, NULL, now()) "
        "ON CONFLICT (customer_id) DO UPDATE SET key = NULL, forgotten_at = now()",
        (customer_id,),
    )


def forgotten_among(curs: Cursor[Any], customers: Iterable[str]) -> set[str]:
    """Which of these customers were forgotten (their key destroyed)."""
    wanted = sorted(set(customers))
    if not wanted:
        return set()
    curs.execute(
        "SELECT customer_id FROM customer_keys WHERE customer_id = ANY(%s) "
        "AND forgotten_at IS NOT NULL",
        (wanted,),
    )
    return {str(row["customer_id"] if isinstance(row, dict) else row[0]) for row in curs.fetchall()}
