"""Use case: run the projections. Pages of the ledger go through every projection (profiles
with audience membership, partners) in one transaction each (`projections.runner`); between
pages the upkeep runs the audience clock pass and the relay (`projections.upkeep`), in the
same thread, so they never race a page. One runner at a time per database: a second waits
on the projections' advisory lock (`store.locks`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from projections import positions
from projections.audiences import AudienceBook
from projections.partners import PartnerProjection
from projections.profiles import ProfileProjection
from projections.runner import BatchedRunner
from projections.upkeep import Upkeep
from services.ports import Ports
from store import locks
from store.locks import Lock

IDLE_WAIT = 0.2  # seconds between looks for new events once caught up


@dataclass(frozen=True)
class ProjectionRun:
    processed: int  # notifications processed
    position: int  # the position every projection has reached
    published: int  # audience changes published


def book(ports: Ports) -> AudienceBook:
    return AudienceBook(ports.audiences(), ports.clock)


def runner(ports: Ports, audiences: AudienceBook | None = None) -> BatchedRunner:
    """Every projection behind one runner: profiles (with audience membership) and partners."""
    app = ports.application()
    return BatchedRunner(
        app,
        ports.live_tracking(app),
        [ProfileProjection(audiences or book(ports)), PartnerProjection()],
    )


def upkeep(ports: Ports, audiences: AudienceBook, *, relay: bool = True) -> Upkeep:
    """The clock pass and (unless replaying) the relay that run between projection pages."""
    return Upkeep(
        audiences,
        ports.connect(autocommit=True),
        (ports.connect(autocommit=True), ports.connect(autocommit=True)),
        ports.audience_relay() if relay else None,
    )


def follow(
    pages: BatchedRunner,
    stop: threading.Event,
    *,
    until_idle: bool = False,
    housekeeping: Callable[[], object] = lambda: None,
) -> int:
    """Process pages until stopped (or, with until_idle, until caught up); return count.

    `housekeeping` runs after every page and every idle wait: the audience clock pass and
    the relay, so they share this loop's process and never race it."""
    processed = 0
    while not stop.is_set():
        count = pages.run_page()
        processed += count
        housekeeping()
        if count == 0:
            if until_idle and pages.position >= pages.head():
                return processed
            stop.wait(IDLE_WAIT)
    return processed


@contextlib.contextmanager
def projection_lock(
    ports: Ports, stop: threading.Event, waiting: Callable[[], object]
) -> Iterator[bool]:
    """One projection runner at a time: a second one waits (calling `waiting` once) until
    the first stops or dies (PostgreSQL releases a session lock with its connection), or
    until `stop` is set; yields whether it holds the lock."""
    with ports.connect(autocommit=True) as conn:
        told = False
        while True:
            if locks.try_lock(conn, Lock.PROJECTIONS):
                yield True
                return
            if stop.is_set():
                yield False
                return
            if not told:
                waiting()
                told = True
            stop.wait(1.0)


def run(
    ports: Ports,
    stop: threading.Event,
    *,
    until_idle: bool = False,
    waiting: Callable[[], object] = lambda: None,
) -> ProjectionRun:
    """Run every projection, the audience clock pass and the relay, until stopped (or, with
    until_idle, until caught up and every audience change is published). `waiting` is
    called if another runner holds the projections and this one must wait its turn."""
    audiences = book(ports)
    pages = runner(ports, audiences)
    keeper = upkeep(ports, audiences)
    with projection_lock(ports, stop, waiting) as held:
        if not held:
            keeper.close()
            return ProjectionRun(0, pages.position, 0)
        try:
            processed = follow(pages, stop, until_idle=until_idle, housekeeping=keeper)
        finally:
            keeper.close()
    return ProjectionRun(processed, pages.position, keeper.published)


def position(ports: Ports) -> int:
    """The position every projection has reached."""
    with ports.connect() as conn:
        return positions.position(conn)


def until_position(ports: Ports, target: int, timeout: float) -> bool:
    """Whether every projection reached `target`: this process runs them until idle (and
    publishes the audience changes) unless another runner holds them, in which case it
    waits up to `timeout` for that one."""
    stop, elsewhere, done = threading.Event(), threading.Event(), threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + timeout
        with ports.connect(autocommit=True) as conn:
            while not done.wait(0.2):
                if elsewhere.is_set() and (
                    positions.position(conn) >= target or time.monotonic() > deadline
                ):
                    stop.set()

    watcher = threading.Thread(target=watch, name="ledger-projection-watch", daemon=True)
    watcher.start()
    try:
        run(ports, stop, until_idle=True, waiting=elsewhere.set)
    finally:
        done.set()
        watcher.join()
    return position(ports) >= target
