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

from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import orjson
from psycopg import Connection, Cursor
from psycopg.types.json import Jsonb, set_json_loads

from domain.audiences import Audience
from domain.membership import ERASED, Change, Membership, erase, step, tick
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

_DUE = f"""
SELECT {COLUMNS} FROM audience_members
WHERE next_flip <= %s AND audience = ANY(%s)
ORDER BY next_flip
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

    def now(self) -> datetime:
        return self._clock()

    def on_profiles(
        self,
        curs: Cursor[Any],
        profiles: dict[str, dict[str, Any]],
        before: dict[str, dict[str, Any]],
        triggers: dict[str, str],
        erased: Collection[str] = (),
    ) -> int:
        """Re-evaluate every audience for these changed profiles (`before`: as they were,
        for the customers that had one); return how many memberships changed. Forgotten
        customers (`erased`) leave every audience, defined or not, with reason `erased`."""
        if not profiles or not self.audiences:
            return 0
        now = self.now()
        curs.execute(
            f"SELECT {COLUMNS} FROM audience_members WHERE customer_id = ANY(%s) "
            "AND (audience = ANY(%s) OR customer_id = ANY(%s))",
            (list(profiles), list(self._by_name), list(erased)),
        )
        stored = {(r["audience"], r["customer_id"]): Membership(**r) for r in curs.fetchall()}
        rows: list[Membership] = []
        changes: list[Change] = []
        for (_, customer_id), current in stored.items():
            if customer_id in erased:
                left, exit_ = erase(current, now)
                rows.append(left)
                if exit_ is not None:
                    changes.append(exit_)
        for customer_id, profile in profiles.items():
            if customer_id in erased:
                continue
            for audience in self.audiences:
                row, change = step(
                    audience,
                    customer_id,
                    stored.get((audience.name, customer_id)),
                    profile,
                    now,
                    triggers[customer_id],
                    before.get(customer_id),
                )
                if row is not None:
                    rows.append(row)
                if change is not None:
                    changes.append(change)
        write(curs, rows, changes)
        return len(changes)

    def clock_pass(
        self, reader: Connection[Any], writers: Sequence[Connection[Any]], batch: int = 5_000
    ) -> tuple[int, int]:
        """Re-evaluate the rows whose answer the clock may have changed by now; return
        (rows evaluated, changes).

        A due row holds all the pass needs (`Membership.inputs` and the tests' answers),
        so the profiles are not read. One read of the due rows (a server-side cursor)
        overlaps the writes: each batch's memberships and outbox rows commit in their own
        transaction on one of `writers`, each from its own thread, while the next batch is
        read and evaluated. Batches hold distinct rows, so writers never wait on each
        other. A pass cut short leaves the rest due for the next.
        """
        clocked = [a for a in self.audiences if a.uses_clock]
        if not clocked:
            return 0, 0
        now = self.now()
        trigger = f"clock {utc_text(now)}"
        evaluated = changed = 0
        pending: deque[Future[Connection[Any]]] = deque()
        idle = deque(writers)
        with (
            ThreadPoolExecutor(len(writers), thread_name_prefix="clock-pass-writer") as pool,
            reader.transaction(),
            reader.cursor(name="audience_due") as curs,
        ):
            set_json_loads(orjson.loads, curs)
            curs.execute(_DUE, (now, [a.name for a in clocked]))
            while rows := curs.fetchmany(batch):
                memberships, changes = [], []
                for stored in rows:
                    current = Membership(*stored)
                    row, change = tick(self._by_name[current.audience], current, now, trigger)
                    if row is not None:
                        memberships.append(row)
                    if change is not None:
                        changes.append(change)
                if not idle:
                    idle.append(pending.popleft().result())  # a batch per writer in flight
                pending.append(pool.submit(_commit, idle.popleft(), memberships, changes))
                evaluated += len(rows)
                changed += len(changes)
            for future in pending:
                future.result()
        with writers[0].transaction():
            record_clock(writers[0], now)
        return evaluated, changed


def _commit(
    conn: Connection[Any], rows: list[Membership], changes: list[Change]
) -> Connection[Any]:
    with conn.transaction(), conn.cursor() as curs:
        write(curs, rows, changes)
    return conn


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


def record_clock(conn: Connection[Any] | Cursor[Any], now: datetime) -> None:
    """Record `now` as the time membership was last evaluated."""
    conn.execute(
        "INSERT INTO audience_clock (evaluated_at) VALUES (%s) ON CONFLICT "
        "(singleton) DO UPDATE SET evaluated_at = EXCLUDED.evaluated_at",
        (now,),
    )


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
