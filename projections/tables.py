"""The projections' tables in one schema: created in place (`ledger init`), or in a scratch
schema of their own for a replay (`services.replay`), or dropped with that schema."""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.sql import SQL, Identifier

from projections import (
    audience_definitions,
    audience_outbox,
    audiences,
    card_holders,
    merge_tree,
    partners,
    positions,
    profiles,
)

SCHEMAS = (
    profiles.SCHEMA_SQL,
    card_holders.SCHEMA_SQL,
    merge_tree.SCHEMA_SQL,
    partners.SCHEMA_SQL,
    audiences.SCHEMA_SQL,
    audience_outbox.SCHEMA_SQL,
    audience_definitions.SCHEMA_SQL,
)
"""The projections' DDL (unqualified: created in the first schema on the search path)."""


class ReplayError(Exception):
    """A schema a replay may not write."""


def create(conn: Connection[Any]) -> None:
    """Create every projection table (idempotent) in the first schema on the search path."""
    for statement in SCHEMAS:
        conn.execute(statement)  # type: ignore[arg-type]


def fresh_schema(conn: Connection[Any], schema: str) -> None:
    """`schema`, emptied, with every projection table: created, or dropped and created
    again if it holds an earlier replay (its tracking table); any other existing schema
    is refused, never dropped. The caller creates the tracking table and commits."""
    name = Identifier(schema)
    exists, replayed = positions.holds_replay(conn, schema)
    if schema == "public" or (exists and not replayed):
        raise ReplayError(
            f"schema {schema!r} exists and holds no earlier replay; give another --schema"
        )
    conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))
    conn.execute(SQL("CREATE SCHEMA {}").format(name))
    conn.execute(SQL("SET LOCAL search_path TO {}, public").format(name))
    create(conn)


def drop_schema(conn: Connection[Any], schema: str) -> None:
    conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


def use_schema(conn: Connection[Any], schema: str) -> None:
    """Read `schema`'s projection tables for the rest of this session."""
    conn.execute(SQL("SET search_path TO {}").format(Identifier(schema)))
