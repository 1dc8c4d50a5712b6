"""Audience membership in PostgreSQL, kept true as profiles change and as time passes.

This module owns `audience_members` and `audience_clock`; the changes it makes go to
`audience_outbox` (`projections.audience_outbox`, which owns it and relays it). `audience_members`
holds, per audience and customer, the stored answer, its `seq` and the next time the
clock alone may change it. Profile changes are evaluated in the profile
projection's page transaction (`on_profiles`); the clock pass (`clock_pass`) asks SQL for
the rows that are due, through a partial index, so a pass costs what is due, not what is
stored. Every entry and exit goes to `audience_outbox` in the same transaction as the
membership change; the relay of `projections.audience_outbox` publishes it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, cast

import orjson
from psycopg import Connection, Cursor
from psycopg.types.json import Jsonb

from domain import membership_batch as batch
from domain.audiences import Audience
from domain.membership import ERASED, Change, Membership, Shift, erase
from domain.profile import utc_text
from projections import audience_outbox, copy_text

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS audience_members (
    audience text NOT NULL,
    customer_id text NOT NULL,
    member boolean NOT NULL,
    since timestamptz,
    reason text,
    seq bigint NOT NULL,
    tests text NOT NULL,
    next_flip timestamptz,
    inputs jsonb,
    PRIMARY KEY (audience, customer_id)
);
CREATE INDEX IF NOT EXISTS audience_members_due
    ON audience_members (next_flip) WHERE next_flip IS NOT NULL;
CREATE INDEX IF NOT EXISTS audience_members_customer ON audience_members (customer_id);
CREATE TABLE IF NOT EXISTS audience_clock (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    evaluated_at timestamptz NOT NULL
);
"""

COLUMNS = "audience, customer_id, member, since, reason, seq, tests, next_flip, inputs"

_UPSERT = f"""
INSERT INTO audience_members ({COLUMNS})
SELECT * FROM unnest(%b::text[], %b::text[], %b::bool[], %b::timestamptz[], %b::text[],
                     %b::bigint[], %b::text[], %b::timestamptz[], %b::jsonb[])
ON CONFLICT (audience, customer_id) DO UPDATE SET
    member = EXCLUDED.member, since = EXCLUDED.since, reason = EXCLUDED.reason,
    seq = EXCLUDED.seq, tests = EXCLUDED.tests, next_flip = EXCLUDED.next_flip,
    inputs = EXCLUDED.inputs
"""

_DUE_GROUPS = """
SELECT audience, member, tests, next_flip, coalesce(inputs::text, ''),
       coalesce(array_agg(ctid::text) FILTER (WHERE (ctid::text::point)[0]::bigint %% 2 = 0),
                '{}'),
       coalesce(array_agg(ctid::text) FILTER (WHERE (ctid::text::point)[0]::bigint %% 2 = 1),
                '{}')
FROM audience_members WHERE next_flip <= %s AND audience = ANY(%s)
GROUP BY audience, member, tests, next_flip, coalesce(inputs::text, '')
"""
"""The due rows by what they store alike (a group; see `domain.membership_batch`), with
the addresses of each group's rows on even and on odd pages of the table: two writers
then never meet on a page of the table."""

# Each due row is found again by its address (a TID scan), in address order, and updated
# if it still stores what its group stores (an address is reused once a row is updated and
# vacuumed); its change goes to the outbox in the same statement. So the pass reads the
# due rows once (`_DUE_GROUPS`) and never a row that is not due.
_SHIFT = """
WITH shift AS (
    SELECT * FROM unnest(%(audience)s::text[], %(member)s::bool[], %(tests)s::text[],
                         %(next_flip)s::timestamptz[], %(inputs)s::text[], %(to_member)s::bool[],
                         %(change)s::text[], %(reason)s::text[], %(to_tests)s::text[],
                         %(to_flip)s::timestamptz[], %(keep)s::bool[]) WITH ORDINALITY
        AS s (audience, member, tests, next_flip, inputs, to_member, change, reason,
              to_tests, to_flip, keep, shift)
), hit AS MATERIALIZED (
    SELECT r.row_at, s.* FROM unnest(%(rows)s::text[]::tid[], %(shifts)s::bigint[])
        AS r (row_at, shift) JOIN shift s USING (shift)
    ORDER BY r.row_at
), moved AS (
    UPDATE audience_members m SET
        member = h.to_member,
        since = CASE WHEN h.change IS NULL THEN m.since ELSE %(now)s END,
        reason = CASE WHEN h.change IS NULL THEN m.reason ELSE h.reason END,
        seq = m.seq + (h.change IS NOT NULL)::int,
        tests = h.to_tests,
        next_flip = h.to_flip,
        inputs = CASE WHEN h.keep THEN m.inputs END
    FROM hit h
    WHERE m.ctid = h.row_at AND m.next_flip <= %(now)s
      AND (m.audience, m.member, m.tests, m.next_flip, coalesce(m.inputs::text, ''))
        = (h.audience, h.member, h.tests, h.next_flip, h.inputs)
    RETURNING m.audience, m.customer_id, h.change, m.seq, h.reason, h.next_flip AS fell_due
)
INSERT INTO audience_outbox (audience, customer_id, change, at, reason, seq)
SELECT audience, customer_id, change, %(now)s, reason, seq FROM moved
WHERE change IS NOT NULL ORDER BY fell_due, audience, customer_id
"""

COMPARED: tuple[tuple[str, str], ...] = (
    (
        "audience member",
        "SELECT (audience || ' ' || customer_id) COLLATE \"C\", true "
        "FROM {}.audience_members WHERE member",
    ),
)
"""What `ledger verify` compares: who is a member of which audience (`projections.compare`)."""

Clock = Callable[[], datetime]


class AudienceBook:
    """The audiences in force, and how their membership is read and written."""

    def __init__(self, audiences: list[Audience], clock: Clock) -> None:
        self.audiences = audiences
        self._by_name = {a.name: a for a in audiences}
        self._clock = clock
        self._settled_at: datetime | None = None

    def now(self) -> datetime:
        return self._clock()

    def reconciled(self, evaluated: datetime | None) -> None:
        """The stored rows follow the definitions in force (`audience_definitions`), and
        none was evaluated after `evaluated` (`audience_clock`): from now on, a page
        evaluates an audience only for the customers whose change it can see
        (`domain.membership_batch.unaffected`)."""
        self._settled_at = evaluated

    def _evaluated(self, now: datetime) -> None:
        if self._settled_at is not None:
            self._settled_at = max(self._settled_at, now)

    def on_profiles(
        self,
        curs: Cursor[Any],
        profiles: dict[str, dict[str, Any]],
        before: dict[str, dict[str, Any]],
        triggers: dict[str, str],
        erased: Collection[str] = (),
        departed: Mapping[str, str] | None = None,
    ) -> int:
        """Re-evaluate the audiences for these changed profiles (`before`: as they were,
        for the customers that had one); return how many memberships changed. Forgotten
        customers (`erased`) leave every audience, defined or not, with reason `erased`;
        `departed` customers (merged into another: no longer roots) leave every audience
        with the reason given.
        The evaluation time is recorded (`audience_clock`, never moved back), so that a
        later runner knows whether its clock is behind any stored answer."""
        departed = departed or {}
        if not (profiles or departed) or not self.audiences:
            return 0
        now = self.now()
        gone = [*erased, *departed]
        curs.execute(
            f"SELECT {COLUMNS} FROM audience_members WHERE customer_id = ANY(%s) "
            "AND (audience = ANY(%s) OR customer_id = ANY(%s))",
            ([*profiles, *departed], list(self._by_name), gone),
        )
        stored = {(r["audience"], r["customer_id"]): Membership(**r) for r in curs.fetchall()}
        rows, changes = batch.on_profiles(
            self.audiences,
            stored,
            profiles,
            before,
            triggers,
            erased,
            now,
            self._settled_at,
            departed,
        )
        write(curs, rows, changes)
        record_clock(curs, now, forward=True)
        self._evaluated(now)
        return len(changes)

    def clock_pass(
        self, reader: Connection[Any], writers: Sequence[Connection[Any]] = ()
    ) -> tuple[int, int]:
        """Re-evaluate the rows whose answer the clock may have changed by now; return
        (rows evaluated, changes).

        A due row holds all `tick` needs (`Membership.inputs` and the tests' answers), and
        the due rows of one audience that store the same answer go the same way whoever
        the customer. So the pass reads the distinct answers among the due rows with the
        addresses of their rows (`_DUE_GROUPS`; at a month boundary, one group per birth
        date rather than one per customer), evaluates each group once
        (`domain.membership_batch.clock_shifts`), and updates the rows of the groups that
        move, with their changes to the outbox, in set-based statements: the rows on even
        and on odd pages of the table, each in one transaction on one of `writers` (each
        from its own thread), so the two halves' server work overlaps. A pass cut short
        leaves what it did not write due for the next.
        """
        clocked = [a.name for a in self.audiences if a.uses_clock]
        if not clocked:
            return 0, 0
        now = self.now()
        trigger = f"clock {utc_text(now)}"
        with reader.transaction():
            counted = reader.execute(_DUE_GROUPS, (now, clocked)).fetchall()
        evaluated = sum(len(even) + len(odd) for *_, even, odd in counted)
        keys = [cast(batch.GroupKey, tuple(group[:5])) for group in counted]
        addresses = {key: group[5:] for key, group in zip(keys, counted, strict=True)}
        moved = batch.clock_shifts(self._by_name, keys, now, trigger)
        halves = [
            [(addresses[key][half], key, shift) for key, shift in moved if addresses[key][half]]
            for half in (0, 1)
        ]
        changed = _in_parallel(list(writers) or [reader], [h for h in halves if h], now)
        with reader.transaction():
            record_clock(reader, now, forward=True)
        self._evaluated(now)
        return evaluated, changed


Moves = list[tuple[list[str], batch.GroupKey, Shift]]
"""Due rows by address (`ctid` as text), each list with what its rows store alike and
what the clock does to them."""


def _in_parallel(connections: list[Connection[Any]], halves: list[Moves], now: datetime) -> int:
    """Write each half in its own transaction, on its own connection and thread (in turn
    on one connection when given one); return how many changes went to the outbox."""
    if len(connections) < len(halves):
        return sum(_commit(connections[0], half, now) for half in halves)
    with ThreadPoolExecutor(len(halves) or 1, thread_name_prefix="clock-pass-writer") as pool:
        done = [
            pool.submit(_commit, conn, half, now)
            for conn, half in zip(connections, halves, strict=False)
        ]
        return sum(future.result() for future in done)


CHUNK = 50_000
"""Due rows per transaction at most: a pass after a long stop (or a jump of the clock)
writes in bounded transactions, and one cut short leaves only the rest due."""


def _commit(conn: Connection[Any], moves: Moves, now: datetime) -> int:
    """Write these moves in transactions of at most CHUNK rows; return the changes."""
    changed = 0
    for chunk in _chunks(moves):
        with conn.transaction(), conn.cursor() as curs:
            changed += apply_shifts(curs, chunk, now)
    return changed


def _chunks(moves: Moves) -> Iterator[Moves]:
    chunk: Moves = []
    size = 0
    for addresses, key, moved in moves:
        for start in range(0, len(addresses), CHUNK):
            part = addresses[start : start + CHUNK]
            if size + len(part) > CHUNK:
                yield chunk
                chunk, size = [], 0
            chunk.append((part, key, moved))
            size += len(part)
    if chunk:
        yield chunk


def apply_shifts(curs: Cursor[Any], moves: Moves, now: datetime) -> int:
    """Write what the clock does to these due rows (`_SHIFT`); return how many changes
    went to the outbox."""
    keys = list(zip(*[key for _, key, _ in moves], strict=True))
    groups = [moved for _, _, moved in moves]
    curs.execute(
        _SHIFT,
        {
            "now": now,
            "rows": [at for addresses, _, _ in moves for at in addresses],
            "shifts": [n for n, (addresses, _, _) in enumerate(moves, 1) for _ in addresses],
            "audience": list(keys[0]),
            "member": list(keys[1]),
            "tests": list(keys[2]),
            "next_flip": list(keys[3]),
            "inputs": list(keys[4]),
            "to_member": [m.member for m in groups],
            "change": [m.change for m in groups],
            "reason": [m.reason for m in groups],
            "to_tests": [m.tests for m in groups],
            "to_flip": [m.next_flip for m in groups],
            "keep": [m.keep_inputs for m in groups],
        },
    )
    return curs.rowcount


def write(curs: Cursor[Any], rows: Iterable[Membership], changes: list[Change]) -> None:
    rows = list(rows)
    if rows:
        columns = list(zip(*[_values(row) for row in rows], strict=True))
        curs.execute(_UPSERT, [list(column) for column in columns])
    if changes:
        audience_outbox.append(curs, changes)


def _values(row: Membership) -> tuple[Any, ...]:
    return (
        row.audience,
        row.customer_id,
        row.member,
        row.since,
        row.reason,
        row.seq,
        row.tests,
        row.next_flip,
        None if row.inputs is None else jsonb(row.inputs),
    )


def jsonb(value: Any) -> Jsonb:
    """A JSON column value encoded with orjson (the projections' one way)."""
    return Jsonb(value, dumps=orjson.dumps)


def record_clock(
    conn: Connection[Any] | Cursor[Any], now: datetime, *, forward: bool = False
) -> None:
    """Record `now` as the time membership was last evaluated (`forward`: unless a later
    time is recorded, as rows evaluated then are still stored)."""
    conn.execute(
        _RECORD_FORWARD if forward else _RECORD,
        (now,),
    )


_RECORD = (
    "INSERT INTO audience_clock (evaluated_at) VALUES (%s) ON CONFLICT "
    "(singleton) DO UPDATE SET evaluated_at = EXCLUDED.evaluated_at"
)
_RECORD_FORWARD = _RECORD + " WHERE audience_clock.evaluated_at < EXCLUDED.evaluated_at"


def evaluated_at(conn: Connection[Any]) -> datetime | None:
    """When membership was last evaluated (None: never)."""
    row = conn.execute("SELECT evaluated_at FROM audience_clock").fetchone()
    return row[0] if row else None


def stored(
    curs: Cursor[Any], customers: list[str], audiences: list[str]
) -> dict[tuple[str, str], Membership]:
    """The stored rows of these customers in these audiences (`curs`: a dict-row cursor)."""
    curs.execute(
        f"SELECT {COLUMNS} FROM audience_members WHERE customer_id = ANY(%s) "
        "AND audience = ANY(%s)",
        (customers, audiences),
    )
    return {(r["audience"], r["customer_id"]): Membership(**r) for r in curs.fetchall()}


def held(curs: Cursor[Any], audiences: list[str]) -> list[Membership]:
    """The rows of these audiences that are members or may become one with time."""
    curs.execute(
        f"SELECT {COLUMNS} FROM audience_members WHERE audience = ANY(%s) "
        "AND (member OR next_flip IS NOT NULL)",
        (audiences,),
    )
    return [Membership(**r) for r in curs.fetchall()]


def erase_in_copy(curs: Cursor[Any], customer_id: str, now: datetime) -> None:
    """Forget a customer in a replay's copy (`curs`: a dict-row cursor on its schema):
    membership's own `erase` on each row, and `erased` for the reasons in its outbox,
    which is never published and keeps every change."""
    curs.execute(f"SELECT {COLUMNS} FROM audience_members WHERE customer_id = %s", (customer_id,))
    write(curs, [erase(Membership(**r), now)[0] for r in curs.fetchall()], [])
    audience_outbox.erase_reasons(curs, customer_id, ERASED)


def sizes(conn: Connection[Any]) -> dict[str, int]:
    """How many members each audience with any has, by name."""
    rows = conn.execute(
        "SELECT audience, count(*) FROM audience_members WHERE member "
        "GROUP BY audience ORDER BY audience"
    ).fetchall()
    return dict(rows)


def members(
    conn: Connection[Any], name: str, *, limit: int | None = None, after: str | None = None
) -> list[dict[str, Any]]:
    """Members ordered by customer id, from just after `after`: a cursor that stays valid
    while members come and go."""
    rows = conn.execute(
        "SELECT customer_id, since, reason FROM audience_members "
        "WHERE audience = %s AND member AND customer_id > %s ORDER BY customer_id LIMIT %s",
        (name, after or "", limit),
    ).fetchall()
    return [
        {"customer_id": customer_id, "since": utc_text(since), "reason": reason}
        for customer_id, since, reason in rows
    ]


def standing(conn: Connection[Any], customer_id: str) -> list[dict[str, Any]]:
    """Each audience the customer is in, or was in once, with the reason of the last change."""
    rows = conn.execute(
        "SELECT audience, member, since, reason FROM audience_members "
        "WHERE customer_id = %s AND since IS NOT NULL ORDER BY audience",
        (customer_id,),
    ).fetchall()
    return [
        {"audience": audience, "member": member, "since": utc_text(since), "reason": reason}
        for audience, member, since, reason in rows
    ]


def replace_members(curs: Cursor[Any], customers: list[str], rows: list[Membership]) -> None:
    """These customers' rows replaced by `rows` (a rebuild's trees, settled: only roots
    are members)."""
    curs.execute("DELETE FROM audience_members WHERE customer_id = ANY(%s)", (customers,))
    copy_rows(curs, rows)


def copy_rows(curs: Cursor[Any], rows: Iterable[Membership]) -> None:
    """Bulk-load final rows into an empty `audience_members` (a rebuild,
    `projections.rebuild`)."""
    t = copy_text
    lines = (
        t.line(
            (
                t.text(r.audience),
                t.text(r.customer_id),
                t.boolean(r.member),
                t.moment(r.since),
                t.text(r.reason),
                t.number(r.seq),
                t.text(r.tests),
                t.moment(r.next_flip),
                t.json(r.inputs),
            )
        )
        for r in rows
    )
    with curs.copy(f"COPY audience_members ({COLUMNS}) FROM STDIN") as copy:
        for chunk in t.chunks(lines):
            copy.write(chunk)
