"""Two ingest workers in one consumer group record exactly what one worker records.

Each stream has one writer, its key's partition: an enrollment is recorded on the
customer's stream (the customer's partition) and holds its card in a table, while the
card-only swipes and purchases of the same card are recorded on the card's stream (the
card's partition). The traffic here is mostly those two racing for the same cards.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from support import (
    enrollment,
    interaction,
    keyed,
    profile_rows,
    project,
    publish,
    purchase,
    read_topic,
    wait_for,
)

from ledger import bootstrap
from ledger.ingest_worker import IngestStats
from ledger.settings import Settings

Message = tuple[bytes, bytes, list[Any]]


def card_heavy_traffic(seed: int = 7) -> tuple[list[Message], list[Message]]:
    """Two phases of messages. The first: 300 customers enrolling a card each (30 of them
    a second card), 8 card-only swipes and purchases per card (some before its
    enrollment), 40 cards nobody enrolls, the customers' own purchases, and faults (an
    invalid total, a message sent twice, an event id reused with other content), shuffled.
    The second, published once the first is recorded: 40 customers enrolling cards others
    hold (rule rejections) and more card-only traffic."""
    rng = random.Random(seed)
    first: list[dict[str, Any]] = []
    cards = [f"K-{i:04d}" for i in range(300)]
    for i, card in enumerate(list(cards)):
        first.append(enrollment(f"C-{i:04d}", card, name=f"Person {i}"))
        if i % 10 == 0:
            second = f"K2-{i:04d}"
            first.append(enrollment(f"C-{i:04d}", second))
            cards.append(second)
        first.extend(purchase(customer_id=f"C-{i:04d}", total="3.00") for _ in range(2))
    for card in cards + [f"U-{i:04d}" for i in range(40)]:
        for n in range(8 if card[0] == "K" else 3):
            if n % 2:
                first.append(interaction("card_swiped", card_id=card, store_id="S-1"))
            else:
                first.append(purchase(card_id=card, total=f"{n + 1}.50"))
    rng.shuffle(first)
    sent_twice = first[5]
    reused = {**first[6], "source": "pos-other"}
    invalid = purchase(card_id="K-0001", total="9.99", lines=[])
    first += [sent_twice, reused, invalid]
    later = [enrollment(f"D-{i:04d}", cards[i * 7]) for i in range(40)]
    later += [purchase(card_id=card, total="1.00") for card in cards[:100]]
    rng.shuffle(later)
    return [keyed(m) for m in first], [keyed(m) for m in later]


TRAFFIC = card_heavy_traffic()


def dead_letters(settings: Settings) -> list[tuple[int, int, str, str]]:
    found = []
    for record in read_topic(settings, settings.dead_letter_topic):
        h = dict(record.headers)
        found.append(
            (
                int(h["source_partition"]),
                int(h["source_offset"]),
                h["error_type"].decode(),
                h["error"].decode(),
            )
        )
    return sorted(found)


def offsets_reached(settings: Settings, total: int) -> bool:
    with psycopg.connect(settings.database_url or "") as conn:
        row = conn.execute("SELECT coalesce(sum(next_offset), 0) FROM ledger_offsets").fetchone()
    return row is not None and int(row[0]) >= total


def ingested(
    settings: Settings, workers: int
) -> tuple[dict[str, Any], list[Any], list[IngestStats]]:
    """The traffic's two phases published to `workers` ingest workers of one group, each
    on a thread of its own, running throughout (the second phase once the first is
    recorded); then the projections."""
    stop = threading.Event()
    stats: list[IngestStats] = []
    errors: list[BaseException] = []

    def run(worker: Any) -> None:
        try:
            stats.append(worker.run(stop))
        except BaseException as error:
            errors.append(error)
            raise

    threads = [
        threading.Thread(target=run, args=(bootstrap.ingest_worker(settings),))
        for _ in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        published = 0
        for phase in TRAFFIC:
            publish(settings, phase)
            published += len(phase)
            wait_for(lambda n=published: offsets_reached(settings, n) or errors, 180, "ingest")
    finally:
        stop.set()  # together: a group whose workers leave seconds apart may stick on Tansu
        for thread in threads:
            thread.join(timeout=60)
    assert not errors, errors
    assert len(stats) == workers, "every worker returned"
    project(settings)
    return profile_rows(settings), dead_letters(settings), stats


@pytest.fixture
def one_worker(make_settings: Callable[[], Settings]) -> tuple[dict[str, Any], list[Any]]:
    profiles, dead, _ = ingested(make_settings(), 1)
    return profiles, dead


def test_two_workers_record_exactly_what_one_worker_records(
    settings: Settings, one_worker: tuple[dict[str, Any], list[Any]]
) -> None:
    profiles, dead, stats = ingested(settings, 2)
    assert dead == one_worker[1]
    assert profiles == one_worker[0]
    assert sum(s.stream_conflicts for s in stats) == 0, "no stream has two writers"
    assert all(s.recorded > 0 for s in stats), "both workers took a share"
    # What the traffic holds, so that the comparison is not of two empty ledgers:
    assert len(profiles) == 300  # the second phase's enrollments are all refused
    kinds = sorted(e for _, _, e, _ in dead)
    assert (kinds.count("rule"), kinds.count("conflict"), kinds.count("invalid")) == (40, 1, 1)
    assert sum(s.duplicates for s in stats) == 1
