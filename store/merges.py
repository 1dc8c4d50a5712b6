"""Who is merged into whom: the table `ledger_merges`, its one owner (DDL, writes, reads).

A merge is recorded on the survivor's stream (its partition writes it) and its edge kept
here in the same transaction: one row per merge, closed by its unmerge (`unmerge_event_id`),
and at most one open row per merged customer (a unique index), so two workers merging one
customer into two survivors record one merge. Before a batch's merges and unmerges change
the table, the rules of the forest (`domain.merges`) are checked again on the committed
edges under a transaction lock (`store.locks.Lock.MERGES`): a merge another worker's made
first refused, or a loop two workers would close between them, raises `MergesLost`, and
ingest decides again only the records it involves (`services.ingest`). `ledger verify`
rebuilds the table from the log (`from_log`) and compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
from psycopg import Connection, Cursor

from domain import merges
from domain.merges import MergeChange
from store import event_store, keys, locks

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS ledger_merges (
    event_id text PRIMARY KEY,
    merged_id text NOT NULL,
    survivor_id text NOT NULL,
    unmerge_event_id text
);
CREATE UNIQUE INDEX IF NOT EXISTS ledger_merges_now
    ON ledger_merges (merged_id) WHERE unmerge_event_id IS NULL;
"""

_PARENTS = """
WITH RECURSIVE up (customer_id) AS (
    SELECT unnest(%s::text[])
    UNION
    SELECT m.survivor_id FROM ledger_merges m JOIN up ON m.merged_id = up.customer_id
    WHERE m.unmerge_event_id IS NULL
)
SELECT m.merged_id, m.survivor_id FROM ledger_merges m JOIN up ON m.merged_id = up.customer_id
WHERE m.unmerge_event_id IS NULL
"""


_TREE = """
WITH RECURSIVE up (customer_id, depth) AS (
    SELECT %s::text, 0
    UNION
    SELECT m.survivor_id, up.depth + 1 FROM ledger_merges m JOIN up ON m.merged_id = up.customer_id
    WHERE m.unmerge_event_id IS NULL
), root AS (
    SELECT customer_id FROM up ORDER BY depth DESC LIMIT 1
), down (customer_id) AS (
    SELECT customer_id FROM root
    UNION
    SELECT m.merged_id FROM ledger_merges m JOIN down ON m.survivor_id = down.customer_id
    WHERE m.unmerge_event_id IS NULL
)
SELECT (SELECT customer_id FROM root), customer_id FROM down
"""


def tree(curs: Cursor[Any] | Connection[Any], customer_id: str) -> tuple[str, list[str]]:
    """The root of the customer's tree now, and every customer of the tree (the root first,
    then the others in byte order); a customer merged into nobody is its own root."""
    rows = curs.execute(_TREE, (customer_id,)).fetchall()
    found = [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in rows]
    root = str(found[0][0]) if found else customer_id
    others = sorted(str(r[1]) for r in found if r[1] != root)
    return root, [root, *others]


_EVER = """
WITH RECURSIVE linked (customer_id) AS (
    SELECT %s::text
    UNION
    SELECT CASE WHEN m.merged_id = l.customer_id THEN m.survivor_id ELSE m.merged_id END
    FROM ledger_merges m JOIN linked l
        ON m.merged_id = l.customer_id OR m.survivor_id = l.customer_id
)
SELECT customer_id FROM linked
"""


def ever_linked(curs: Cursor[Any] | Connection[Any], customer_id: str) -> list[str]:
    """The customer and every customer ever in a tree with it, merged or unmerged since
    (what an as-of read needs: the trees of any moment), in byte order."""
    rows = curs.execute(_EVER, (customer_id,)).fetchall()
    return sorted(
        str(next(iter(row.values())) if isinstance(row, dict) else row[0]) for row in rows
    )


class MergedNow(Exception):
    """`ledger forget` of a customer merged into another now (found under the merges lock)."""

    def __init__(self, customer_id: str, survivor_id: str) -> None:
        super().__init__(f"customer {customer_id!r} is merged into {survivor_id!r}")
        self.customer_id, self.survivor_id = customer_id, survivor_id


def hold_for_forget(curs: Cursor[Any], customer_id: str, *, as_root: bool) -> None:
    """In a forgetting's transaction: take the merges lock (so no merge naming the
    customer commits meanwhile), and, forgetting a root (`as_root`; not a member of the
    root's tree being forgotten with it), raise `MergedNow` if it is merged into someone."""
    locks.hold_for_transaction(curs, locks.Lock.MERGES)
    survivor = parents(curs, [customer_id]).get(customer_id) if as_root else None
    if survivor is not None:
        raise MergedNow(customer_id, survivor)


class MergesLost(Exception):
    """Merges or unmerges the committed edges now refuse (merged ids): another worker's
    came first. Nothing of the batch was written."""

    def __init__(self, lost: Sequence[str]) -> None:
        super().__init__(
            f"{len(lost)} merge(s) lost to another worker: " + ", ".join(sorted(set(lost)))
        )
        self.lost = list(lost)


def parents(curs: Cursor[Any] | Connection[Any], customers: Iterable[str]) -> dict[str, str]:
    """The open edges (merged id -> survivor id) above these customers, up to their roots."""
    wanted = sorted(set(customers))
    if not wanted:
        return {}
    rows = curs.execute(_PARENTS, (wanted,)).fetchall()
    return dict(_pair(row) for row in rows)


def record(curs: Cursor[Any], changes: Sequence[MergeChange]) -> None:
    """Check the batch's merges and unmerges again, in order, on the committed edges (under
    the merges lock, held to the end of the transaction), then write them; raise
    `MergesLost` if any is now refused."""
    if not changes:
        return
    locks.hold_for_transaction(curs, locks.Lock.MERGES)
    committed = parents(curs, {c for m in changes for c in (m.merged_id, m.survivor_id)})
    lost = merges.replayed(committed, changes)
    # `ledger forget` takes the same lock: a customer forgotten since the batch read its
    # stream is never merged (its streams, read again, refuse it by name).
    gone = keys.forgotten_among(
        curs, {c for m in changes if m.merged for c in (m.merged_id, m.survivor_id)}
    )
    lost += [m.merged_id for m in changes if m.merged and {m.merged_id, m.survivor_id} & gone]
    if lost:
        raise MergesLost(lost)
    for made in changes:
        if made.merged:
            curs.execute(
                "INSERT INTO ledger_merges (event_id, merged_id, survivor_id) VALUES (%s, %s, %s)",
                (made.event_id, made.merged_id, made.survivor_id),
            )
        else:
            curs.execute(
                "UPDATE ledger_merges SET unmerge_event_id = %s WHERE merged_id = %s "
                "AND survivor_id = %s AND unmerge_event_id IS NULL",
                (made.event_id, made.merged_id, made.survivor_id),
            )


def one_open(conn: Connection[Any]) -> tuple[str, str] | None:
    """A merged customer and the survivor it is merged into now (the first by id), if any."""
    row = conn.execute(
        "SELECT merged_id, survivor_id FROM ledger_merges WHERE unmerge_event_id IS NULL "
        "ORDER BY merged_id LIMIT 1"
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


Row = tuple[str, str, str, str | None]
"""(merge event id, merged id, survivor id, unmerge event id or None) of one merge."""


def every_merge(conn: Connection[Any]) -> Iterator[Row]:
    """Every merge ever recorded, in merge event id byte order."""
    with conn.cursor(name="ledger_merges") as curs:
        curs.execute(
            'SELECT event_id COLLATE "C", merged_id, survivor_id, unmerge_event_id '
            "FROM ledger_merges ORDER BY 1"
        )
        while rows := curs.fetchmany(5_000):
            yield from (
                (str(a), str(b), str(c), None if d is None else str(d)) for a, b, c, d in rows
            )


def from_log(conn: Connection[Any]) -> dict[str, Row]:
    """The merges as the log says (merge event id -> its row): what the table must hold.
    Records that cannot be read are left out (`ledger verify` names them)."""
    found: dict[str, Row] = {}
    open_: dict[str, str] = {}  # merged id -> its open merge's event id
    for state in event_store.merge_states(conn):
        try:
            event = orjson.loads(state)
            kind, payload, event_id = event["kind"], event["payload"], str(event["event_id"])
            merged, survivor = str(payload["merged_id"]), str(payload["survivor_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if kind == merges.MERGED:
            found[event_id] = (event_id, merged, survivor, None)
            open_[merged] = event_id
        elif kind == merges.UNMERGED and merged in open_:
            first = open_.pop(merged)
            found[first] = (*found[first][:3], event_id)
    return found


def _pair(row: Any) -> tuple[str, str]:
    if isinstance(row, dict):
        return str(row["merged_id"]), str(row["survivor_id"])
    return str(row[0]), str(row[1])
