"""SIGKILL the workers mid-stream: every valid interaction is still counted exactly once and
every rejected one sits on the dead-letter topic once, as in an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from support import (
    audience_changes,
    distinct_changes,
    final_members,
    ledger_env,
    members,
    profile_rows,
    read_topic,
    wait_for,
)

from domain import partner
from domain.interactions import INTERACTION_TYPES
from domain.schema import on_partner_stream
from ledger import bootstrap
from ledger.settings import Settings
from producers.merge_traffic import MERGE_LAG
from producers.publisher import Publisher
from producers.simulator import SimulationPlan, simulate, simulate_labelled

PLAN = SimulationPlan(customers=400, partners=10, events=20_000, seed=11, faults=True, retail=True)


TRAFFIC = list(simulate(PLAN))
CHUNKS = [TRAFFIC[i : i + MERGE_LAG] for i in range(0, len(TRAFFIC), MERGE_LAG)]
"""The traffic in chunks no longer than `MERGE_LAG`, each published once the ledger has
consumed the ones before: a merge is keyed by its survivor and the enrollments it needs by
their customers (other partitions, read in any order), and the simulator yields them at
least `MERGE_LAG` apart, so every merge's fate is the same in every run."""


def publish(settings: Settings, chunk: list[dict[str, Any]]) -> int:
    publisher = Publisher(bootstrap.producer(settings), settings.inbound_topic)
    for obj in chunk:
        publisher.publish(obj)
    return publisher.flush()


class Feeder(threading.Thread):
    """Publishes the chunks in turn, each once what was published before is consumed
    (whatever consumers run meanwhile, killed or not)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings, self.published, self.error = settings, 0, None

    def run(self) -> None:
        try:
            for chunk in CHUNKS:
                self.published += publish(self.settings, chunk)
                wait_for(lambda: consumed(self.settings) >= self.published, 600, "a chunk")
        except BaseException as error:  # reported by the test's thread
            self.error = error


def consume_all(settings: Settings, feeder: Feeder, total: int) -> None:
    """`ledger consume --until-idle` until every chunk is published and consumed (one may
    idle out between two chunks)."""
    while True:
        finish(ledger(settings, "consume", "--until-idle"))
        if consumed(settings) == total:
            break
        assert feeder.is_alive(), f"the feeder stopped: {feeder.error}"
    feeder.join()


def ledger(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", *args],
        env=ledger_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(process: subprocess.Popen[bytes]) -> None:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err.decode()


def scalar(settings: Settings, query: str) -> int:
    with psycopg.connect(settings.database_url or "") as conn:
        row = conn.execute(query).fetchone()
    return int(row[0] or 0) if row else 0


def consumed(settings: Settings) -> int:
    return scalar(settings, "SELECT sum(next_offset) FROM ledger_offsets")


def projected(settings: Settings) -> int:
    return scalar(
        settings,
        "SELECT notification_id FROM projection_tracking WHERE application_name = 'profiles'",
    )


def kill_after(process: subprocess.Popen[bytes], progress: Callable[[], bool], what: str) -> None:
    wait_for(lambda: progress() or process.poll() is not None, 120, what)
    assert process.poll() is None, f"the worker finished before it could be killed ({what})"
    process.send_signal(signal.SIGKILL)
    process.wait()


def reasons(settings: Settings) -> list[str]:
    return [
        dict(r.headers)["error"].decode() for r in read_topic(settings, settings.dead_letter_topic)
    ]


def dead_letters(settings: Settings) -> list[tuple[int, int, str]]:
    found = []
    for record in read_topic(settings, settings.dead_letter_topic):
        h = dict(record.headers)
        found.append(
            (int(h["source_partition"]), int(h["source_offset"]), h["error_type"].decode())
        )
    return sorted(found)


@pytest.fixture
def reference(make_settings: Callable[[], Settings]) -> dict[str, Any]:
    """The same traffic ingested and projected without interruption."""
    settings = make_settings()
    total = 0
    for chunk in CHUNKS:
        total += publish(settings, chunk)
        bootstrap.ingest_worker(settings).run(threading.Event(), until_idle=True)
    done = bootstrap.ledger(settings).project(threading.Event(), until_idle=True)
    return {
        "total": total,
        "position": done.position,
        "profiles": profile_rows(settings),
        "dead": dead_letters(settings),
        "partners": partner_rows(settings),
        "members": members(settings),
        "reasons": reasons(settings),
    }


def test_the_traffic_has_every_type_and_the_section_8_rules_are_broken(
    reference: dict[str, Any],
) -> None:
    """What the crash tests below put through SIGKILLs: every interaction type, valid, and
    the new rules of contract section 8 broken (the merge rules, replaced cards, returns,
    notes)."""
    assert set(INTERACTION_TYPES) <= {obj.get("type") for obj in TRAFFIC}  # and faults
    merges = [o for o in TRAFFIC if o["type"] in ("customers_merged", "customers_unmerged")]
    assert len(merges) >= 10
    text = "\n".join(reference["reasons"])
    for words in (
        "was never enrolled",
        "is not merged into",
        "does not hold card",
        "is already held by customer",
        "was replaced by",
        "bought left to return",
        "was already added",
    ):
        assert words in text, words


def test_partners_and_audiences_are_exact_for_the_simulated_traffic(
    settings: Settings, reference: dict[str, Any]
) -> None:
    """Partner statuses as folded straight from the simulator's valid traffic; audience
    members as the definitions evaluate the final profiles at the pinned clock."""
    streams: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for obj, fault in simulate_labelled(PLAN):
        if fault is None and on_partner_stream(obj["type"], obj):
            streams.setdefault(obj["partner_id"], []).append((obj["type"], obj))
    expected = {}
    for partner_id, interactions in streams.items():
        state = partner.new_state(partner_id)
        for kind, payload in interactions:
            partner.apply(state, kind, payload)
        expected[partner_id] = partner.render(state)
    assert reference["partners"] == expected
    assert {s["status"] for s in expected.values()} >= {"active", "at_risk"}

    now = settings.clock()
    evaluated: dict[str, set[str]] = {}
    for audience in bootstrap.audiences(settings):
        for customer_id, profile in reference["profiles"].items():
            if profile["customer_id"] != customer_id:
                continue  # merged: its row holds its root's profile, and only roots are members
            if audience.evaluate(profile, now).holds:
                evaluated.setdefault(audience.name, set()).add(customer_id)
    assert reference["members"] == evaluated
    assert len(evaluated) >= 5, "most built-in audiences have members"


def partner_rows(settings: Settings) -> dict[str, Any]:
    with psycopg.connect(settings.database_url or "") as conn:
        return dict(conn.execute("SELECT partner_id, status FROM partners").fetchall())


def assert_projections_match(settings: Settings, reference: dict[str, Any]) -> None:
    """Profiles, partners and audience members as in the uninterrupted run, and the
    audiences topic agrees: each key's changes numbered 1..n (none missing) and its last
    change gives the membership."""
    assert profile_rows(settings) == reference["profiles"]
    assert partner_rows(settings) == reference["partners"]
    changes = audience_changes(settings)
    seqs: dict[tuple[str, str], list[int]] = {}
    for audience, customer, seq in sorted(distinct_changes(changes)):
        seqs.setdefault((audience, customer), []).append(seq)
    assert all(found == list(range(1, len(found) + 1)) for found in seqs.values())
    assert members(settings) == reference["members"] == final_members(changes)


def uninterrupted_copy(settings: Settings, make_settings: Callable[[], Settings]) -> Settings:
    """A copy of this ledger's database (same events, same order) with its own topics.

    Which entries and exits happen depends on the order events were recorded in (an entry
    and exit within one page cancel out), which an interrupted ingest changes; so a
    projection is compared with an uninterrupted projection of the same ledger.
    """
    copy = make_settings()
    with psycopg.connect(
        settings.database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE "{copy.topic_prefix}"')
        conn.execute(f'CREATE DATABASE "{copy.topic_prefix}" TEMPLATE "{settings.topic_prefix}"')
    return copy


def test_killed_consumer_and_projector_resume_without_loss_or_double_counting(
    make_settings: Callable[[], Settings], reference: dict[str, Any]
) -> None:
    settings = make_settings()
    total = reference["total"]
    feeder = Feeder(settings)
    feeder.start()
    for fraction in (0.1, 0.5):
        worker = ledger(settings, "consume")
        kill_after(worker, lambda f=fraction: consumed(settings) > total * f, "ingest progress")
    consume_all(settings, feeder, total)
    assert consumed(settings) == total
    copy = uninterrupted_copy(settings, make_settings)
    bootstrap.ledger(copy).project(threading.Event(), until_idle=True)

    for fraction in (0.0, 0.5):
        projector = ledger(settings, "project")
        kill_after(
            projector,
            lambda f=fraction: projected(settings) > reference["position"] * f,
            "projection progress",
        )
    finish(ledger(settings, "project", "--until-idle"))

    assert dead_letters(settings) == reference["dead"]
    assert_projections_match(settings, reference)
    assert distinct_changes(audience_changes(settings)) == distinct_changes(
        audience_changes(copy)
    ), "the same entries and exits as an uninterrupted projection of the same ledger"


def test_two_consumers_one_killed_keep_counts_exact(
    make_settings: Callable[[], Settings], reference: dict[str, Any]
) -> None:
    settings = make_settings()
    total = reference["total"]
    feeder = Feeder(settings)
    feeder.start()
    survivor = ledger(settings, "consume")
    victim = ledger(settings, "consume")  # killed mid-stream
    kill_after(victim, lambda: consumed(settings) > total * 0.3, "ingest progress")
    wait_for(lambda: consumed(settings) == total or survivor.poll() is not None, 600, "ingest")
    survivor.terminate()
    survivor.wait()
    consume_all(settings, feeder, total)
    finish(ledger(settings, "project", "--until-idle"))

    assert consumed(settings) == total
    assert dead_letters(settings) == reference["dead"]
    assert_projections_match(settings, reference)
