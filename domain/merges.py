"""Merged customers (contract section 8): who is merged into whom, and the rules of merging.
Pure.

Merges form a forest: each merged customer points at the survivor it was merged into
directly (`parents`: merged id -> survivor id), and the customer at the top of a tree is
its *root*. A merge or an unmerge is recorded on the survivor's stream (its partition is the
one writer), and the edge is kept in the same transaction in a table under a constraint
(`store.merges`), where a merge two workers race to make is decided again, as a lost card
claim is. The decision checks the rules against the edges as loaded for its batch
(extended, in order, by the batch's own merges and unmerges), and the store checks the same
rules again on the edges as committed, under a lock, before it writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from domain import errors

MERGED = "customers_merged"
UNMERGED = "customers_unmerged"
MERGES = frozenset({MERGED, UNMERGED})
DEEPEST = 10_000
"""More steps up than any tree can have: a walk that takes them has met a loop (a bug)."""


@dataclass(frozen=True)
class MergeChange:
    """A recorded merge (`merged` True) or unmerge of `merged_id` directly into / from
    `survivor_id`."""

    merged: bool
    merged_id: str
    survivor_id: str
    event_id: str
    index: int = field(default=0, compare=False, repr=False)  # the item's place in its batch


def root_of(parents: Mapping[str, str], customer_id: str) -> str:
    """The root of the customer's tree (itself when it is merged into nobody)."""
    for _ in range(DEEPEST):
        up = parents.get(customer_id)
        if up is None:
            return customer_id
        customer_id = up
    raise RuntimeError(f"merges form a loop above {customer_id!r}")


def check(parents: Mapping[str, str], type: str, payload: Mapping[str, Any]) -> None:
    """The rules that depend on who is merged into whom (the enrollment and forgetting of
    both customers are checked on their streams, `domain.recording`)."""
    survivor, merged = payload["survivor_id"], payload["merged_id"]
    now = parents.get(merged)
    if type == UNMERGED:
        if now != survivor:
            into = f" (it is merged into {now!r})" if now is not None else ""
            raise errors.NotMergedInto(f"customer {merged!r} is not merged into {survivor!r}{into}")
        return
    if now is not None:
        raise errors.AlreadyMerged(f"customer {merged!r} is already merged into {now!r}")
    root = root_of(parents, survivor)
    if root == merged:
        raise errors.MergeLoop(
            f"customer {survivor!r} belongs to the tree of {merged!r}: merging would make a loop"
        )


def change(type: str, payload: Mapping[str, Any], event_id: str, index: int = 0) -> MergeChange:
    return MergeChange(
        type == MERGED, payload["merged_id"], payload["survivor_id"], event_id, index
    )


def apply(parents: MutableMapping[str, str], made: MergeChange) -> None:
    if made.merged:
        parents[made.merged_id] = made.survivor_id
    else:
        parents.pop(made.merged_id, None)


def replayed(parents: MutableMapping[str, str], changes: Iterable[MergeChange]) -> list[str]:
    """Check and apply each change in order against `parents` (the edges as committed);
    the merged ids of those the rules now refuse (another worker's merge came first)."""
    lost: list[str] = []
    for made in changes:
        payload = {"survivor_id": made.survivor_id, "merged_id": made.merged_id}
        try:
            check(parents, MERGED if made.merged else UNMERGED, payload)
        except errors.RuleViolation:
            lost.append(made.merged_id)
            continue
        apply(parents, made)
    return lost


def involved_customers(payloads: Iterable[Mapping[str, Any]]) -> set[str]:
    """The customers whose edges the rules of these merges and unmerges read."""
    return {c for p in payloads for c in (p["survivor_id"], p["merged_id"])}
