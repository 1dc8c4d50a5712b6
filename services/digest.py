"""Use case: `ledger digest`, and the check that the ledger extends a digest taken before
(`ledger verify --digest`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from psycopg import Connection, IsolationLevel

from projections import chain_scan
from services.ports import Ports


class DigestError(Exception):
    """A digest file that cannot be read."""


def digest(ports: Ports) -> dict[str, Any]:
    """`{position, streams, root}` of the ledger now (`chain_scan.digest`), in one snapshot."""
    with ports.connect() as conn:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return chain_scan.digest(conn)


def check_digest(conn: Connection[Any], expected: dict[str, Any]) -> str | None:
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
    """A `ledger digest` document from a file; DigestError names what is wrong with it."""
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
