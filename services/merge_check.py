"""Use case, part of `ledger verify`: who is merged into whom (`store.merges`) against the
log. Ingest writes the table in the events' transaction; the log alone says which merges
were recorded and which unmerged, so the table is rebuilt from the log and compared, as
the card holders' table is (`services.holdings`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from psycopg import Connection

from projections.compare import Difference
from store import merges

WHAT = "merge"


def differences(conn: Connection[Any]) -> Iterator[Difference]:
    """Every merge (by its event id) the table holds otherwise than the log says."""
    expected = merges.from_log(conn)
    found = {row[0]: row for row in merges.every_merge(conn)}
    for event_id in sorted(expected.keys() | found.keys()):
        logged, held = expected.get(event_id), found.get(event_id)
        if held != logged:
            yield Difference(
                WHAT, event_id, f"{_shown(held)} in the table, {_shown(logged)} in the log"
            )


def _shown(row: merges.Row | None) -> str:
    if row is None:
        return "nothing"
    _, merged, survivor, unmerged = row
    parted = f", unmerged by {unmerged}" if unmerged else ""
    return f"{merged} merged into {survivor}{parted}"
