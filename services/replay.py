"""Use case: `ledger replay`. Rebuild every projection from the first event into a schema of
its own (never the live tables), with the live projection's own folds, with the clock
pinned: `LEDGER_NOW` when set, else the time the live projection last evaluated the
audiences, so clock-driven audiences come out as the live ones did. Nothing is published:
the rebuilt audience changes stay in that schema's outbox.

The rebuild is a bulk job (`projections.rebuild`): the log is read once by COPY in the
ledger's order, every stream folded in memory, and the final rows COPYed in. A log too
large for memory is rebuilt in several passes (`EVENTS_PER_PASS`), each folding a share
of the customers from a fresh read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Tracking
from psycopg import Connection, IsolationLevel

from projections import audiences, partners, positions, profiles, tables
from projections.audiences import AudienceBook
from projections.rebuild import Rebuild
from projections.tables import ReplayError
from projections.upkeep import Upkeep
from services.ports import Ports
from store import event_store
from store.event_rows import rebuild_state
from store.keys import read_keys

__all__ = ["REPLAY_SCHEMA", "Progress", "ReplayError", "Replayed", "replay", "summary"]

REPLAY_SCHEMA = "ledger_replay"
EVENTS_PER_PASS = 4_000_000
"""The memory budget of a rebuild, in events: a log of more is rebuilt in passes of a share
of the customers each. Measured on the simulator's mix (20 events per customer), the
fold states, holders and parked interactions of a pass take about 0.5 KiB per event."""
PROGRESS_EVERY = 50_000  # records read between progress calls
Progress = Callable[[int, int], object]
"""Called with (done, total) as work advances."""


@dataclass(frozen=True)
class Replayed:
    position: int
    unreadable: int  # records left out because they could not be decoded


def pinned_clock(ports: Ports, conn: Connection[Any]) -> datetime:
    """`LEDGER_NOW`, else the live projection's last audience evaluation, else now."""
    if ports.now is not None:
        return ports.now
    return audiences.evaluated_at(conn) or ports.clock()


def replay(
    ports: Ports,
    schema: str,
    *,
    stop: int | None = None,
    as_of: datetime | None = None,
    clock: datetime | None = None,
    progress: Progress = lambda done, total: None,
    events_per_pass: int = EVENTS_PER_PASS,
) -> Replayed:
    """Rebuild every projection into `schema` (emptied first) from the first event up to
    `stop` (default: the head), counting only events recorded by `as_of` (if given), with
    the clock pinned at `clock` (default: `as_of`, else `pinned_clock`). Records that
    cannot be decoded are left out and counted (`ledger verify` names them)."""
    with ports.connect() as conn:
        if clock is None:
            clock = as_of if as_of is not None else pinned_clock(ports, conn)
        tables.fresh_schema(conn, schema)
        conn.commit()
    tracking = ports.scratch_tracking(schema)
    tracking.create_table()
    pinned = clock
    book = AudienceBook(ports.audiences(), lambda: pinned)
    keeper = _upkeep(ports, schema, book)
    try:
        keeper()  # the definitions in force, recorded before any profile exists
        reader = ports.connect()
        reader.isolation_level = IsolationLevel.REPEATABLE_READ  # every pass, one log
        with reader, reader.transaction():
            head = event_store.head(reader)
            head = head if stop is None else min(head, stop)
            passes = max(1, math.ceil(head / events_per_pass))
            unreadable = 0
            for part in range(passes):
                rebuild = Rebuild(part, passes)
                unreadable = _read(reader, head, as_of, rebuild, progress, part, passes)
                rebuild.open_sealed(read_keys(reader, rebuild.sealed_owners()))
                with ports.connect(schema=schema) as writer, writer.cursor() as curs:
                    rebuild.load(curs, book.audiences, pinned)
        if head:
            for name in positions.PROJECTIONS:
                tracking.insert_tracking(Tracking(name, head))
        keeper.clock_pass()  # what the pinned clock has made due since each evaluation
        progress(head, head)
        return Replayed(head, unreadable)
    finally:
        keeper.close()
        tracking.datastore.close()


def _read(
    conn: Connection[Any],
    head: int,
    as_of: datetime | None,
    rebuild: Rebuild,
    progress: Progress,
    part: int,
    passes: int,
) -> int:
    """Feed every record up to `head` (recorded by `as_of`) to `rebuild`; return how many
    could not be decoded. Progress counts positions over all passes."""
    unreadable = 0
    feed = rebuild.feed
    done = 0
    for position, topic, state in event_store.copy_log(conn, head):
        attributes = rebuild_state(topic, state)
        done += 1
        if done % PROGRESS_EVERY == 0:
            progress((part * head + position) // passes, head)
        if attributes is None:
            unreadable += 1
            continue
        if as_of is not None and attributes["timestamp"] > as_of:
            continue
        feed(position, attributes["kind"], attributes["payload"])
    return unreadable


def summary(ports: Ports, schema: str) -> str:
    """What a replay wrote: how many profiles, partners and members of each audience."""
    with ports.connect() as conn:
        tables.use_schema(conn, schema)
        counted = (profiles.count(conn), partners.count(conn))
        sizes = audiences.sizes(conn)
    members = ", ".join(f"{name} {size}" for name, size in sizes.items()) or "none"
    return f"{counted[0]} profiles, {counted[1]} partners; audience members: {members}"


def _upkeep(ports: Ports, schema: str, book: AudienceBook) -> Upkeep:
    def connect() -> Connection[Any]:
        return ports.connect(autocommit=True, schema=schema)

    return Upkeep(book, connect(), (connect(), connect()), relay=None)
