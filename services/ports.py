"""What the use cases need of the outside world, as one typed object built by
the composition root (`ledger.bootstrap.ports`): connections, the event store's
application, tracking recorders, the audience relay, the audience definitions and the
clock. The use cases are functions over it; none reads settings or the environment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from eventsourcing.postgres import PostgresTrackingRecorder
from psycopg import Connection

from consumers.application import LedgerApplication
from domain.audiences import Audience
from projections.upkeep import Relay


class Connect(Protocol):
    def __call__(self, *, autocommit: bool = False, schema: str | None = None) -> Connection[Any]:
        """A new connection; with `schema`, that schema first on its search path."""


@dataclass(frozen=True)
class Ports:
    connect: Connect
    application: Callable[[], LedgerApplication]
    """The event store's application (its recorder, mapper and connection pool)."""
    live_tracking: Callable[[LedgerApplication], PostgresTrackingRecorder]
    """The live projections' tracking recorder, on the application's own pool."""
    scratch_tracking: Callable[[str], PostgresTrackingRecorder]
    """A tracking recorder whose datastore is in this (replay) schema."""
    audience_relay: Callable[[], Relay]
    audiences: Callable[[], list[Audience]]
    """The audience definitions in force (read afresh: a bad file fails the caller)."""
    clock: Callable[[], datetime]
    """Now: `LEDGER_NOW` when set, else the system clock."""
    now: datetime | None = None
    """`LEDGER_NOW`, if set."""
