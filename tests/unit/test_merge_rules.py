"""The rules of merged customers (contract section 8), decided as ingest decides them, with
no server: each rule accepted and rejected by name, the edges a batch leaves, trees and
chains, and what a lost merge makes the batch decide again."""

from __future__ import annotations

from typing import Any

import pytest
from support import dumps, enrollment, interaction, purchase

from domain import errors, merges
from domain.aggregates import Customer
from domain.decision import Loaded, Parsed, decide, involved
from domain.interactions import Interaction, parse_interaction
from domain.recording import record, streams_named


def merged(survivor: str, merged_id: str, **fields: Any) -> dict[str, Any]:
    return interaction("customers_merged", survivor_id=survivor, merged_id=merged_id, **fields)


def unmerged(survivor: str, merged_id: str) -> dict[str, Any]:
    return interaction("customers_unmerged", survivor_id=survivor, merged_id=merged_id)


def parsed(*objs: dict[str, Any]) -> list[Parsed]:
    return [parse_interaction(dumps(obj)) for obj in objs]


def enrolled(*customers: str) -> dict[str, Any]:
    """The streams of these customers, each enrolled."""
    streams: dict[str, Any] = {}
    for customer in customers:
        (ix,) = parsed(enrollment(customer, f"K-{customer}"))
        assert isinstance(ix, Interaction)
        for stream in record(ix, {**dict.fromkeys(streams_named(ix)), **streams}, {}):
            streams[stream.stream] = stream
    return streams


def decided(
    *objs: dict[str, Any], parents: dict[str, str] | None = None, known: tuple[str, ...] = ()
) -> tuple[Any, Loaded, list[Parsed]]:
    items = parsed(*objs)
    named = {n for ix in items if isinstance(ix, Interaction) for n in streams_named(ix)}
    streams = dict.fromkeys(named) | enrolled(*known)
    loaded = Loaded(digests={}, streams=streams, keys=None, parents=dict(parents or {}))
    return decide(items, loaded), loaded, items


def test_a_merge_then_an_unmerge_are_recorded_on_the_survivors_stream() -> None:
    made, loaded, _ = decided(
        merged("C-1", "C-2", reason="same e-mail"),
        purchase(customer_id="C-2"),
        unmerged("C-1", "C-2"),
        known=("C-1", "C-2"),
    )
    assert made.rejections == []
    assert [(r.type, r.stream) for r in made.recorded] == [
        ("customers_merged", "customer-C-1"),
        ("purchase", "customer-C-2"),
        ("customers_unmerged", "customer-C-1"),
    ]
    assert [(m.merged, m.merged_id, m.survivor_id) for m in made.merges] == [
        (True, "C-2", "C-1"),
        (False, "C-2", "C-1"),
    ]
    assert loaded.parents == {}


def test_a_chain_joins_the_tree_of_the_survivors_root() -> None:
    made, loaded, _ = decided(
        merged("C-1", "C-2"), merged("C-2", "C-3"), known=("C-1", "C-2", "C-3")
    )
    assert made.rejections == []
    assert loaded.parents == {"C-2": "C-1", "C-3": "C-2"}
    assert merges.root_of(loaded.parents, "C-3") == "C-1"


@pytest.mark.parametrize(
    ("obj", "parents", "known", "named", "reason"),
    [
        (
            merged("C-1", "C-9"),
            {},
            ("C-1",),
            errors.CustomerNotEnrolled,
            "customer 'C-9' was never enrolled",
        ),
        (
            merged("C-8", "C-1"),
            {},
            ("C-1",),
            errors.CustomerNotEnrolled,
            "customer 'C-8' was never enrolled",
        ),
        (
            merged("C-3", "C-2"),
            {"C-2": "C-1"},
            ("C-1", "C-2", "C-3"),
            errors.AlreadyMerged,
            "customer 'C-2' is already merged into 'C-1'",
        ),
        (
            merged("C-3", "C-1"),
            {"C-2": "C-1", "C-3": "C-2"},
            ("C-1", "C-2", "C-3"),
            errors.MergeLoop,
            "customer 'C-3' belongs to the tree of 'C-1': merging would make a loop",
        ),
        (
            unmerged("C-3", "C-2"),
            {"C-2": "C-1"},
            ("C-1", "C-2", "C-3"),
            errors.NotMergedInto,
            "customer 'C-2' is not merged into 'C-3' (it is merged into 'C-1')",
        ),
        (
            unmerged("C-1", "C-3"),
            {"C-2": "C-1", "C-3": "C-2"},
            ("C-1", "C-2", "C-3"),
            errors.NotMergedInto,
            "customer 'C-3' is not merged into 'C-1' (it is merged into 'C-2')",
        ),
        (
            unmerged("C-1", "C-2"),
            {},
            ("C-1", "C-2"),
            errors.NotMergedInto,
            "customer 'C-2' is not merged into 'C-1'",
        ),
    ],
    ids=[
        "merged never enrolled",
        "survivor never enrolled",
        "merged into someone now",
        "a loop through a chain",
        "unmerge from another survivor",
        "unmerge of an indirect merge",
        "unmerge of a pair never merged",
    ],
)
def test_each_merge_rule_rejects_by_name(
    obj: dict[str, Any],
    parents: dict[str, str],
    known: tuple[str, ...],
    named: type[errors.RuleViolation],
    reason: str,
) -> None:
    made, loaded, items = decided(obj, parents=parents, known=known)
    assert [r.reason for r in made.rejections] == [reason]
    assert made.recorded == [] and made.merges == [] and loaded.parents == parents
    (ix,) = items
    assert isinstance(ix, Interaction)
    streams = dict.fromkeys(streams_named(ix)) | enrolled(*known)
    with pytest.raises(named):
        record(ix, streams, {}, {}, dict(parents))


def test_a_forgotten_customer_is_never_merged_and_its_bytes_are_not_kept() -> None:
    streams = enrolled("C-1", "C-2")
    customer = streams["customer-C-2"]
    assert isinstance(customer, Customer)
    customer.forgotten = True
    items = parsed(merged("C-1", "C-2"))
    named = {n for ix in items if isinstance(ix, Interaction) for n in streams_named(ix)}
    made = decide(items, Loaded({}, dict.fromkeys(named) | streams, None))
    assert [(r.reason, r.forgotten) for r in made.rejections] == [
        ("customer 'C-2' was forgotten", True)
    ]


def test_a_merge_lost_to_another_worker_decides_again_what_names_its_customers() -> None:
    objs = [purchase(customer_id="C-7"), merged("C-3", "C-2"), purchase(customer_id="C-2")]
    made, _, items = decided(*objs, known=("C-2", "C-3"))
    redone, streams = involved(items, made, lost_merges=["C-2"])
    assert redone == [1, 2]
    assert {"customer-C-2", "customer-C-3"} <= streams
    assert merges.replayed({"C-2": "C-1"}, made.merges) == ["C-2"]
