"""A tree of merged customers folds into one profile (contract section 8): for a given tree,
any arrival order of the interactions that count for it, and any split of them among its
members, gives the profile of folding them all into the root; a merged customer's departure
is an exit with its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.interactions import validate_object
from domain.membership import Membership
from domain.membership_batch import on_profiles
from domain.profile import apply, fold, new_state, render
from domain.profile_tree import combine

MEMBERS = ("C-1", "C-2", "C-3")


def recorded(n: int, kind: str, at: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    ix = validate_object(
        {
            "event_id": f"00000000-0000-4000-8000-{n:012d}",
            "type": kind,
            "occurred_at": at,
            "source": "pos-1",
            **fields,
        }
    )
    return ix.type, ix.payload


def bought(n: int, at: str, total: str, category: str) -> tuple[str, dict[str, Any]]:
    line = {"sku": f"s-{n}", "category": category, "quantity": 1, "unit_price": total}
    return recorded(
        n,
        "purchase",
        at,
        customer_id="C-1",
        store_id="S-1",
        order_id=f"O-{n}",
        currency="EUR",
        total=total,
        lines=[line],
    )


INTERACTIONS = [
    recorded(
        1,
        "customer_enrolled",
        "2026-01-02T10:00:00Z",
        customer_id="C-1",
        card_id="K-1",
        name="Ada",
        email="ada@old.example",
        marketing_consent=True,
    ),
    recorded(
        2,
        "customer_enrolled",
        "2026-02-02T10:00:00Z",
        customer_id="C-2",
        card_id="K-2",
        name="Ada L.",
        email="ada@new.example",
    ),
    recorded(3, "customer_enrolled", "2026-01-01T10:00:00Z", customer_id="C-3", card_id="K-3"),
    bought(4, "2026-03-01T10:00:00Z", "10.00", "toys"),
    bought(5, "2026-03-02T10:00:00+02:00", "2.50", "books"),
    bought(6, "2026-03-03T10:00:00Z", "7.25", "toys"),
    recorded(
        7, "survey_answered", "2026-03-04T10:00:00Z", customer_id="C-1", survey_id="S", score=9
    ),
    recorded(
        8, "survey_answered", "2026-03-05T10:00:00Z", customer_id="C-2", survey_id="S", score=3
    ),
    recorded(
        9, "consent_changed", "2026-03-06T10:00:00Z", customer_id="C-3", marketing_consent=False
    ),
    recorded(
        10,
        "card_replaced",
        "2026-03-07T10:00:00Z",
        customer_id="C-2",
        old_card_id="K-2",
        new_card_id="K-9",
    ),
    recorded(
        11,
        "note_added",
        "2026-03-08T10:00:00Z",
        customer_id="C-3",
        note_id="N-1",
        author="A",
        text="call back",
        stage="lead",
    ),
    recorded(
        12,
        "complaint_filed",
        "2026-03-09T10:00:00Z",
        customer_id="C-1",
        complaint_id="P-1",
        category="x",
        severity="low",
    ),
]


@settings(max_examples=150, deadline=None)
@given(
    st.permutations(INTERACTIONS),
    st.lists(st.sampled_from(MEMBERS), min_size=len(INTERACTIONS), max_size=len(INTERACTIONS)),
)
def test_any_order_and_any_split_among_the_tree_gives_one_profile(
    shuffled: list[tuple[str, dict[str, Any]]], owners: list[str]
) -> None:
    states = {m: new_state(m) for m in MEMBERS}
    for (kind, payload), owner in zip(shuffled, owners, strict=True):
        apply(states[owner], kind, payload)
    tree = render(combine("C-1", [states[m] for m in reversed(MEMBERS)]))
    alone = fold("C-1", INTERACTIONS)
    assert tree == {**alone, "merged_ids": ["C-2", "C-3"]}
    assert tree["cards"] == ["K-1", "K-3", "K-9"] and tree["retired_cards"] == ["K-2"]
    assert tree["enrolled_at"] == "2026-01-01T10:00:00Z" and tree["nps"] == 3


def test_the_merges_themselves_count_for_nobody() -> None:
    merge = recorded(
        20, "customers_merged", "2026-04-01T10:00:00Z", survivor_id="C-1", merged_id="C-2"
    )
    assert fold("C-1", [*INTERACTIONS, merge]) == fold("C-1", INTERACTIONS)


def test_a_merged_member_leaves_its_audiences_with_the_survivor_named() -> None:
    now = datetime(2026, 4, 1, tzinfo=UTC)
    row = Membership(
        audience="loyal",
        customer_id="C-2",
        member=True,
        since=now,
        reason="in",
        seq=1,
        tests="",
        next_flip=None,
        inputs=None,
    )
    rows, changes = on_profiles(
        [], {("loyal", "C-2"): row}, {}, {}, {}, (), now, None, {"C-2": "merged into C-1"}
    )
    assert [(r.member, r.reason) for r in rows] == [(False, "merged into C-1")]
    assert [(c.change, c.reason) for c in changes] == [("exited", "merged into C-1")]
