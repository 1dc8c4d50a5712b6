"""What `ledger forget` erases beside recording its events, in the same transaction
(`consumers.store.write_ingest` runs it): the key, the content digests, and the dead letters
about the person."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow

from domain.aggregates import card_stream, customer_stream
from domain.forgetting import names_person
from store.keys import destroy_key


@dataclass(frozen=True)
class Erasure:
    """A forgotten customer: its key is destroyed, the content digests of its interactions
    go, and the dead letters about it lose their original bytes and reason."""

    customer_id: str
    card_ids: list[str]
    personal: list[str]  # the person's names and e-mails, to find dead letters by


ERASED_DIGEST = "erased"
"""The content digest of a forgotten customer's interactions: the sha256 of a payload
with plaintext fields would let anyone check a guess of them."""
ERASED_ERROR = "erased: it named a forgotten customer"


_REDACT_DEAD_LETTERS = """
UPDATE ledger_dead_letters AS d
SET key = NULL, value = NULL, headers = '[]', error = %s
FROM unnest(%s::text[], %s::text[], %s::int[], %s::bigint[]) AS h(log, topic, part, off)
WHERE (d.source_log, d.source_topic, d.source_partition, d.source_offset)
    = (h.log, h.topic, h.part, h.off)
"""


def erase(curs: Cursor[DictRow], erasure: Erasure) -> None:
    """Destroy the key, drop the digests, and empty every dead letter about the person
    (`domain.forgetting.names_person`): they were kept in the clear, and their reason may
    quote a field. Their error type and source position stay."""
    destroy_key(curs, erasure.customer_id)
    ids = [erasure.customer_id, *erasure.card_ids]
    streams = [customer_stream(erasure.customer_id), *map(card_stream, erasure.card_ids)]
    curs.execute(
        "UPDATE ledger_interactions SET digest = %s WHERE stream = ANY(%s)",
        (ERASED_DIGEST, streams),
    )
    curs.execute(
        "SELECT source_log, source_topic, source_partition, source_offset, key, value "
        "FROM ledger_dead_letters WHERE value IS NOT NULL OR key IS NOT NULL"
    )
    about = [
        row
        for row in curs.fetchall()
        if names_person(_bytes(row["value"]), ids, erasure.personal)
        or _bytes(row["key"]).decode("utf-8", "replace").strip() in ids
    ]
    if about:
        curs.execute(
            _REDACT_DEAD_LETTERS,
            (
                ERASED_ERROR,
                [r["source_log"] for r in about],
                [r["source_topic"] for r in about],
                [r["source_partition"] for r in about],
                [r["source_offset"] for r in about],
            ),
        )


def _bytes(value: Any) -> bytes:
    return b"" if value is None else bytes(value)
