"""Use case: `ledger replay`. Rebuild every projection from the first event into a schema of
its own (never the live tables), through the live projection's own runner and folds, with
the clock pinned: `LEDGER_NOW` when set, else the time the live projection last evaluated
the audiences, so clock-driven audiences come out as the live ones did. Nothing is
published: the rebuilt audience changes stay in that schema's outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection

from projections import audiences, partners, profiles, tables
from projections.audiences import AudienceBook
from projections.partners import PartnerProjection
from projections.profiles import ProfileProjection
from projections.runner import BatchedRunner
from projections.tables import ReplayError
from projections.upkeep import Upkeep
from services.ports import Ports

__all__ = ["REPLAY_SCHEMA", "Progress", "ReplayError", "Replayed", "replay", "summary"]

REPLAY_SCHEMA = "ledger_replay"
REPLAY_PAGE = 2_000  # notifications per transaction: larger pages, fewer commits
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
    app = ports.application()
    runner = BatchedRunner(
        app,
        tracking,
        [ProfileProjection(book), PartnerProjection()],
        REPLAY_PAGE,
        stop=stop,
        accept=None if as_of is None else (lambda event: event.timestamp <= as_of),
        skip_unreadable=True,
    )
    total = runner.head()
    keeper = _upkeep(ports, schema, book)
    try:
        keeper()  # the definitions in force, recorded before any profile exists
        while runner.run_page():
            progress(runner.position, total)
        keeper.clock_pass()  # what the pinned clock has made due since each evaluation
        progress(total, total)
        return Replayed(runner.position, runner.skipped)
    finally:
        keeper.close()
        runner.close()
        app.close()


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
