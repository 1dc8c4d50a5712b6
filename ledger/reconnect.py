"""Long-running workers (`ledger consume`, `ledger project`) that outlive a PostgreSQL
restart.

A restart (or a failover) closes every connection a worker holds, and its next statement
fails with an OperationalError. Rather than exit and leave the restart to a supervisor,
the command says so in one line, waits for PostgreSQL to answer again, and runs a fresh
worker: nothing the lost one held is reused. That is safe because PostgreSQL alone decides
where work resumes: the ingest worker seeks to the offsets stored with the events, and the
projection runner starts from its tracking positions, both written in the transactions
that did the work; an interrupted transaction left nothing behind.

The wait is bounded: if PostgreSQL does not answer within `RETRY_FOR` seconds of the loss
(or the fresh worker keeps losing it within that time), the command exits 1 with one line.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import eventsourcing.persistence
import psycopg

from ledger.errors import first_line
from services.project import ProjectionRun

RETRY_FOR = 60.0  # seconds a worker waits for PostgreSQL after losing it
POLL_EVERY = 0.5  # seconds between attempts to reach it
RECOVERED_AFTER = 10.0  # seconds a resumed worker must run before a loss is a new outage

LOST = (
    psycopg.OperationalError,  # psycopg_pool.PoolTimeout is one too
    psycopg.InterfaceError,
    eventsourcing.persistence.OperationalError,  # the library's wrappings of the above
    eventsourcing.persistence.InterfaceError,
)


class DatabaseGone(Exception):
    """PostgreSQL did not answer again in time; the message says for how long and why."""


def lost_connection(error: BaseException) -> BaseException | None:
    """The lost-connection error that caused `error` (itself, or one in its chain of causes),
    or None when `error` is something else, which must not be retried."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, LOST):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def answers(database_url: str) -> str | None:
    """None if PostgreSQL runs `SELECT 1` now, else why not (one line)."""
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return first_line(error)
    return None


def wait_for_database(
    database_url: str, stop: threading.Event, deadline: float, since: float
) -> bool:
    """Poll until PostgreSQL answers (True) or `stop` is set (False); DatabaseGone once
    `deadline` (time.monotonic()) has passed; `since`: when the outage began."""
    while not stop.is_set():
        why = answers(database_url)
        if why is None:
            return True
        if time.monotonic() >= deadline:
            raise DatabaseGone(
                f"PostgreSQL did not answer again within {deadline - since:.0f} s of losing "
                f"the connection ({why})"
            )
        stop.wait(POLL_EVERY)
    return False


def keep_running(
    command: str,
    database_url: str,
    run: Callable[[], object],
    stop: threading.Event,
    *,
    retry_for: float = RETRY_FOR,
) -> None:
    """Call `run` (which builds a fresh worker and runs it) until it returns; after a lost
    PostgreSQL connection, say so on stderr, wait for PostgreSQL, and call it again.

    Each outage gets `retry_for` seconds. A loss within `RECOVERED_AFTER` seconds of the
    last resume counts as the same outage (its budget goes on), so a worker that keeps
    failing at once still ends; any other error propagates as it is."""
    deadline = since = resumed = 0.0
    while True:
        try:
            run()
            return
        except Exception as error:
            lost = lost_connection(error)
            if lost is None:
                raise
            if stop.is_set():
                return  # asked to stop anyway: what was committed is kept
            now = time.monotonic()
            if not deadline or now - resumed >= RECOVERED_AFTER:  # a new outage
                deadline, since = now + retry_for, now
            elif now >= deadline:  # PostgreSQL answers, but the worker keeps losing it
                raise DatabaseGone(
                    f"the connection to PostgreSQL kept failing for {now - since:.0f} s "
                    f"({first_line(lost)})"
                ) from None
            print(
                f"ledger {command}: PostgreSQL connection lost ({first_line(lost)}); "
                f"retrying for up to {deadline - now:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            if not wait_for_database(database_url, stop, deadline, since):
                return
            resumed = time.monotonic()
            print(f"ledger {command}: PostgreSQL answers again; resuming", file=sys.stderr)


@dataclass
class ProjectionTally:
    """What every run of `ledger project` did, summed. A run cut short by a lost database
    reports nothing itself: its events are counted by how far it moved the projections'
    position (read when the next run starts), its published audience changes not at all."""

    processed: int = 0
    position: int = 0
    published: int = 0
    _cut_short_from: int | None = None

    def starting(self, position: int) -> None:
        """A run starts with the projections at `position` (the previous run's end, or
        where the one cut short left them)."""
        if self._cut_short_from is not None:
            self.processed += max(0, position - self._cut_short_from)
        self._cut_short_from = self.position = position

    def done(self, run: ProjectionRun) -> None:
        """A run returned what it did."""
        self.processed += run.processed
        self.published += run.published
        self.position = run.position
        self._cut_short_from = None
