"""Use case: `ledger verify`. Every hash chain, then (if given) a digest the ledger must
extend, then every projection against a rebuild into a scratch schema of its own, then the
card holders' table and the merges' against the log (`services.holdings`,
`services.merge_check`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg import Connection, IsolationLevel

from domain.chain_check import Finding
from projections import chain_scan, positions, tables
from projections.compare import Difference, differences
from services import holdings, merge_check, rebuild_parts
from services.digest import check_digest
from services.ports import Ports
from services.replay import PARALLEL_FROM, WORKERS, Progress, pinned_clock, replay
from store import event_store

VERIFY_SCHEMA = "ledger_verify_{pid}"  # one per run: two verifies never share a rebuild


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    digest: str | None = None  # what the digest check found wrong, if anything
    rebuild: str | None = None  # why the rebuild could not finish, if it could not
    position: int = 0
    records: int = 0

    @property
    def clean(self) -> bool:
        return not (self.findings or self.differences or self.digest or self.rebuild)


def verify(
    ports: Ports,
    expected: dict[str, Any] | None = None,
    *,
    chains: Progress = lambda done, total: None,
    rebuild: Progress = lambda done, total: None,
    workers: int | None = None,
) -> Report:
    """Every chain, then (if given) the `expected` digest, then every projection against
    a rebuild (`workers`: processes at once, default `WORKERS` on a large ledger)."""
    report = Report()
    with ports.connect() as conn:
        total = event_store.count(conn)
        absent = chain_scan.missing_records(conn)
        conn.commit()

    def read(count: int) -> None:
        chains(count, max(total, count))

    if workers is None:
        workers = WORKERS if total >= PARALLEL_FROM else 1
    job = ChainPart(ports, absent, workers)
    for findings, records in rebuild_parts.run(job, workers, read):
        report.findings += findings
        report.records += records
    report.findings.sort(key=lambda f: UUID(f.stream_id))  # stream by stream, as read
    chains(report.records, max(total, report.records))
    if expected is not None:
        with snapshot(ports) as snap:
            report.digest = check_digest(snap, expected)
    scratch_schema = VERIFY_SCHEMA.format(pid=os.getpid())
    try:
        with snapshot(ports) as live:
            report.position = positions.position(live)
            clock = pinned_clock(ports, live)
            try:
                replay(
                    ports,
                    scratch_schema,
                    stop=report.position,
                    clock=clock,
                    progress=rebuild,
                    workers=workers,
                )
            except Exception as error:  # a tampered record the folds cannot take: report it
                report.rebuild = f"the rebuild stopped: {type(error).__name__}: {error}"
            else:
                with ports.connect() as scratch:
                    report.differences = list(differences(live, "public", scratch, scratch_schema))
    finally:
        with ports.connect() as conn:
            tables.drop_schema(conn, scratch_schema)
            conn.commit()
    with snapshot(ports) as snap:  # the table ingest writes with the events, against the log
        report.differences += holdings.differences(snap)
        report.differences += merge_check.differences(snap)
    return report


@dataclass(frozen=True)
class ChainPart:
    """The chain check of a share of the streams (run by `services.rebuild_parts`)."""

    ports: Ports
    absent: chain_scan.Missing
    parts: int

    def __call__(self, part: int, progress: Callable[[int], object]) -> tuple[list[Finding], int]:
        """(the findings, the records read) of the streams in part `part`."""
        read = 0

        def count(done: int) -> None:
            nonlocal read
            read = done
            progress(done)

        with self.ports.connect() as conn:
            findings = list(
                chain_scan.check_chains(conn, count, share=(part, self.parts), absent=self.absent)
            )
        return findings, read


@contextmanager
def snapshot(ports: Ports) -> Iterator[Connection[Any]]:
    """A REPEATABLE READ transaction on a connection of its own: one consistent view."""
    conn = ports.connect()
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        yield conn
    finally:
        conn.close()
