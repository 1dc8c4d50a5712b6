"""The profile of a tree of merged customers (contract section 8), from each member's own
fold state: what folding every interaction that counts for any of them gives. Pure, and
commutative as the fold (`domain.profile`): sums and counts add, latest-wins fields keep
the later `(occurred_at, event_id)`, card lists unite, `enrolled_at` is the earliest."""

from __future__ import annotations

from decimal import Decimal

from domain.profile import State, add_money, forgotten, hold, later, latest, new_state


def combine(root_id: str, states: list[State]) -> State:
    """The fold state of a tree of merged customers from each member's own state: what
    folding every interaction that counts for any of them gives (contract section 8:
    counts and sums over all, latest-wins fields across all, cards the union, `enrolled_at`
    the earliest), with `merged_ids` naming the other members. Commutative, as the fold."""
    tree = new_state(root_id)
    for state in states:
        _combine_into(tree, state)
    tree["merged_ids"] = sorted(s["customer_id"] for s in states if s["customer_id"] != root_id)
    if tree["forgotten"]:
        tree["personal"], tree["consent"] = {}, None
    return tree


def _combine_into(tree: State, state: State) -> None:
    for name in ("cards", "retired_cards"):
        for card in state.get(name, []):
            hold(tree, name, card)
    for name in ("enrolled_at",):
        if state[name] is not None and (tree[name] is None or state[name] < tree[name]):
            tree[name] = state[name]
    for name in ("last_purchase_at", "last_interaction_at", "last_note_at"):
        if state.get(name) is not None:
            tree[name] = latest(tree.get(name), state[name])
    for field, entry in state["personal"].items():
        if later(tree["personal"].get(field), entry[0], entry[1]):
            tree["personal"][field] = entry
    for name in ("consent", "nps", "stage"):
        entry = state.get(name)
        if entry is not None and later(tree.get(name), entry[0], entry[1]):
            tree[name] = entry
    for name, count in state["counts"].items():
        tree["counts"][name] += count
    for name in ("complaints_total", "complaints_resolved", "return_count", "notes_count"):
        if name in state:
            tree[name] = tree.get(name, 0) + state[name]
    for name in ("spend", "category_spend", "refunded", "category_refunds"):
        for key, amount in state.get(name, {}).items():
            add_money(tree.setdefault(name, {}), key, Decimal(amount))
    tree["forgotten"] = tree["forgotten"] or forgotten(state)
