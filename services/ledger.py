"""The use cases behind one object, over one set of ports: what the CLI commands and the
HTTP routes call (`ledger.bootstrap.ledger` builds it). Ingest is the one use case not
here: only the ingest worker runs it (`ledger.bootstrap.ingest`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from psycopg import Connection

from services import digest, export, project, replay, verify
from services.forget import Forgotten, forget_customer
from services.ports import Ports
from services.replay import Progress

T = TypeVar("T")


def _nothing(done: int, total: int) -> None:
    return None


class Ledger:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    def read(self, answer: Callable[[Connection[Any]], T]) -> T:
        """`answer` (a function of `services.reads`) on a connection of its own."""
        with self.ports.connect() as conn:
            return answer(conn)

    def project(
        self,
        stop: threading.Event,
        *,
        until_idle: bool = False,
        waiting: Callable[[], object] = lambda: None,
    ) -> project.ProjectionRun:
        return project.run(self.ports, stop, until_idle=until_idle, waiting=waiting)

    def position(self) -> int:
        return project.position(self.ports)

    def until_projected(self, position: int, timeout: float) -> bool:
        return project.until_position(self.ports, position, timeout)

    def replay(
        self, schema: str, *, as_of: datetime | None = None, progress: Progress = _nothing
    ) -> replay.Replayed:
        return replay.replay(self.ports, schema, as_of=as_of, progress=progress)

    def replay_summary(self, schema: str) -> str:
        return replay.summary(self.ports, schema)

    def verify(
        self,
        expected: dict[str, Any] | None = None,
        *,
        chains: Progress = _nothing,
        rebuild: Progress = _nothing,
    ) -> verify.Report:
        return verify.verify(self.ports, expected, chains=chains, rebuild=rebuild)

    def digest(self) -> dict[str, Any]:
        return digest.digest(self.ports)

    def forget(self, customer_id: str, reason: str) -> Forgotten | None:
        """`services.forget`: None when the ledger holds no such customer; ValueError for a
        reason it refuses."""
        return forget_customer(self.ports, customer_id, reason)

    def export(self, customer_id: str) -> dict[str, Any] | None:
        return export.read_export(self.ports, customer_id)
