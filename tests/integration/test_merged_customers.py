"""Merged customers (contract section 8) through the real ingest worker and projection:
each merge rule refused by name, a root's profile folding its tree, a merged customer
answering its root's profile and leaving the audiences, an unmerge folding both sides
again (what was recorded during the merge included), `ledger verify` and a replay equal
to live at each step, and two workers racing to merge one customer into two survivors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from support import (
    decided_batch as decided,
)
from support import (
    enrollment,
    ingest,
    interaction,
    keyed,
    members,
    plaintext_rows,
    project,
    publish,
    purchase,
    run_ledger,
)

from ledger import bootstrap
from ledger.settings import Settings
from projections import profiles
from projections.compare import differences
from projections.history import customer_events, profile_as_of
from services.export import export
from services.forget import MergedCustomer, forget_customer
from services.replay import replay
from services.verify import verify


def merged(survivor: str, merged_id: str, **fields: Any) -> dict[str, Any]:
    return interaction("customers_merged", survivor_id=survivor, merged_id=merged_id, **fields)


def unmerged(survivor: str, merged_id: str) -> dict[str, Any]:
    return interaction("customers_unmerged", survivor_id=survivor, merged_id=merged_id)


def step(settings: Settings, *objs: dict[str, Any]) -> None:
    """Publish, then ingest and project all (messages of other keys may go to other
    partitions: what must follow something is published in a later step)."""
    publish(settings, [keyed(obj) for obj in objs])
    ingest(settings)
    project(settings)


def rows(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(query).fetchall()


def profile(settings: Settings, customer: str) -> dict[str, Any]:
    with psycopg.connect(settings.database_url or "") as conn:
        found = profiles.profile(conn, customer)
    assert found is not None
    return found


def dead_letters(settings: Settings) -> dict[str, str]:
    return dict(rows(settings, "SELECT event_id, error FROM ledger_dead_letters"))


def checked(settings: Settings, schema: str) -> None:
    """`ledger verify` finds nothing, and a replay equals the live projection."""
    ports = bootstrap.ports(settings)
    report = verify(ports, workers=1)
    assert (report.findings, report.differences, report.rebuild) == ([], [], None)
    replay(ports, schema, workers=2)
    with (
        psycopg.connect(settings.database_url or "") as live,
        psycopg.connect(settings.database_url or "") as again,
    ):
        assert list(differences(live, "public", again, schema)) == []


def test_a_tree_folds_into_its_root_and_an_unmerge_parts_it_again(settings: Settings) -> None:
    step(
        settings,
        enrollment("C-1", "K-1", name="Ada Lovelace", occurred_at="2026-03-01T09:00:00Z"),
        enrollment("C-2", "K-2", name="Ada Lovelace", occurred_at="2026-03-02T09:00:00Z"),
        enrollment("C-3", "K-3", name="Grace Hopper"),
        purchase("10.00", customer_id="C-1"),
        purchase("5.00", customer_id="C-2"),
        interaction("card_swiped", card_id="K-2", store_id="S-1"),
    )
    moments = [(datetime.now(UTC), profile(settings, "C-2"))]  # as-of answers, checked last
    never = merged("C-1", "C-9")
    step(settings, merged("C-1", "C-2", reason="same e-mail"), never)
    again, loop, not_merged = merged("C-3", "C-2"), merged("C-2", "C-1"), unmerged("C-3", "C-2")
    between = [purchase("2.50", customer_id="C-2"), purchase("1.00", customer_id="C-1")]
    step(settings, again, loop, not_merged, *between)
    moments.append((datetime.now(UTC), profile(settings, "C-2")))

    assert dead_letters(settings) == {
        never["event_id"]: "customer 'C-9' was never enrolled",
        again["event_id"]: "customer 'C-2' is already merged into 'C-1'",
        loop["event_id"]: "customer 'C-2' belongs to the tree of 'C-1': merging would make a loop",
        not_merged["event_id"]: "customer 'C-2' is not merged into 'C-3' (it is merged into 'C-1')",
    }
    root = profile(settings, "C-1")
    assert profile(settings, "C-2") == root  # a merged customer answers its root's profile
    assert (root["customer_id"], root["merged_ids"], root["cards"]) == (
        "C-1",
        ["C-2"],
        ["K-1", "K-2"],
    )
    assert (root["purchase_count"], root["swipe_count"]) == (4, 1)
    assert root["total_spend"] == {"EUR": "18.50"}
    assert root["interaction_count"] == 7  # the merge itself is not counted
    assert root["enrolled_at"] == "2026-03-01T09:00:00Z"
    assert rows(settings, "SELECT merged_id, survivor_id FROM ledger_merges") == [("C-2", "C-1")]
    assert not any("C-2" in who for who in members(settings).values())
    with psycopg.connect(settings.database_url or "") as conn:
        events = customer_events(conn, "C-2")  # the whole tree's, and its cards'
        assert {e["stream"] for e in events} == {"customer-C-1", "customer-C-2", "card-K-2"}
        assert export(conn, "C-2")["customer_id"] == "C-1"  # type: ignore[index]
        merge = next(e for e in events if e["type"] == "customers_merged")
        at_merge = datetime.fromisoformat(merge["recorded_at"])
        then = profile_as_of(conn, "C-2", at_merge)  # the root's, before C-2's last purchase
        assert then is not None and (then["customer_id"], then["merged_ids"]) == ("C-1", ["C-2"])
        assert then["total_spend"] == {"EUR": "15.00"}
        before = profile_as_of(conn, "C-2", at_merge - timedelta(microseconds=1))
        assert before is not None and before["customer_id"] == "C-2"
        assert before["total_spend"] == {"EUR": "5.00"}
    checked(settings, "merged_replay")

    step(settings, unmerged("C-1", "C-2"))
    alone, parted = profile(settings, "C-1"), profile(settings, "C-2")
    assert (alone["merged_ids"], alone["cards"], alone["total_spend"]) == (
        [],
        ["K-1"],
        {"EUR": "11.00"},
    )
    moments.append((datetime.now(UTC), parted))
    assert (parted["customer_id"], parted["cards"]) == ("C-2", ["K-2"])
    assert parted["total_spend"] == {"EUR": "7.50"}  # its purchase during the merge included
    assert rows(settings, "SELECT count(*) FROM ledger_merges WHERE unmerge_event_id IS NULL") == [
        (0,)
    ]
    with psycopg.connect(settings.database_url or "") as conn:
        assert profile_as_of(conn, "C-2", at_merge) == then  # as the ledger knew it then
        assert {e["stream"] for e in customer_events(conn, "C-2")} == {
            "customer-C-2",
            "card-K-2",
        }
    with psycopg.connect(settings.database_url or "") as conn:
        for moment, live in moments:  # before the merge, during it, after the unmerge
            assert profile_as_of(conn, "C-2", moment) == live
    checked(settings, "unmerged_replay")


def test_a_root_forgets_its_tree_and_a_merged_customer_is_not_forgotten_alone(
    settings: Settings,
) -> None:
    names = ("Ottilie Quenby", "Ottilie Q. Quenby")
    step(
        settings,
        enrollment("C-1", "K-1", name=names[0], email="oq@example.org"),
        enrollment("C-2", "K-2", name=names[1]),
        enrollment("C-3", "K-3"),
    )
    step(settings, merged("C-1", "C-2", reason=f"{names[0]} enrolled twice"))
    # Refused, kept with its bytes until the forget: it names C-2 as `merged_id` only.
    step(settings, merged("C-3", "C-2", reason=f"{names[1]} again"))
    assert plaintext_rows(settings, names[1])  # the projection holds it before
    with psycopg.connect(settings.database_url or "") as conn:
        document = export(conn, "C-2")
    assert document is not None and len(document["dead_letters"]) == 1  # names the tree
    ports = bootstrap.ports(settings)
    with pytest.raises(MergedCustomer, match="merged into the tree of 'C-1'"):
        forget_customer(ports, "C-2", "erasure request")
    done = forget_customer(ports, "C-1", "erasure request")
    assert done is not None and done.first
    project(settings)
    for customer in ("C-1", "C-2"):
        assert profile(settings, customer)["name"] is None
    for text in (*names, "oq@example.org", "enrolled twice"):
        assert plaintext_rows(settings, text) == [], text
    keys = "SELECT count(*) FROM customer_keys WHERE customer_id < 'C-3' AND key IS NOT NULL"
    assert rows(settings, keys) == [(0,)]
    # Messages about the forgotten tree are refused and kept with no bytes; a redrive skips
    # them (counted) rather than send them empty.
    step(
        settings,
        merged("C-3", "C-2"),
        interaction("card_replaced", customer_id="C-3", old_card_id="K-3", new_card_id="K-1"),
    )
    emptied = rows(settings, "SELECT error FROM ledger_dead_letters WHERE value IS NULL")
    assert {
        ("card 'K-1' belongs to a forgotten customer",),
        ("customer 'C-2' was forgotten",),
    } <= set(emptied)
    redriven = run_ledger(settings, "redrive", "--dry-run", "--json")
    assert redriven.returncode == 0, redriven.stderr
    assert json.loads(redriven.stdout)["published"] == {}


def test_two_workers_merging_one_customer_into_two_survivors_record_one(
    settings: Settings,
) -> None:
    first, second = bootstrap.ingest(settings, seal=False), bootstrap.ingest(settings, seal=False)
    people = [enrollment(c, f"K-{c}") for c in ("C-1", "C-2", "C-3")]
    first.commit(decided(first, settings, 0, people))
    into_three = merged("C-3", "C-2")
    other = purchase(customer_id="C-8")
    late = decided(second, settings, 2, [other, into_three])  # C-2 merged into nobody yet
    first.commit(decided(first, settings, 1, [merged("C-1", "C-2")]))

    result = second.commit(late)

    assert (result.recorded, dict(result.rejected), result.redecided) == (1, {"rule": 1}, 1)
    assert dead_letters(settings) == {
        into_three["event_id"]: "customer 'C-2' is already merged into 'C-1'"
    }
    assert rows(settings, "SELECT merged_id, survivor_id FROM ledger_merges") == [("C-2", "C-1")]


def test_verify_rebuilds_the_merges_table_from_the_log(settings: Settings) -> None:
    step(settings, enrollment("C-1", "K-1"), enrollment("C-2", "K-2"))
    merge = merged("C-1", "C-2")
    step(settings, merge)
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        conn.execute("UPDATE ledger_merges SET survivor_id = 'C-X'")
    report = verify(bootstrap.ports(settings), workers=1)
    assert [(d.what, d.key, d.detail) for d in report.differences if d.what == "merge"] == [
        (
            "merge",
            merge["event_id"],
            "C-2 merged into C-X in the table, C-2 merged into C-1 in the log",
        )
    ]


def test_a_merged_customer_leaves_its_audiences_and_an_unmerge_brings_it_back(
    settings: Settings,
) -> None:
    def complained(customer: str) -> dict[str, Any]:
        fields = {"complaint_id": f"P-{customer}", "category": "service", "severity": "low"}
        return interaction("complaint_filed", customer_id=customer, **fields)

    step(
        settings,
        enrollment("C-1", "K-1"),
        enrollment("C-2", "K-2"),
        complained("C-1"),
        complained("C-2"),
    )
    assert {"C-1", "C-2"} <= members(settings)["unhappy_customers"]
    step(settings, merged("C-1", "C-2"))
    assert rows(
        settings,
        "SELECT member, reason FROM audience_members "
        "WHERE audience = 'unhappy_customers' AND customer_id = 'C-2'",
    ) == [(False, "merged into C-1")]
    assert "C-2" not in members(settings)["unhappy_customers"]
    # In one page: the unmerge, and an interaction of the customer parted again.
    step(
        settings,
        unmerged("C-1", "C-2"),
        interaction("call", customer_id="C-2", direction="inbound", duration_seconds=5, topic="x"),
    )
    assert {"C-1", "C-2"} <= members(settings)["unhappy_customers"]
    checked(settings, "audience_replay")
