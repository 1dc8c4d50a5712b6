"""The customer profile fold (`domain.profile`) against contract section 5.

Payloads are made the way the ledger records them: producer objects passed through
`domain.interactions.validate_object`, so money is normalised text ("12.50") and times are
the producer's own RFC 3339 strings, offsets included.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.interactions import validate_object
from domain.profile import apply, fold, in_order, instant, new_state

_SEQUENCE = itertools.count(1)


def _event_id(n: int | None = None) -> str:
    return f"00000000-0000-4000-8000-{(next(_SEQUENCE) if n is None else n):012d}"


def recorded(kind: str, occurred_at: str, *, event_id: str | None = None, **fields: Any) -> Any:
    """(kind, payload) of one interaction as the ledger records it."""
    ix = validate_object(
        {
            "event_id": event_id or _event_id(),
            "type": kind,
            "occurred_at": occurred_at,
            "source": "pos-store-17",
            **fields,
        }
    )
    return (ix.type, ix.payload)


def line(category: str, quantity: int, unit_price: Any, sku: str = "sku-1") -> dict[str, Any]:
    return {"sku": sku, "category": category, "quantity": quantity, "unit_price": unit_price}


def bought(occurred_at: str, currency: str, total: Any, *lines: dict[str, Any], **ids: str) -> Any:
    return recorded(
        "purchase",
        occurred_at,
        **(ids or {"customer_id": "c-42"}),
        store_id="s-17",
        order_id=f"o-{next(_SEQUENCE)}",
        currency=currency,
        total=total,
        lines=list(lines),
    )


def note(occurred_at: str, **fields: Any) -> Any:
    return recorded(
        "note_added",
        occurred_at,
        customer_id="c-42",
        note_id=f"n-{next(_SEQUENCE)}",
        author="agent-7",
        text="asked about the loyalty tiers",
        **fields,
    )


# --- a hand-computed example ----------------------------------------------------------------

EXAMPLE = [
    # Three enrollments, two cards. The earliest (in a -01:00 offset) sets enrolled_at; the
    # latest gives email and birth_date; the middle one gives the latest name.
    recorded(
        "customer_enrolled",
        "2023-12-31T23:30:00-01:00",  # 2024-01-01T00:30:00Z
        customer_id="c-42",
        card_id="card-B",
        name="Ada King",
        email="ada@first.example",
        marketing_consent=True,
    ),
    recorded(
        "customer_enrolled",
        "2024-01-05T09:00:00+01:00",  # 2024-01-05T08:00:00Z
        customer_id="c-42",
        card_id="card-B",
        name="Ada Lovelace",
        marketing_consent=True,
    ),
    recorded(
        "customer_enrolled",
        "2024-03-01T12:00:00Z",
        customer_id="c-42",
        card_id="card-A",
        email="ada@new.example",
        birth_date="1990-12-10",
    ),  # consent defaults to false here
    # Consent: an older change (ignored), then the latest of all: true.
    recorded(
        "consent_changed", "2024-02-01T10:00:00Z", customer_id="c-42", marketing_consent=False
    ),
    recorded(
        "consent_changed",
        "2024-04-01T00:30:00+02:00",  # 2024-03-31T22:30:00Z, after the last enrollment
        customer_id="c-42",
        marketing_consent=True,
    ),
    # Purchases: EUR 35.00 + 40.00, USD 45.30 (written as JSON numbers and loose strings).
    bought(
        "2024-02-10T15:00:00+05:30",  # 09:30Z
        "EUR",
        "35.0",
        line("books", 2, "12.5"),
        line("toys", 1, 10),
    ),
    bought(
        "2024-05-20T18:45:00-04:00",  # 2024-05-20T22:45:00Z: the last purchase
        "USD",
        45.3,
        line("garden", 1, 40),
        line("books", 1, 5.3),
    ),
    bought(
        "2024-04-02T10:00:00Z",
        "EUR",
        "40",
        line("toys", 3, "5.00"),
        line("art", 1, "25"),
    ),
    # A swipe naming only a card still counts for the customer it is credited to.
    recorded("card_swiped", "2024-05-21T08:00:00+02:00", card_id="card-A", store_id="s-17"),
    recorded(
        "call",
        "2024-06-01T01:00:00+03:00",  # 2024-05-31T22:00:00Z: the last interaction
        customer_id="c-42",
        direction="inbound",
        duration_seconds=300,
        topic="billing",
    ),
    recorded(
        "call",
        "2024-01-10T10:00:00Z",
        customer_id="c-42",
        direction="outbound",
        duration_seconds=0,
        topic="welcome",
        agent_id="agent-7",
    ),
    recorded(
        "complaint_filed",
        "2024-02-11T10:00:00Z",
        customer_id="c-42",
        complaint_id="cmp-1",
        category="delivery",
        severity="high",
    ),
    recorded(
        "complaint_filed",
        "2024-02-12T10:00:00Z",
        customer_id="c-42",
        complaint_id="cmp-2",
        category="billing",
        severity="low",
    ),
    recorded(
        "complaint_resolved",
        "2024-02-13T10:00:00Z",
        customer_id="c-42",
        complaint_id="cmp-1",
        resolution="refunded",
    ),
    # NPS: two answers at the same instant in different offsets; the greater event_id wins.
    recorded(
        "survey_answered",
        "2024-05-01T12:00:00Z",
        event_id=_event_id(900),
        customer_id="c-42",
        survey_id="nps",
        score=9,
    ),
    recorded(
        "survey_answered",
        "2024-05-01T14:00:00+02:00",
        event_id=_event_id(901),
        customer_id="c-42",
        survey_id="nps",
        score=3,
    ),
    recorded(
        "survey_answered", "2024-04-01T12:00:00Z", customer_id="c-42", survey_id="nps", score=10
    ),
    # Returns: 2 toys of the EUR 40.00 order (2 x 5.00), and the USD garden line (40).
    recorded(
        "purchase_returned",
        "2024-04-03T10:00:00Z",
        customer_id="c-42",
        store_id="s-17",
        order_id="o-any",
        return_id="r-1",
        currency="EUR",
        total="10.00",
        lines=[line("toys", 2, "5.00")],
    ),
    recorded(
        "purchase_returned",
        "2024-05-22T10:00:00Z",
        card_id="card-A",
        store_id="s-17",
        order_id="o-any",
        return_id="r-2",
        currency="USD",
        total="40",
        lines=[line("garden", 1, 40)],
    ),
    # Notes: the latest (the last interaction too) gives no stage; of two at one instant,
    # the greater event_id's stage wins over an earlier note's.
    note("2024-03-10T10:00:00Z", stage="lead"),
    note("2024-06-02T09:00:00+02:00"),  # 2024-06-02T07:00:00Z
    note("2024-04-15T12:00:00Z", event_id=_event_id(911), stage="qualified"),
    note("2024-04-15T14:00:00+02:00", event_id=_event_id(910), stage="proposal"),
    # card-A lost and replaced by card-C: held now card-B and card-C; what named card-A
    # still counts (the fold is given what counts for the customer).
    recorded(
        "card_replaced",
        "2024-05-30T10:00:00Z",
        customer_id="c-42",
        old_card_id="card-A",
        new_card_id="card-C",
        reason="lost",
    ),
]

EXPECTED = {
    "customer_id": "c-42",
    "cards": ["card-B", "card-C"],
    "retired_cards": ["card-A"],
    "merged_ids": [],
    "enrolled_at": "2024-01-01T00:30:00Z",
    "name": "Ada Lovelace",
    "email": "ada@new.example",
    "birth_date": "1990-12-10",
    "marketing_consent": True,
    "interaction_count": 24,
    "swipe_count": 1,
    "purchase_count": 3,
    "call_count": 2,
    "total_spend": {"EUR": "75.00", "USD": "45.30"},
    "last_purchase_at": "2024-05-20T22:45:00Z",
    "last_interaction_at": "2024-06-02T07:00:00Z",
    # net of returns: books 25.00 + 5.30 = 30.30, art 25.00, toys 10 + 15 - 10 = 15.00,
    # garden 40.00 - 40.00 = 0 (not above zero: not ranked, still in categories)
    "top_categories": ["books", "art", "toys"],
    "categories": ["art", "books", "garden", "toys"],
    "complaints_total": 2,
    "complaints_open": 1,
    "nps": 3,
    "return_count": 2,
    "total_refunded": {"EUR": "10.00", "USD": "40.00"},
    "net_spend": {"EUR": "65.00", "USD": "5.30"},
    "notes_count": 4,
    "last_note_at": "2024-06-02T07:00:00Z",
    "stage": "qualified",
}


def test_the_profile_of_a_hand_computed_example_is_exact() -> None:
    assert fold("c-42", EXAMPLE) == EXPECTED


def test_the_profile_has_exactly_the_contract_fields() -> None:
    assert set(fold("c-42", EXAMPLE)) == set(EXPECTED)


def test_a_customer_with_no_interactions_has_an_empty_profile() -> None:
    assert fold("c-0", []) == {
        "customer_id": "c-0",
        "cards": [],
        "retired_cards": [],
        "merged_ids": [],
        "enrolled_at": None,
        "name": None,
        "email": None,
        "birth_date": None,
        "marketing_consent": False,
        "interaction_count": 0,
        "swipe_count": 0,
        "purchase_count": 0,
        "call_count": 0,
        "total_spend": {},
        "last_purchase_at": None,
        "last_interaction_at": None,
        "top_categories": [],
        "categories": [],
        "complaints_total": 0,
        "complaints_open": 0,
        "nps": None,
        "return_count": 0,
        "total_refunded": {},
        "net_spend": {},
        "notes_count": 0,
        "last_note_at": None,
        "stage": None,
    }


# --- single behaviours --------------------------------------------------------------------


def test_total_spend_is_a_two_place_decimal_string_per_currency() -> None:
    profile = fold(
        "c-42",
        [
            bought("2024-01-01T10:00:00Z", "EUR", 0.1, line("food", 1, 0.1)),
            bought("2024-01-02T10:00:00Z", "EUR", "0.2", line("food", 1, "0.20")),
            bought("2024-01-03T10:00:00Z", "JPY", 1500, line("food", 1, 1500)),
            bought("2024-01-04T10:00:00Z", "GBP", "0", line("gift", 1, "0.00")),
        ],
    )
    assert profile["total_spend"] == {"EUR": "0.30", "GBP": "0.00", "JPY": "1500.00"}


def test_top_categories_rank_spend_across_currencies_unconverted() -> None:
    profile = fold(
        "c-42",
        [
            bought("2024-01-01T10:00:00Z", "JPY", 900, line("sushi", 3, 300)),
            bought("2024-01-02T10:00:00Z", "EUR", "899.99", line("laptops", 1, "899.99")),
            bought("2024-01-03T10:00:00Z", "USD", 900, line("phones", 1, 900)),
            bought("2024-01-04T10:00:00Z", "EUR", 5, line("apps", 5, 1)),
        ],
    )
    assert profile["top_categories"] == ["phones", "sushi", "laptops"]
    assert profile["categories"] == ["apps", "laptops", "phones", "sushi"]


def test_top_categories_break_ties_by_name() -> None:
    profile = fold(
        "c-42",
        [
            bought(
                "2024-01-01T10:00:00Z",
                "EUR",
                "40.00",
                line("zines", 1, 10),
                line("art", 2, 5),
                line("music", 1, "10.0"),
                line("books", 4, "2.50"),
            )
        ],
    )
    assert profile["top_categories"] == ["art", "books", "music"]


def test_top_categories_rank_by_spend_not_by_number_of_purchases() -> None:
    profile = fold(
        "c-42",
        [
            bought("2024-01-01T10:00:00Z", "EUR", 1, line("candy", 1, 1)),
            bought("2024-01-02T10:00:00Z", "EUR", 1, line("candy", 1, 1)),
            bought("2024-01-03T10:00:00Z", "EUR", 1, line("candy", 1, 1)),
            bought("2024-01-04T10:00:00Z", "EUR", "9.99", line("wine", 1, "9.99")),
        ],
    )
    assert profile["top_categories"] == ["wine", "candy"]


def test_complaints_open_counts_filed_but_not_resolved() -> None:
    def filed(complaint_id: str) -> Any:
        return recorded(
            "complaint_filed",
            "2024-01-01T10:00:00Z",
            customer_id="c-42",
            complaint_id=complaint_id,
            category="delivery",
            severity="medium",
        )

    resolved = recorded(
        "complaint_resolved",
        "2024-01-02T10:00:00Z",
        customer_id="c-42",
        complaint_id="cmp-2",
        resolution="apologised",
        satisfied=False,
    )
    profile = fold("c-42", [filed("cmp-1"), filed("cmp-2"), filed("cmp-3"), resolved])
    assert (profile["complaints_total"], profile["complaints_open"]) == (3, 2)


def _survey(occurred_at: str, score: int, event_id: str) -> Any:
    return recorded(
        "survey_answered",
        occurred_at,
        event_id=event_id,
        customer_id="c-42",
        survey_id="nps",
        score=score,
    )


def test_nps_is_the_score_of_the_latest_answer_whatever_the_order_given() -> None:
    answers = [
        _survey("2024-03-01T10:00:00Z", 2, _event_id(3)),
        _survey("2024-03-01T10:00:01Z", 8, _event_id(1)),  # latest, smaller event_id
        _survey("2024-02-28T23:59:59-05:00", 6, _event_id(2)),  # 2024-02-29T04:59:59Z
    ]
    assert fold("c-42", answers)["nps"] == 8
    assert fold("c-42", answers[::-1])["nps"] == 8


def test_nps_ties_on_the_same_instant_go_to_the_greater_event_id() -> None:
    low = _survey("2024-03-01T10:00:00Z", 2, "10000000-0000-4000-8000-000000000000")
    high = _survey("2024-03-01T11:00:00+01:00", 7, "20000000-0000-4000-8000-000000000000")
    assert fold("c-42", [low, high])["nps"] == 7
    assert fold("c-42", [high, low])["nps"] == 7


def test_a_latest_wins_tie_is_decided_by_event_id_whatever_its_letter_case() -> None:
    # The same two UUIDs in any letter case are the same ids (the ledger lowercases the
    # idempotency key); the greater one, b..., must win the tie either way.
    smaller = _survey("2024-03-01T10:00:00Z", 2, "aaaaaaaa-0000-4000-8000-000000000000")
    greater = _survey("2024-03-01T10:00:00Z", 7, "BBBBBBBB-0000-4000-8000-000000000000")
    assert fold("c-42", [smaller, greater])["nps"] == 7


def _enrolled(occurred_at: str, card_id: str = "card-1", **fields: Any) -> Any:
    return recorded("customer_enrolled", occurred_at, customer_id="c-42", card_id=card_id, **fields)


def _consent(occurred_at: str, value: bool, event_id: str | None = None) -> Any:
    return recorded(
        "consent_changed",
        occurred_at,
        event_id=event_id,
        customer_id="c-42",
        marketing_consent=value,
    )


def test_marketing_consent_is_false_without_enrollment_or_consent_change() -> None:
    profile = fold(
        "c-42", [recorded("card_swiped", "2024-01-01T10:00:00Z", card_id="k", store_id="s")]
    )
    assert profile["marketing_consent"] is False


def test_a_later_enrollment_without_consent_withdraws_it() -> None:
    profile = fold(
        "c-42",
        [
            _consent("2024-01-01T10:00:00Z", True),
            _enrolled("2024-01-02T10:00:00Z"),  # marketing_consent defaults to false
        ],
    )
    assert profile["marketing_consent"] is False


def test_a_consent_change_older_than_the_enrollment_does_not_win() -> None:
    profile = fold(
        "c-42",
        [
            _enrolled("2024-01-02T10:00:00Z", marketing_consent=True),
            _consent("2024-01-01T10:00:00Z", False),
        ],
    )
    assert profile["marketing_consent"] is True


def test_consent_ties_between_enrollment_and_change_go_to_the_greater_event_id() -> None:
    enrollment = recorded(
        "customer_enrolled",
        "2024-01-01T10:00:00Z",
        event_id="ffffffff-0000-4000-8000-000000000000",
        customer_id="c-42",
        card_id="card-1",
        marketing_consent=True,
    )
    change = _consent("2024-01-01T12:00:00+02:00", False, "00000000-0000-4000-8000-0000000000ff")
    assert fold("c-42", [enrollment, change])["marketing_consent"] is True
    assert fold("c-42", [change, enrollment])["marketing_consent"] is True


def test_personal_fields_come_from_the_latest_enrollment_that_gave_each() -> None:
    profile = fold(
        "c-42",
        [
            _enrolled("2024-03-01T10:00:00Z", name="Late Name"),
            _enrolled("2024-01-01T10:00:00Z", name="Early Name", email="early@example.com"),
            _enrolled("2024-02-01T10:00:00Z", birth_date="1985-07-04", email="mid@example.com"),
        ],
    )
    assert (profile["name"], profile["email"], profile["birth_date"]) == (
        "Late Name",
        "mid@example.com",
        "1985-07-04",
    )


def test_enrolled_at_is_the_earliest_enrollment_in_utc() -> None:
    profile = fold(
        "c-42",
        [
            _enrolled("2024-01-01T10:00:00Z", "card-2"),
            _enrolled("2024-01-01T09:00:00-02:00", "card-1"),  # 11:00Z: later
            _enrolled("2024-01-01T11:59:00+03:00", "card-3"),  # 08:59Z: earliest
        ],
    )
    assert profile["enrolled_at"] == "2024-01-01T08:59:00Z"
    assert profile["cards"] == ["card-1", "card-2", "card-3"]


def test_a_card_enrolled_twice_is_listed_once() -> None:
    profile = fold("c-42", [_enrolled("2024-01-01T10:00:00Z"), _enrolled("2024-02-01T10:00:00Z")])
    assert profile["cards"] == ["card-1"]


def test_times_in_other_offsets_are_given_in_utc_with_z() -> None:
    profile = fold(
        "c-42",
        [
            bought("2024-12-31T23:30:00-05:00", "EUR", 1, line("food", 1, 1)),
            recorded("card_swiped", "2025-01-01T10:15:00+05:30", card_id="k", store_id="s"),
        ],
    )
    assert profile["last_purchase_at"] == "2025-01-01T04:30:00Z"
    assert profile["last_interaction_at"] == "2025-01-01T04:45:00Z"


def test_last_interaction_at_compares_instants_not_local_times() -> None:
    profile = fold(
        "c-42",
        [
            recorded("card_swiped", "2024-06-01T09:00:00+05:00", card_id="k", store_id="s"),
            recorded("card_swiped", "2024-06-01T05:00:00Z", card_id="k", store_id="s"),
        ],
    )
    assert profile["last_interaction_at"] == "2024-06-01T05:00:00Z"


def test_a_time_written_with_lowercase_t_and_z_folds_like_its_uppercase_form() -> None:
    # RFC 3339 allows "t" and "z", and validation accepts them.
    lower = recorded("card_swiped", "2024-06-01t05:00:00z", card_id="k", store_id="s")
    profile = fold("c-42", [lower])
    assert profile["last_interaction_at"] == "2024-06-01T05:00:00Z"


def test_times_before_the_year_1000_sort_and_render_as_rfc3339() -> None:
    profile = fold(
        "c-42",
        [
            _enrolled("0999-01-01T00:00:00Z", "card-1"),
            _enrolled("2024-01-01T00:00:00Z", "card-2"),
        ],
    )
    assert profile["enrolled_at"] == "0999-01-01T00:00:00Z"
    assert profile["last_interaction_at"] == "2024-01-01T00:00:00Z"


def test_total_spend_is_exact_for_the_largest_amounts() -> None:
    amount = "999999999999999.99"  # the largest valid money: below 10**15, 2 places
    purchases = [
        bought("2024-01-01T10:00:00Z", "EUR", amount, line("gold", 1, amount)) for _ in range(3)
    ]
    profile = fold("c-42", purchases)
    assert profile["total_spend"] == {"EUR": "2999999999999999.97"}  # floats would round


def test_every_type_counts_as_an_interaction() -> None:
    interactions = [
        _enrolled("2024-01-01T10:00:00Z"),
        _consent("2024-01-01T10:00:00Z", True),
        recorded("card_swiped", "2024-01-01T10:00:00Z", card_id="card-1", store_id="s"),
        bought("2024-01-01T10:00:00Z", "EUR", 1, line("food", 1, 1), card_id="card-1"),
        recorded(
            "call",
            "2024-01-01T10:00:00Z",
            customer_id="c-42",
            direction="inbound",
            duration_seconds=1,
            topic="x",
        ),
        _survey("2024-01-01T10:00:00Z", 5, _event_id()),
    ]
    profile = fold("c-42", interactions)
    assert profile["interaction_count"] == 6
    assert (profile["swipe_count"], profile["purchase_count"], profile["call_count"]) == (1, 1, 1)


# --- order of arrival never changes a profile -----------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(EXAMPLE))
def test_any_order_of_the_example_gives_the_same_profile(shuffled: list[Any]) -> None:
    assert fold("c-42", shuffled) == EXPECTED


# A few instants written in several offsets, so that ties on occurred_at are frequent.
_INSTANTS = [
    ("2024-01-01T10:00:00Z", "2024-01-01T12:00:00+02:00", "2024-01-01T05:00:00-05:00"),
    ("2024-01-01T10:00:01Z", "2024-01-01T10:00:01+00:00", "2024-01-01T15:30:01+05:30"),
    ("2024-02-29T23:59:59Z", "2024-03-01T00:59:59+01:00", "2024-02-29T23:59:59-00:00"),
    ("2024-03-01T00:00:00.5Z", "2024-03-01T01:00:00.500+01:00", "2024-03-01T00:00:00.50Z"),
]
_TIMES = st.sampled_from(_INSTANTS).flatmap(st.sampled_from)
_MONEY = st.one_of(
    st.decimals(min_value=0, max_value=10_000, places=2).map(str),
    st.integers(min_value=0, max_value=10_000),
)
_CATEGORIES = st.sampled_from(["art", "books", "food", "garden", "toys"])


@st.composite
def _interaction(draw: st.DrawFn, event_id: str) -> Any:
    at = draw(_TIMES)
    kind = draw(
        st.sampled_from(
            [
                "customer_enrolled",
                "consent_changed",
                "purchase",
                "card_swiped",
                "call",
                "survey_answered",
                "complaint_filed",
            ]
        )
    )
    ids = {"event_id": event_id}
    if kind == "customer_enrolled":
        optional = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.sampled_from(["Ada", "Grace", "Edsger"]),
                    "email": st.sampled_from(["a@x.example", "b@y.example"]),
                    "birth_date": st.sampled_from(["1990-01-01", "1980-02-29"]),
                    "marketing_consent": st.booleans(),
                },
            )
        )
        card = draw(st.sampled_from(["card-1", "card-2", "card-3"]))
        return recorded(kind, at, **ids, customer_id="c-42", card_id=card, **optional)
    if kind == "consent_changed":
        return recorded(kind, at, **ids, customer_id="c-42", marketing_consent=draw(st.booleans()))
    if kind == "purchase":
        lines = draw(
            st.lists(
                st.builds(line, _CATEGORIES, st.integers(1, 5), _MONEY), min_size=1, max_size=3
            )
        )
        total = str(sum(int(ln["quantity"]) * _decimal(ln["unit_price"]) for ln in lines))
        currency = draw(st.sampled_from(["EUR", "USD"]))
        return recorded(
            kind,
            at,
            **ids,
            customer_id="c-42",
            store_id="s",
            order_id="o",
            currency=currency,
            total=total,
            lines=lines,
        )
    if kind == "card_swiped":
        return recorded(kind, at, **ids, card_id="card-1", store_id="s")
    if kind == "call":
        return recorded(
            kind,
            at,
            **ids,
            customer_id="c-42",
            direction="inbound",
            duration_seconds=draw(st.integers(0, 999)),
            topic="t",
        )
    if kind == "survey_answered":
        return recorded(
            kind, at, **ids, customer_id="c-42", survey_id="s", score=draw(st.integers(0, 10))
        )
    return recorded(
        kind,
        at,
        **ids,
        customer_id="c-42",
        complaint_id=event_id,
        category="delivery",
        severity="low",
    )


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


@st.composite
def _histories(draw: st.DrawFn) -> list[Any]:
    ids = draw(st.lists(st.uuids(), min_size=0, max_size=14, unique=True))
    return [draw(_interaction(str(event_id))) for event_id in ids]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_order_of_the_same_interactions_gives_the_identical_profile(
    data: st.DataObject,
) -> None:
    history = data.draw(_histories())
    shuffled = data.draw(st.permutations(history))
    assert fold("c-42", shuffled) == fold("c-42", history)


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-11-02T10:11:12Z",  # the fast path: whole seconds in UTC
        "2024-02-29T23:59:59Z",
        "2026-11-02t10:11:12z",
        "2026-11-02T10:11:12+02:00",
        "2026-11-02T10:11:12.5Z",
        "2026-W45-1T10:11:12Z",  # twenty characters, but not the fast path's form
    ],
)
def test_instant_keys_every_form_as_the_parser_reads_it(occurred_at: str) -> None:
    moment = datetime.fromisoformat(occurred_at.upper()).astimezone(UTC)
    assert instant(occurred_at) == moment.replace(tzinfo=None).isoformat("T", "microseconds") + "Z"


@pytest.mark.parametrize("occurred_at", ["2026-02-30T10:11:12Z", "2026-11-02T25:11:12Z"])
def test_instant_refuses_a_time_that_does_not_exist(occurred_at: str) -> None:
    with pytest.raises(ValueError):
        instant(occurred_at)


def test_a_profile_stored_before_returns_and_notes_shows_them_empty() -> None:
    new = ("return_count", "total_refunded", "net_spend", "notes_count", "last_note_at", "stage")
    stored = {k: v for k, v in fold("c-42", EXAMPLE[:6]).items() if k not in new}
    shown = in_order(stored)
    assert list(shown) == list(EXPECTED)
    assert (shown["return_count"], shown["total_refunded"], shown["notes_count"]) == (0, {}, 0)
    assert shown["net_spend"] == shown["total_spend"] == {"EUR": "35.00"}


def test_a_state_folded_before_returns_and_notes_equals_one_folded_afresh() -> None:
    """A rebuild starts from `new_state`; a live state stored before section 8 has none of
    its keys: without a return or a note the two must be equal (`ledger verify`)."""
    state = new_state("c-42")
    for kind, payload in EXAMPLE[:3]:
        apply(state, kind, payload)
    assert not {"return_count", "refunded", "notes_count", "stage"} & set(state)
