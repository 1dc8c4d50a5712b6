"""Comparing two sets of projection tables, row by row: the live ones against a rebuild.

Each compared table is read ordered by its key in byte order (`COLLATE "C"`, which is
Python's string order) through a server-side cursor on each side, and merged, so a million
profiles compare in one pass with little memory. Each side is read by a thread of its own
(a bounded queue of batches between it and the merge): the two servers' sorts and jsonb
renderings run at once. `jsonb` values are compared as
PostgreSQL's text of them, which is canonical (key order and spacing are its own).

Audience membership is compared as who is a member of which audience. When a member
entered, the reason and the change's number are the history of the live run (which page
and which clock pass saw it first), not a function of the ledger, so no rebuild can give
them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from queue import Queue
from threading import Thread
from typing import Any

from psycopg import Connection
from psycopg.sql import SQL, Identifier

from projections import audiences, card_holders, merge_tree, partners, profiles

TABLES: tuple[tuple[str, str], ...] = (
    profiles.COMPARED
    + partners.COMPARED
    + card_holders.COMPARED
    + merge_tree.COMPARED
    + audiences.COMPARED
)
"""(what a row is, the query of (key, values...) for a schema), each from its table's owner."""
BATCH = 5_000
AHEAD = 4  # batches a side's reader may hold before the merge takes them


@dataclass(frozen=True)
class Difference:
    what: str
    key: str
    detail: str

    def line(self) -> str:
        return f"{self.what} {self.key}: {self.detail}"


def differences(
    live: Connection[Any], live_schema: str, rebuilt: Connection[Any], rebuilt_schema: str
) -> Iterator[Difference]:
    """Every row that differs between the two schemas' projection tables. `live` should be
    in a snapshot taken with the position the rebuild went to."""
    for what, query in TABLES:
        left = _ahead(_rows(live, query, live_schema))
        right = _ahead(_rows(rebuilt, query, rebuilt_schema))
        a, b = next(left, None), next(right, None)
        while a is not None or b is not None:
            if b is None or (a is not None and a[0] < b[0]):
                assert a is not None
                yield Difference(what, a[0], "in the live projection, not in the rebuild")
                a = next(left, None)
            elif a is None or b[0] < a[0]:
                yield Difference(what, b[0], "in the rebuild, missing from the live projection")
                b = next(right, None)
            else:
                if a[1:] != b[1:]:
                    yield Difference(what, a[0], _detail(a[1:], b[1:]))
                a, b = next(left, None), next(right, None)


def _rows(conn: Connection[Any], query: str, schema: str) -> Iterator[list[tuple[Any, ...]]]:
    statement = SQL(query + " ORDER BY 1").format(Identifier(schema))  # type: ignore[arg-type]
    with conn.cursor(name=f"compare_{schema}") as curs:
        curs.execute(statement)
        while rows := curs.fetchmany(BATCH):
            yield rows


def _ahead(batches: Iterator[list[tuple[Any, ...]]]) -> Iterator[tuple[Any, ...]]:
    """The rows of `batches`, read by a thread of its own up to AHEAD batches ahead (its
    connection is used by no other thread meanwhile); its exception is raised here."""
    queue: Queue[list[tuple[Any, ...]] | BaseException | None] = Queue(AHEAD)

    def read() -> None:
        try:
            for batch in batches:
                queue.put(batch)
            queue.put(None)
        except BaseException as error:  # handed to the merge, which raises it
            queue.put(error)

    reader = Thread(target=read, name="compare-reader", daemon=True)
    reader.start()
    while (batch := queue.get()) is not None:
        if isinstance(batch, BaseException):
            raise batch
        yield from batch
    reader.join()


def _detail(live: tuple[Any, ...], rebuilt: tuple[Any, ...]) -> str:
    """Which fields differ, with both values: `field: live X, rebuilt Y; ...`."""
    parts = []
    for ours, theirs in zip(live, rebuilt, strict=True):
        if ours == theirs:
            continue
        try:
            a, b = json.loads(ours), json.loads(theirs)
        except (TypeError, ValueError):
            a = b = None
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(a.keys() | b.keys()):
                if a.get(key) != b.get(key):
                    parts.append(f"{key}: live {_short(a.get(key))}, rebuilt {_short(b.get(key))}")
        else:
            parts.append(f"live {_short(ours)}, rebuilt {_short(theirs)}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
