"""Use case: `ledger replay`. Rebuild every projection from the first event into a schema of
its own (never the live tables), with the live projection's own folds, with the clock
pinned: `LEDGER_NOW` when set, else the time the live projection last evaluated the
audiences, so clock-driven audiences come out as the live ones did. Nothing is published:
the rebuilt audience changes stay in that schema's outbox.

The rebuild is a bulk job (`projections.rebuild`): the log is read by COPY in the ledger's
order, every stream folded in memory, and the final rows COPYed in. A large log is rebuilt
in parts, a share of the customers each, `WORKERS` at once in processes of their own
(`services.rebuild_parts`); a log too large for their memory in more parts
(`EVENTS_PER_PART` events each), `WORKERS` at a time. Memory is then bounded by
`WORKERS` parts, whatever the size of the log.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Tracking
from psycopg import Connection, IsolationLevel

from domain.audiences import Audience
from projections import (
    audiences,
    card_holders,
    partners,
    positions,
    profile_trees,
    profiles,
    tables,
)
from projections.audiences import AudienceBook
from projections.rebuild import TOPICS, Rebuild
from projections.tables import ReplayError
from projections.upkeep import Upkeep
from services import rebuild_parts
from services.ports import Ports
from store import event_store
from store.event_rows import rebuild_state
from store.keys import read_keys

__all__ = ["REPLAY_SCHEMA", "Progress", "ReplayError", "Replayed", "replay", "summary"]

REPLAY_SCHEMA = "ledger_replay"
EVENTS_PER_PART = 4_000_000
"""The memory budget of one rebuilding process, in events: a log of more is rebuilt in more
parts (a share of the customers each). On the simulator's mix (20 events a customer) a
part's fold states and final rows take about 0.3 KiB per event (measured: 41 MiB of fold
states for 210,502 events, 10,000 customers), so about 1.2 GiB a process."""
WORKERS = min(2, os.cpu_count() or 1)
"""Parts rebuilt at once, each in a process of its own (`services.rebuild_parts`)."""
PARALLEL_FROM = 100_000  # events: below, one part in this process (a fork costs more)
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
    workers: int | None = None,
    events_per_part: int = EVENTS_PER_PART,
) -> Replayed:
    """Rebuild every projection into `schema` (emptied first) from the first event up to
    `stop` (default: the head), counting only events recorded by `as_of` (if given), with
    the clock pinned at `clock` (default: `as_of`, else `pinned_clock`). Records that
    cannot be decoded are left out and counted (`ledger verify` names them). `workers`
    (default: `WORKERS`, one below `PARALLEL_FROM` events) parts run at once."""
    with ports.connect() as conn:
        if clock is None:
            clock = as_of if as_of is not None else pinned_clock(ports, conn)
        tables.fresh_schema(conn, schema)
        head = event_store.head(conn)
        conn.commit()
    head = head if stop is None else min(head, stop)
    _track(ports, schema, 0)  # the table that tells a replay's schema, before any row
    if workers is None:
        workers = WORKERS if head >= PARALLEL_FROM else 1
    parts = workers * max(1, math.ceil(head / (events_per_part * workers)))
    pinned = clock
    book = AudienceBook(ports.audiences(), lambda: pinned)
    keeper = _upkeep(ports, schema, book)
    try:
        keeper()  # the definitions in force, recorded before any profile exists
        job = Part(ports, schema, head, as_of, book.audiences, pinned, parts)
        unreadable = sum(rebuild_parts.run(job, workers, lambda done: progress(done, head)))
        with ports.connect(schema=schema) as conn, conn.cursor() as curs:
            if parts > 1:
                card_holders.drop_held_parked(curs)
            profile_trees.settle_rebuilt(curs, book.audiences, pinned)
        keeper.clock_pass()  # what the pinned clock has made due since each evaluation
    finally:
        keeper.close()
    _track(ports, schema, head)
    progress(head, head)
    return Replayed(head, unreadable)


def _track(ports: Ports, schema: str, head: int) -> None:
    """Each projection's position (`head`; 0: none yet) in the schema's tracking table, the
    library's recorder's (what tells a replay's schema). Its connection pool is closed
    before any part is forked, and opened again at the end."""
    tracking = ports.scratch_tracking(schema)
    try:
        tracking.create_table()
        for name in positions.PROJECTIONS if head else ():
            tracking.insert_tracking(Tracking(name, head))
    finally:
        tracking.datastore.close()


@dataclass(frozen=True)
class Part:
    """What rebuilding one part of the customers takes (run by `services.rebuild_parts`,
    in this process or a forked one)."""

    ports: Ports
    schema: str
    head: int
    as_of: datetime | None
    audiences: list[Audience]
    now: datetime
    parts: int

    def __call__(self, part: int, progress: Callable[[int], object]) -> int:
        """Read, fold and load part `part`; return how many records it could not decode
        (`progress`: its share of the positions read)."""
        reader = self.ports.connect()
        reader.isolation_level = IsolationLevel.REPEATABLE_READ
        rebuild = Rebuild(part, self.parts)
        with reader, reader.transaction():
            unreadable = self._read(reader, rebuild, part, progress)
            rebuild.open_sealed(read_keys(reader, rebuild.sealed_owners()))
        rebuild.load(lambda: self.ports.connect(schema=self.schema), self.audiences, self.now)
        progress(self.head // self.parts)
        return unreadable

    def _read(
        self, conn: Connection[Any], rebuild: Rebuild, part: int, progress: Callable[[int], object]
    ) -> int:
        """Feed the part's records up to the head (recorded by `as_of`) to `rebuild`; return
        how many could not be decoded (the card streams', which every part reads, are
        counted by part 0)."""
        unreadable = 0
        feed, as_of, shared = rebuild.feed, self.as_of, set(TOPICS[1]) if part else set()
        records = event_store.copy_log(conn, self.head, (part, self.parts), TOPICS)
        for done, (position, topic, state) in enumerate(records, start=1):
            if done % PROGRESS_EVERY == 0:
                progress(position // self.parts)
            attributes = rebuild_state(topic, state)
            if attributes is None:
                unreadable += topic not in shared
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
