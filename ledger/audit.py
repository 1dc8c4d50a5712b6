"""The auditors' commands: `ledger verify`, `ledger digest` and `ledger replay`.

A replay rebuilds every projection from the first event into a schema of its own (never
the live tables), through the live projection's own runner and folds, with the clock
pinned: `LEDGER_NOW` when set, else the time the live projection last evaluated the
audiences, so clock-driven audiences come out as the live ones did. Nothing is published:
the rebuilt audience changes stay in that schema's outbox.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresFactory, PostgresTrackingRecorder
from eventsourcing.utils import Environment
from psycopg import IsolationLevel
from psycopg.sql import SQL, Identifier

from domain.chain_check import Finding
from ledger import bootstrap
from ledger.settings import Settings
from projections import chain_scan, reads
from projections.audiences import AudienceBook
from projections.compare import Difference, differences
from projections.partners import PartnerProjection
from projections.profiles import ProfileProjection
from projections.runner import BatchedRunner
from projections.upkeep import Upkeep

VERIFY_SCHEMA = "ledger_verify_{pid}"  # one per run: two verifies never share a rebuild
REPLAY_SCHEMA = "ledger_replay"
REPLAY_PAGE = 2_000  # notifications per transaction: larger pages, fewer commits
Progress = Callable[[int, int], object]
"""Called with (done, total) as work advances."""


class ReplayError(Exception):
    """A schema a replay may not write."""


class DigestError(Exception):
    """A digest file that cannot be read."""


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


@dataclass(frozen=True)
class Replayed:
    position: int
    unreadable: int  # records left out because they could not be decoded


def pinned_clock(settings: Settings, conn: psycopg.Connection[Any]) -> datetime:
    """`LEDGER_NOW`, else the live projection's last audience evaluation, else now."""
    if settings.now is not None:
        return settings.now
    row = conn.execute("SELECT evaluated_at FROM audience_clock").fetchone()
    return row[0] if row else settings.clock()


def replay(
    settings: Settings,
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
    with bootstrap.connect(settings) as conn:
        if clock is None:
            clock = as_of if as_of is not None else pinned_clock(settings, conn)
        _fresh_schema(settings, conn, schema)
    pinned = clock
    book = AudienceBook(bootstrap.audiences(settings), lambda: pinned)
    app = bootstrap.ledger_application(settings)
    runner = BatchedRunner(
        app,
        _tracking(settings, schema),
        [ProfileProjection(book), PartnerProjection()],
        REPLAY_PAGE,
        stop=stop,
        accept=None if as_of is None else (lambda event: event.timestamp <= as_of),
        skip_unreadable=True,
    )
    total = runner.head()
    keeper = _upkeep(settings, schema, book)
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


def verify(
    settings: Settings,
    expected: dict[str, Any] | None = None,
    *,
    chains: Progress = lambda done, total: None,
    rebuild: Progress = lambda done, total: None,
) -> Report:
    """Every chain, then (if given) the `expected` digest, then every projection against
    a rebuild."""
    report = Report()
    with bootstrap.connect(settings) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
        total = int(row[0]) if row else 0
        conn.commit()

        def read(count: int) -> None:
            report.records = count
            chains(count, max(total, count))

        report.findings = list(chain_scan.check_chains(conn, read))
    if expected is not None:
        with _snapshot(settings) as snap:
            report.digest = _check_digest(snap, expected)
    scratch_schema = VERIFY_SCHEMA.format(pid=os.getpid())
    try:
        with _snapshot(settings) as live:
            report.position = reads.position(live)
            clock = pinned_clock(settings, live)
            try:
                replay(
                    settings, scratch_schema, stop=report.position, clock=clock, progress=rebuild
                )
            except Exception as error:  # a tampered record the folds cannot take: report it
                report.rebuild = f"the rebuild stopped: {type(error).__name__}: {error}"
            else:
                with bootstrap.connect(settings) as scratch:
                    report.differences = list(differences(live, "public", scratch, scratch_schema))
    finally:
        with bootstrap.connect(settings) as conn:
            conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(scratch_schema)))
            conn.commit()
    return report


def _unexplained(
    settings: Settings, live: psycopg.Connection[Any], found: list[Difference]
) -> list[Difference]:
    """Leave out membership differences that time explains. On the system clock the live
    projection evaluates each page at its own time, after the last clock pass the rebuild
    is pinned to; a clock-driven audience evaluated on the live profile now, giving the
    live answer, is such a case. With `LEDGER_NOW` every evaluation used the same time."""
    if settings.now is not None:
        return found
    by_name = {a.name: a for a in bootstrap.audiences(settings) if a.uses_clock}
    now = settings.clock()
    kept = []
    for difference in found:
        audience_name, _, customer_id = difference.key.partition(" ")
        audience = by_name.get(audience_name)
        if difference.what == "audience member" and audience is not None:
            row = live.execute(
                "SELECT profile FROM profiles WHERE customer_id = %s", (customer_id,)
            ).fetchone()
            in_live = difference.detail.startswith("in the live projection")
            if row is not None and audience.evaluate(row[0], now).holds == in_live:
                continue
        kept.append(difference)
    return kept


def digest(settings: Settings) -> dict[str, Any]:
    """`{position, streams, root}` of the ledger now (`chain_scan.digest`)."""
    with _snapshot(settings) as conn:
        return chain_scan.digest(conn)


def summary(settings: Settings, schema: str) -> str:
    """What a replay wrote: how many profiles, partners and members of each audience."""
    with bootstrap.connect(settings) as conn:
        conn.execute(SQL("SET search_path TO {}").format(Identifier(schema)))
        profiles = conn.execute("SELECT count(*) FROM profiles").fetchone()
        partners = conn.execute("SELECT count(*) FROM partners").fetchone()
        sizes = conn.execute(
            "SELECT audience, count(*) FROM audience_members WHERE member "
            "GROUP BY audience ORDER BY audience"
        ).fetchall()
    members = ", ".join(f"{name} {size}" for name, size in sizes) or "none"
    return (
        f"{profiles[0] if profiles else 0} profiles, {partners[0] if partners else 0} "
        f"partners; audience members: {members}"
    )


def _check_digest(conn: psycopg.Connection[Any], expected: dict[str, Any]) -> str | None:
    """Why the ledger does not extend the digest, or None if it does (`conn`: a snapshot)."""
    now = chain_scan.digest(conn, None)
    if now["position"] < expected["position"]:
        return (
            f"the ledger's head is position {now['position']}, before the digest's "
            f"{expected['position']}: recorded events were removed"
        )
    then = chain_scan.digest(conn, expected["position"])
    if then["root"] == expected["root"]:
        return None
    streams = then["streams"] - expected["streams"]
    counted = f"; {-streams} stream(s) fewer than the digest counted" if streams < 0 else ""
    return (
        f"the stream heads as of position {expected['position']} give root {then['root']}, "
        f"not the digest's {expected['root']}: a stream or its tail was removed or "
        f"rewritten{counted}"
    )


def read_digest(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DigestError(f"digest file {path}: {error}") from None
    if not (
        isinstance(found, dict)
        and isinstance(found.get("position"), int)
        and isinstance(found.get("root"), str)
        and isinstance(found.get("streams"), int)
    ):
        raise DigestError(
            f"digest file {path}: not a `ledger digest` document "
            '({"position": N, "streams": N, "root": "..."})'
        )
    return found


class _snapshot:
    """A REPEATABLE READ transaction on a connection of its own: one consistent view."""

    def __init__(self, settings: Settings) -> None:
        self._conn = bootstrap.connect(settings)
        self._conn.isolation_level = IsolationLevel.REPEATABLE_READ
        self._conn.read_only = True

    def __enter__(self) -> psycopg.Connection[Any]:
        return self._conn

    def __exit__(self, *exc: object) -> None:
        self._conn.close()


def _fresh_schema(settings: Settings, conn: psycopg.Connection[Any], schema: str) -> None:
    """`schema`, emptied: created, or dropped and created again if it holds an earlier
    replay (its tracking table); any other existing schema is refused, never dropped."""
    name = Identifier(schema)
    exists = conn.execute(
        "SELECT to_regnamespace(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
        (schema, f'"{schema}".projection_tracking'),
    ).fetchone()
    if schema == "public" or (exists and exists[0] and not exists[1]):
        raise ReplayError(
            f"schema {schema!r} exists and holds no earlier replay; give another --schema"
        )
    conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))
    conn.execute(SQL("CREATE SCHEMA {}").format(name))
    conn.execute(SQL("SET LOCAL search_path TO {}, public").format(name))
    for statement in bootstrap.PROJECTION_SCHEMAS:
        conn.execute(statement)  # type: ignore[arg-type]
    conn.commit()
    tracking = _tracking(settings, schema)
    tracking.create_table()
    tracking.datastore.close()


def _tracking(settings: Settings, schema: str) -> PostgresTrackingRecorder:
    """The library's tracking recorder, on a datastore in `schema`."""
    env = bootstrap.postgres_env(settings.database_url or "") | {"POSTGRES_SCHEMA": schema}
    factory = PostgresFactory(Environment(env=env))
    return PostgresTrackingRecorder(factory.datastore, tracking_table_name="projection_tracking")


def _upkeep(settings: Settings, schema: str, book: AudienceBook) -> Upkeep:
    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(
            settings.database_url or "", autocommit=True, options=f"-c search_path={schema},public"
        )

    return Upkeep(book, connect(), (connect(), connect()), relay=None)
