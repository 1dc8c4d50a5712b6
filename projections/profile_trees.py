"""A page of the profile projection meets merged customers (contract section 8).

Each customer keeps its own fold state (the interactions that count for it). A root's
profile is the combination of its tree's states (`domain.profile_tree.combine`), and every
member's row holds that document (`root_id` naming the root), so a read of a merged
customer answers its root's profile. Only roots are audience members: a customer merged
by the page leaves every audience with reason `merged into <survivor>`.

Most pages touch no tree: `page_trees` answers None for them, after no query, and the page
goes on as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import Cursor

from domain import profile as fold
from domain import profile_tree
from domain.audiences import Audience
from domain.membership import Membership, step
from projections import audiences, merge_tree, profiles

Event = tuple[int, str, dict[str, Any]]
"""(position, type, payload) of a merge or unmerge."""


@dataclass
class PageTrees:
    """The open merges of the trees a page touches, before and after its merges."""

    before: dict[str, str]
    after: dict[str, str]
    merges: list[Event] = field(default_factory=list)

    @property
    def participants(self) -> set[str]:
        return {p[k] for _, _, p in self.merges for k in ("survivor_id", "merged_id")}


def page_trees(curs: Cursor[Any], in_trees: set[str], merges: list[Event]) -> PageTrees | None:
    """The trees of the customers already in one (`in_trees`) and of the page's merges'
    customers; None when there are none."""
    trees = PageTrees({}, {}, merges)
    wanted = in_trees | trees.participants
    if not wanted:
        return None
    trees.before = merge_tree.edges(curs, wanted)
    trees.after = dict(trees.before)
    for _, type, payload in merges:
        merge_tree.follow(trees.after, type, payload)
    return trees


@dataclass
class Documents:
    """What the page writes for the trees it touched."""

    rows: dict[str, tuple[dict[str, Any], str | None]]  # customer -> (document, root or None)
    roots: dict[str, dict[str, Any]]  # root -> its document (the audiences' input)
    triggers: dict[str, str]  # root -> the event that changed its tree last
    departed: dict[str, str]  # customer merged by the page -> its exits' reason


def documents(
    trees: PageTrees,
    states: dict[str, fold.State],
    changed: Iterable[str],
    triggers: dict[str, str],
    load: Callable[[set[str]], None],
) -> Documents:
    """Every touched tree's document, for each of its members (`load` adds the states of
    the members `states` lacks)."""
    after = trees.after
    roots = merge_tree.roots(after, set(changed) | trees.participants)
    members = {root: merge_tree.members(after, root) for root in roots}
    load({m for group in members.values() for m in group} - states.keys())
    merge_triggers = {
        merge_tree.roots(after, [p[k]]).pop(): f"event {type} {p['event_id']}"
        for _, type, p in trees.merges
        for k in ("survivor_id", "merged_id")
    }
    found = Documents({}, {}, {}, {})
    for root, group in members.items():
        own = [states.setdefault(m, fold.new_state(m)) for m in group]
        document = fold.render(profile_tree.combine(root, own) if len(group) > 1 else own[0])
        found.roots[root] = document
        for member in group:
            found.rows[member] = (document, None if member == root else root)
        found.triggers[root] = next(
            (triggers[m] for m in group if m in triggers), merge_triggers.get(root, "merge")
        )
    for merged, survivor in after.items():
        if trees.before.get(merged) is None and merged in trees.participants:
            found.departed[merged] = f"merged into {survivor}"
    return found


def settle_rebuilt(curs: Cursor[Any], book: Iterable[Audience], now: datetime) -> int:
    """After a rebuild's parts (each folds its own customers, and keeps the merges of its
    survivors): every tree's document in each member's row, and only the roots in the
    audiences, evaluated once on their tree's profile. Returns the trees settled."""
    after = merge_tree.every_edge(curs)
    if not after:
        return 0
    groups = {root: merge_tree.members(after, root) for root in merge_tree.roots(after, after)}
    everyone = [m for group in groups.values() for m in group]
    states = profiles.own_states(curs, everyone)
    rows: dict[str, tuple[dict[str, Any], str | None]] = {}
    members: list[Membership] = []
    book = list(book)
    for root, group in groups.items():
        tree = profile_tree.combine(root, [states.get(m) or fold.new_state(m) for m in group])
        document = fold.render(tree)
        rows |= {m: (document, None if m == root else root) for m in group}
        if not fold.forgotten(tree):
            for audience in book:
                row, _ = step(audience, root, None, document, now, "event customers_merged")
                if row is not None:
                    members.append(row)
    profiles.set_documents(curs, rows)
    audiences.replace_members(curs, everyone, members)
    return len(groups)
