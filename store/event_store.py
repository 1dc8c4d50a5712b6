"""Our reads of the event store's table, `ledger_events` (the library's: its recorder
creates and writes it): the ingest loader's streams, a customer's or partner's history,
the chain scan and the digest. Their rows are decoded by `store.event_rows`.

Rows are read straight from the table here: the loader reads hundreds of streams in one
query where the library's `repository.get()` reads one per query, and the audit must see a
tampered row as it is stored, where the library's mapper would raise on it or hide it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from psycopg import Connection, Cursor
from psycopg.sql import SQL, Literal

from store.event_rows import COLUMNS, EventRow

BATCH = 5_000

HEAD_SQL = "(SELECT coalesce(max(notification_id), 0) FROM ledger_events)"
"""The ledger's last notification id, as an SQL expression."""


def head(conn: Connection[Any]) -> int:
    """The ledger's last notification id (0: empty)."""
    row = conn.execute(f"SELECT {HEAD_SQL}").fetchone()
    return int(row[0]) if row else 0


def count(conn: Connection[Any]) -> int:
    """How many records the store holds."""
    row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
    return int(row[0]) if row else 0


def of_streams(conn: Connection[Any], ids: list[UUID]) -> list[tuple[UUID, int, bytes, int]]:
    """(originator_id, version, state, notification id) of these streams' records, in the
    order the ledger recorded them."""
    rows = conn.execute(
        "SELECT originator_id, originator_version, state, notification_id FROM ledger_events "
        "WHERE originator_id = ANY(%s) ORDER BY notification_id",
        (ids,),
    ).fetchall()
    return [(o, v, bytes(state), n) for o, v, state, n in rows]


def in_stream_order(conn: Connection[Any]) -> Iterator[EventRow]:
    """Every record, stream by stream in version order, through a server-side cursor in a
    transaction of its own."""
    with conn.transaction(), conn.cursor(name="audit_chains") as curs:
        curs.execute(
            f"SELECT {COLUMNS} FROM ledger_events ORDER BY originator_id, originator_version"
        )
        while rows := curs.fetchmany(BATCH):
            yield from (EventRow(*row) for row in rows)


def of_streams_in_order(curs: Cursor[Any], ids: list[UUID]) -> list[EventRow]:
    """Every record of these streams, stream by stream in version order, in one query
    (`curs` may return dict rows: the library's datastore's cursors do)."""
    curs.execute(
        f"SELECT {COLUMNS} FROM ledger_events WHERE originator_id = ANY(%s) "
        "ORDER BY originator_id, originator_version",
        (ids,),
    )
    return [EventRow(*row) if isinstance(row, tuple) else EventRow(**row) for row in curs]


def stream_heads(
    conn: Connection[Any], position: int | None
) -> tuple[int, Iterator[tuple[UUID, int, bytes | None]]]:
    """The position (default: the head) and (originator_id, version, state) of the last
    record of every stream as of it; iterate inside `conn.transaction()` for one snapshot."""
    if position is None:
        position = head(conn)

    def rows() -> Iterator[tuple[UUID, int, bytes | None]]:
        with conn.cursor(name="audit_heads") as curs:
            curs.execute(
                "SELECT DISTINCT ON (originator_id) originator_id, originator_version, state "
                "FROM ledger_events WHERE notification_id <= %s "
                "ORDER BY originator_id, originator_version DESC",
                (position,),
            )
            while batch := curs.fetchmany(BATCH):
                yield from batch

    return position, rows()


def holding_states(conn: Connection[Any]) -> Iterator[bytes]:
    """The stored state of every record by which a customer holds a card (an enrollment,
    a replacement, an older ledger's card claim), in the order the ledger recorded them."""
    return _states_of_kinds(conn, ("customer_enrolled", "card_claimed", "card_replaced"))


def merge_states(conn: Connection[Any]) -> Iterator[bytes]:
    """The stored state of every merge and unmerge, in the order the ledger recorded them."""
    return _states_of_kinds(conn, ("customers_merged", "customers_unmerged"))


def _states_of_kinds(conn: Connection[Any], kinds: tuple[str, ...]) -> Iterator[bytes]:
    """The stored state of every record of these kinds, in the order the ledger recorded
    them. Matched on the stored bytes (orjson writes no spaces), so no row is decoded in
    the database, where a tampered one would stop the query; a payload quoting the words
    matches too, and the caller reads each `kind`."""
    needles = [f'"kind":"{kind}"'.encode() for kind in kinds]
    query = (
        "SELECT state FROM ledger_events WHERE "
        + " OR ".join(["position(%s::bytea IN state) > 0"] * len(needles))
        + " ORDER BY notification_id"
    )
    with conn.transaction(), conn.cursor(name="kind_states") as curs:
        curs.execute(query, needles)
        while rows := curs.fetchmany(BATCH):
            yield from (bytes(row[0]) for row in rows)


# Bulk reads for the rebuilds (`ledger replay`, `ledger verify`): COPY streams the rows
# several times faster than a server-side cursor's pages (no per-page round trip, binary
# rows parsed by psycopg's C loaders), and holds no more than a buffer in memory.
_LOG_COPY = (
    "COPY (SELECT notification_id, topic, state FROM ledger_events "
    "WHERE notification_id <= {stop}{share} ORDER BY notification_id) TO STDOUT (FORMAT BINARY)"
)
_SHARE = (
    " AND CASE WHEN topic = ANY({customer}) THEN {in_share}"
    " WHEN topic = ANY({card}) THEN true ELSE {part} = 0 END"
)
_STREAMED = "SET LOCAL enable_sort = off"
"""Both reads follow an index (the ledger's order; the primary key, streams in version
order), so their first row comes at once and PostgreSQL reads while Python works: a plan
that sorts (a scan of the whole table, and at a million records a sort on disk, in each
part) sends nothing before the whole sort is done."""
_STREAMS_COPY = (
    f"COPY (SELECT {COLUMNS} FROM ledger_events{{share}} "
    "ORDER BY originator_id, originator_version) TO STDOUT (FORMAT BINARY)"
)
MAX_PARTS = 256


def share_of(stream: UUID, parts: int) -> int:
    """Which of `parts` (at most MAX_PARTS) shares a stream falls in: a range of ids by
    their first byte, so a share of the streams is a range scan of the primary key."""
    return stream.bytes[0] * parts // MAX_PARTS


def _in_share(part: int, parts: int) -> str:
    """SQL: whether a record's stream is in this share (`share_of`)."""
    assert 0 <= part < parts <= MAX_PARTS

    def bound(share: int) -> str:
        first = -(-share * MAX_PARTS // parts)  # the least first byte in this share
        return f"'{UUID(bytes=bytes([first]) + bytes(15))}'::uuid"

    low = f"originator_id >= {bound(part)}"
    return low if part + 1 == parts else f"{low} AND originator_id < {bound(part + 1)}"


def copy_log(
    conn: Connection[Any],
    stop: int,
    share: tuple[int, int] = (0, 1),
    topics: tuple[list[str], list[str]] = ([], []),
) -> Iterator[tuple[int, str | None, bytes | None]]:
    """(notification id, topic, state) of every record up to `stop`, in the ledger's order,
    streamed by COPY (iterate inside a transaction for one snapshot).

    With `share` (part, parts) and `topics` (the customer streams' event topics, the card
    streams'), only that part's records: the customer streams whose id is in the part
    (`share_of`), every card stream, and in part 0 every other record (partners', and any
    topic not named), so that parts read in parallel split the work between them."""
    part, parts = share
    where = ""
    if parts > 1:
        customer, card = (Literal(list(t)) for t in topics)
        where = (
            SQL(_SHARE)
            .format(
                customer=customer,
                card=card,
                part=Literal(part),
                in_share=SQL(_in_share(part, parts)),  # type: ignore[arg-type]
            )
            .as_string(conn)
        )
    statement = _LOG_COPY.format(stop=int(stop), share=where)
    conn.execute(_STREAMED)
    with conn.cursor() as curs, curs.copy(statement) as copy:  # type: ignore[arg-type]
        copy.set_types(["int8", "text", "bytea"])
        yield from copy.rows()


def copy_in_stream_order(
    conn: Connection[Any], share: tuple[int, int] = (0, 1)
) -> Iterator[EventRow]:
    """Every record, stream by stream in version order (as `in_stream_order`), streamed
    by COPY in a transaction of its own; with `share` (part, parts), only the streams in
    that part (`share_of`)."""
    part, parts = share
    where = f" WHERE {_in_share(part, parts)}" if parts > 1 else ""
    statement = _STREAMS_COPY.format(share=where)
    with conn.transaction(), conn.cursor() as curs:
        curs.execute(_STREAMED)
        with curs.copy(statement) as copy:  # type: ignore[arg-type]
            copy.set_types(["uuid", "int8", "text", "bytea"])
            for row in copy.rows():
                yield EventRow(*row)
