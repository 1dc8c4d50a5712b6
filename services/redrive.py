"""Use case: redrive dead letters, publishing them again to the inbound topic (contract
section 8), e.g. once the bug of a POS or of the ledger that rejected them is fixed.

A redriven message is a new Kafka record that the ledger decides like any other: recorded,
a duplicate, or dead-lettered again as a new dead letter (its own source offset), which a
later redrive can choose in turn. The record carries the original key, bytes and headers,
with `redriven_from` = `{partition}:{offset}` (the dead letter's source position) replacing
any earlier one; the dead-letter topic's own headers are never sent back.

At most once per dead letter, and never lost: the chosen rows are locked (FOR UPDATE) a
chunk at a time, sent, and marked redriven in the same transaction only after Kafka
acknowledged every send of the chunk. A crash or a failed send before the commit leaves
them unmarked, so a later redrive sends them again: at worst twice, and the second copy of
one that was recorded is a duplicate by its `event_id` (same content), recorded once. A
second redrive running at the same time waits on the lock and then skips what the first
marked. The dead letters to consider are listed once at the start, so one that comes back
dead-lettered again during the run waits for the next redrive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import Connection

from producers.publisher import Publisher
from store import dead_letters
from store.dead_letters import Header, Redrivable, Source

CHUNK = 500
"""Dead letters locked, sent and marked per transaction."""

REDRIVEN_FROM = "redriven_from"
DEAD_LETTER_HEADERS = frozenset(
    {"error", "error_type", "source_topic", "source_partition", "source_offset", "source_log"}
    | {"omitted", REDRIVEN_FROM}
)
"""Headers the ledger adds on the dead-letter topic (and an earlier `redriven_from`): not
republished, though a record copied from that topic may carry them."""


@dataclass(frozen=True)
class Selection:
    """Which dead letters: of one error type (None: all), dead-lettered at or after
    `since` and before `until` (None: unbounded)."""

    error_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class Redriven:
    """What a redrive did (or, dry, would do)."""

    published: Counter[str] = field(default_factory=Counter)  # by error type
    skipped_forgotten: int = 0  # emptied by a forget: nothing to send
    dry_run: bool = False
    headers_left_out: int = 0  # a name that is not UTF-8 or a null value: unsendable

    def document(self) -> dict[str, Any]:
        """`ledger redrive --json`."""
        return {
            "published": dict(sorted(self.published.items())),
            "skipped_forgotten": self.skipped_forgotten,
            "dry_run": self.dry_run,
        }


def redrive(
    connect: Callable[[], Connection[Any]],
    publisher: Callable[[], Publisher],
    topic: str,
    selection: Selection,
    *,
    dry_run: bool = False,
) -> Redriven:
    """Publish the chosen dead letters of `topic` (the inbound topic) back to it, each at
    most once; with `dry_run`, only count them (no publisher is made)."""
    done = Redriven(dry_run=dry_run)
    with connect() as conn:
        chosen = dead_letters.not_redriven(
            conn, topic, selection.error_type, selection.since, selection.until
        )
        conn.commit()
        if dry_run:
            for _, error_type, erased in chosen:
                if erased:
                    done.skipped_forgotten += 1
                else:
                    done.published[error_type] += 1
            return done
        sending = publisher()
        sources = [source for source, _, _ in chosen]
        for start in range(0, len(sources), CHUNK):
            with conn.transaction():
                _chunk(conn, sending, topic, sources[start : start + CHUNK], done)
    return done


def _chunk(
    conn: Connection[Any], sending: Publisher, topic: str, sources: list[Source], done: Redriven
) -> None:
    """Lock, send, wait for every acknowledgement, mark: in the caller's transaction."""
    rows = dead_letters.lock_for_redrive(conn, topic, sources)
    sent: list[Redrivable] = []
    for row in rows:
        if row.erased:
            done.skipped_forgotten += 1
            continue
        headers, left_out = redriven_headers(row.headers, row.source)
        done.headers_left_out += left_out
        value = b"" if row.key is None and row.value is None else row.value  # Kafka needs one
        sending.publish_raw(row.key, value, headers)
        sent.append(row)
    sending.flush()  # raises if any send failed: nothing of this chunk is marked
    dead_letters.mark_redriven(conn, topic, [row.source for row in sent])
    done.published.update(row.error_type for row in sent)


def redriven_headers(headers: list[Header], source: Source) -> tuple[list[tuple[str, bytes]], int]:
    """The original headers without the dead-letter topic's own and any earlier
    `redriven_from`, then `redriven_from` = `{partition}:{offset}`; and how many were left
    out because Kafka's Python client cannot send them (a name that is not UTF-8, a null
    value: the dead letter keeps them)."""
    kept: list[tuple[str, bytes]] = []
    left_out = 0
    for name, value in headers:
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            left_out += 1
            continue
        if value is None:
            left_out += 1
        elif text not in DEAD_LETTER_HEADERS:
            kept.append((text, value))
    _, partition, offset = source
    return [*kept, (REDRIVEN_FROM, f"{partition}:{offset}".encode())], left_out
