"""The audience condition language (`domain.conditions`) against contract section 5.

Pure: nodes are built by hand and evaluated against dict profiles at fixed clock times.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.conditions import All, Any_, Node, Not, Outcome
from domain.conditions import Test as FieldTest  # not "Test*": pytest would collect it
from domain.profile import FIELD_KINDS

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)

PROFILE: dict[str, Any] = {
    "customer_id": "c-1",
    "cards": ["k-1", "k-2"],
    "enrolled_at": "2024-01-10T09:30:00Z",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "birth_date": "1990-02-14",
    "marketing_consent": True,
    "purchase_count": 3,
    "total_spend": {"EUR": "1000.00", "USD": "999.99"},
    "last_purchase_at": "2024-06-01T08:00:00Z",
    "top_categories": ["grocery", "bakery"],
    "categories": ["bakery", "grocery"],
    "complaints_open": 0,
    "nps": None,
}


def kind_of(field: str) -> str:
    """The kind the loader gives a test's field (`any` for the made-up ones used here)."""
    head, _, part = field.partition(".")
    kind = FIELD_KINDS.get(head, "any")
    return "number" if kind == "money" and part else kind


def run(field: str, op: str, value: Any, profile: dict[str, Any], now: datetime = NOW) -> Outcome:
    return FieldTest(field, op, value, kind_of(field)).evaluate(profile, now, [])


def holds(field: str, op: str, value: Any, profile: dict[str, Any] = PROFILE) -> bool:
    return run(field, op, value, profile)[0]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- every operator, true and false ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("purchase_count", "==", 3, True),
        ("purchase_count", "==", 4, False),
        ("name", "==", "Ada Lovelace", True),
        ("name", "==", "Grace Hopper", False),
        ("purchase_count", "!=", 4, True),
        ("purchase_count", "!=", 3, False),
        ("purchase_count", "<", 4, True),
        ("purchase_count", "<", 3, False),
        ("purchase_count", "<=", 3, True),
        ("purchase_count", "<=", 2, False),
        ("purchase_count", ">", 2, True),
        ("purchase_count", ">", 3, False),
        ("purchase_count", ">=", 3, True),
        ("purchase_count", ">=", 4, False),
        ("purchase_count", ">=", 2.5, True),
        ("name", "<", "Bob", True),
        ("name", ">", "Bob", False),
    ],
)
def test_comparison_operators(field: str, op: str, value: Any, expected: bool) -> None:
    assert holds(field, op, value) is expected


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("total_spend.EUR", ">=", 1000, True),  # "1000.00"
        ("total_spend.USD", ">=", 1000, False),  # "999.99"
        ("total_spend.USD", "<", 1000, True),
        ("total_spend.EUR", "==", 1000, True),
        ("total_spend.EUR", "==", "1000", True),
        ("total_spend.EUR", ">", 999.99, True),
        ("total_spend.USD", "==", 999.99, True),
        ("total_spend.USD", "!=", "999.990", False),
    ],
)
def test_decimal_strings_compare_as_numbers(
    field: str, op: str, value: Any, expected: bool
) -> None:
    assert holds(field, op, value) is expected


def test_dotted_paths_reach_into_a_nested_table() -> None:
    profile = {"total_spend": {"EUR": "12.50"}}
    assert holds("total_spend.EUR", "==", 12.5, profile)
    assert not holds("total_spend.GBP", ">=", 0, profile)
    assert not holds("total_spend.EUR.cents", ">=", 0, profile)  # a path through a string
    assert not holds("total_spend.EUR", ">=", 0, {"total_spend": None})


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("purchase_count", [1, 3, 5], True),
        ("purchase_count", [1, 2], False),
        ("name", ["Grace Hopper", "Ada Lovelace"], True),
        ("name", ["Grace Hopper"], False),
        ("total_spend.EUR", [500, 1000], True),
        ("birth_date", [date(1990, 2, 14), date(1991, 1, 1)], True),
    ],
)
def test_in_a_list(field: str, value: list[Any], expected: bool) -> None:
    assert holds(field, "in", value) is expected


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("categories", "bakery", True),
        ("categories", "toys", False),
        ("categories", "bake", False),  # an element, not a substring of one
        ("email", "@example.", True),
        ("email", "@other.", False),
        ("name", "Love", True),
        ("total_spend", "EUR", True),
        ("total_spend", "GBP", False),
    ],
)
def test_contains_on_lists_and_strings(field: str, value: str, expected: bool) -> None:
    assert holds(field, "contains", value) is expected


def test_contains_on_an_empty_list_is_false() -> None:
    assert not holds("categories", "contains", "bakery", {"categories": []})


def test_bool_equality() -> None:
    assert holds("marketing_consent", "==", True)
    assert not holds("marketing_consent", "==", False)
    assert holds("marketing_consent", "!=", False)
    assert holds("marketing_consent", "==", False, {"marketing_consent": False})


def test_exists() -> None:
    assert holds("email", "exists", True)
    assert not holds("email", "exists", False)
    assert not holds("nps", "exists", True)  # null
    assert holds("nps", "exists", False)
    assert not holds("no_such_field", "exists", True)  # missing
    assert holds("no_such_field", "exists", False)
    assert holds("total_spend.EUR", "exists", True)
    assert not holds("total_spend.GBP", "exists", True)
    assert holds("total_spend.GBP", "exists", False)
    assert holds("categories", "exists", True, {"categories": []})  # empty is not missing


CASES_FOR_EVERY_OPERATOR = [
    ("==", 1),
    ("!=", 1),
    ("<", 1),
    ("<=", 1),
    (">", 1),
    (">=", 1),
    ("in", [1, 2]),
    ("contains", "x"),
    ("within_days", 30),
    ("older_than_days", 30),
    ("month_is", "current"),
    ("month_is", 6),
    ("day_of_year_within", 7),
]


@pytest.mark.parametrize(("op", "value"), CASES_FOR_EVERY_OPERATOR)
@pytest.mark.parametrize("field", ["nps", "no_such_field", "total_spend.GBP"])
def test_a_missing_or_null_field_is_false_with_no_flip(field: str, op: str, value: Any) -> None:
    assert run(field, op, value, PROFILE) == (False, None)


@pytest.mark.parametrize(
    ("field", "op", "value"),
    [
        ("name", "<", 5),
        ("name", "==", 5),
        ("purchase_count", "==", "three"),
        ("purchase_count", "<", "three"),
        ("purchase_count", "!=", "three"),
        ("marketing_consent", "==", 1),
        ("purchase_count", "==", True),
        ("purchase_count", ">", False),
        ("categories", "==", "bakery"),
        ("categories", ">", 1),
        ("categories", "in", ["bakery"]),
        ("total_spend", ">=", 0),
        ("purchase_count", "contains", 3),
        ("name", "contains", 3),
        ("enrolled_at", "<", 5),
        ("purchase_count", "<", date(2024, 1, 1)),
        ("name", ">=", date(2024, 1, 1)),
        ("name", "within_days", 3),
        ("purchase_count", "older_than_days", 3),
        ("marketing_consent", "month_is", "current"),
        ("categories", "day_of_year_within", 3),
        ("enrolled_at", "==", True),
    ],
)
def test_a_type_mismatch_is_false_never_an_exception(field: str, op: str, value: Any) -> None:
    assert run(field, op, value, PROFILE) == (False, None)


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("enrolled_at", ">=", date(2024, 1, 1), True),
        ("enrolled_at", ">=", date(2024, 1, 11), False),
        ("enrolled_at", "<", date(2024, 1, 10), False),  # midnight UTC of that day
        ("enrolled_at", "<", datetime(2024, 1, 10, 10, 0, tzinfo=UTC), True),
        ("enrolled_at", "==", datetime(2024, 1, 10, 9, 30, tzinfo=UTC), True),
        ("enrolled_at", "==", datetime(2024, 1, 10, 9, 30), True),  # a local datetime is UTC
        # 11:00+02:00 is 09:00Z, before 09:30Z
        (
            "enrolled_at",
            "<",
            datetime(2024, 1, 10, 11, 0, tzinfo=timezone(timedelta(hours=2))),
            False,
        ),
        (
            "enrolled_at",
            ">",
            datetime(2024, 1, 10, 11, 0, tzinfo=timezone(timedelta(hours=2))),
            True,
        ),
        ("birth_date", "==", date(1990, 2, 14), True),
        ("birth_date", "<", date(2000, 1, 1), True),
        ("birth_date", ">", date(2000, 1, 1), False),
        ("birth_date", "<=", datetime(1990, 2, 14, 0, 0, tzinfo=UTC), True),
    ],
)
def test_comparing_a_time_field_with_a_toml_date_or_datetime(
    field: str, op: str, value: Any, expected: bool
) -> None:
    assert holds(field, op, value) is expected


def test_profile_times_with_offsets_or_lower_case_letters_are_read_as_times() -> None:
    assert holds(
        "enrolled_at", "==", date(2024, 1, 10), {"enrolled_at": "2024-01-10t02:00:00+02:00"}
    )
    assert holds("enrolled_at", "==", date(2024, 1, 10), {"enrolled_at": "2024-01-10T00:00:00z"})


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        # 11:00Z is 13:00+02:00: later than 12:00+02:00, so not "<"
        ("<", "2024-06-01T12:00:00+02:00", False),
        # the same instant written with +00:00 instead of Z
        ("==", "2024-06-01T11:00:00+00:00", True),
        # the same instant, "<=" itself
        ("<=", "2024-06-01T11:00:00+00:00", True),
    ],
)
def test_comparing_a_time_field_with_an_rfc3339_string_value(
    op: str, value: str, expected: bool
) -> None:
    assert holds("enrolled_at", op, value, {"enrolled_at": "2024-06-01T11:00:00Z"}) is expected


@pytest.mark.parametrize(("actual", "op", "value"), [("007", "==", "7"), ("1e2", "in", ["100"])])
def test_text_fields_that_look_numeric_compare_as_text(actual: str, op: str, value: Any) -> None:
    assert not holds("customer_id", op, value, {"customer_id": actual})


# --- the clock ------------------------------------------------------------------------------


def test_within_days_holds_from_now_minus_n_to_now_both_ends_included() -> None:
    assert run("t", "within_days", 10, {"t": rfc3339(NOW)})[0]
    assert run("t", "within_days", 10, {"t": rfc3339(NOW - timedelta(days=10))})[0]
    assert run("t", "within_days", 10, {"t": rfc3339(NOW - timedelta(days=10) - TICK)}) == (
        False,
        None,
    )
    assert run("t", "within_days", 0, {"t": rfc3339(NOW)})[0]


def test_within_days_flips_right_after_t_plus_n() -> None:
    t = NOW - timedelta(days=3, hours=5)
    profile = {"t": rfc3339(t)}
    held, flip = run("t", "within_days", 10, profile)
    assert held
    assert flip is not None
    end = t + timedelta(days=10)
    assert end < flip <= end + timedelta(seconds=1)
    assert run("t", "within_days", 10, profile, end)[0]
    assert not run("t", "within_days", 10, profile, flip)[0]


def test_within_days_of_a_future_time_is_false_until_that_time() -> None:
    t = NOW + timedelta(hours=1)
    profile = {"t": rfc3339(t)}
    assert run("t", "within_days", 10, profile) == (False, t)
    assert run("t", "within_days", 10, profile, t)[0]


def test_within_days_on_a_date_field_counts_from_midnight_utc() -> None:
    # NOW is 15 June 12:00: 5 June 00:00 is 10.5 days back, 6 June 00:00 is 9.5
    assert not run("d", "within_days", 10, {"d": "2024-06-05"})[0]
    assert run("d", "within_days", 10, {"d": "2024-06-06"})[0]


def test_older_than_days_is_strict() -> None:
    edge = NOW - timedelta(days=90)
    held, flip = run("t", "older_than_days", 90, {"t": rfc3339(edge)})
    assert not held
    assert flip is not None and NOW < flip <= NOW + timedelta(seconds=1)
    assert run("t", "older_than_days", 90, {"t": rfc3339(edge)}, flip)[0]
    assert run("t", "older_than_days", 90, {"t": rfc3339(edge - TICK)}) == (True, None)


def test_older_than_days_of_a_recent_time_flips_after_t_plus_n() -> None:
    t = NOW - timedelta(days=1)
    held, flip = run("t", "older_than_days", 90, {"t": rfc3339(t)})
    assert not held
    end = t + timedelta(days=90)
    assert flip is not None and end < flip <= end + timedelta(seconds=1)
    assert not run("t", "older_than_days", 90, {"t": rfc3339(t)}, end)[0]


def test_month_is_a_fixed_month_has_no_flip() -> None:
    assert run("birth_date", "month_is", 2, PROFILE) == (True, None)
    assert run("birth_date", "month_is", 3, PROFILE) == (False, None)
    assert run("enrolled_at", "month_is", 1, PROFILE) == (True, None)


@pytest.mark.parametrize(
    ("birth", "now", "expected"),
    [
        (
            "1990-02-14",
            datetime(2024, 2, 10, 8, 0, tzinfo=UTC),
            (True, datetime(2024, 3, 1, tzinfo=UTC)),
        ),
        ("1990-12-01", datetime(2023, 12, 5, tzinfo=UTC), (True, datetime(2024, 1, 1, tzinfo=UTC))),
        (
            "1990-01-20",
            datetime(2023, 12, 5, tzinfo=UTC),
            (False, datetime(2024, 1, 1, tzinfo=UTC)),
        ),
        ("1990-02-14", datetime(2024, 3, 1, tzinfo=UTC), (False, datetime(2025, 2, 1, tzinfo=UTC))),
        (
            "1990-07-04",
            datetime(2024, 3, 31, 23, 59, tzinfo=UTC),
            (False, datetime(2024, 7, 1, tzinfo=UTC)),
        ),
        ("1992-02-29", datetime(2023, 2, 28, tzinfo=UTC), (True, datetime(2023, 3, 1, tzinfo=UTC))),
    ],
)
def test_month_is_current(birth: str, now: datetime, expected: Outcome) -> None:
    assert run("birth_date", "month_is", "current", {"birth_date": birth}, now) == expected


def test_month_is_current_uses_the_utc_month_of_a_time() -> None:
    # 23:30 on 31 January at -02:00 is 1 February UTC
    profile = {"enrolled_at": "2024-01-31T23:30:00-02:00"}
    assert run("enrolled_at", "month_is", "current", profile, datetime(2024, 2, 5, tzinfo=UTC))[0]


def midnight(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


@pytest.mark.parametrize(
    ("anniversary_of", "now", "days", "expected"),
    [
        # year wrap: Dec 30 now, anniversary Jan 3 (4 days ahead)
        (
            "2020-01-03T10:00:00Z",
            midnight(2023, 12, 30) + timedelta(hours=12),
            7,
            (True, midnight(2024, 1, 4)),
        ),
        (
            "2020-01-03T10:00:00Z",
            midnight(2023, 12, 30) + timedelta(hours=12),
            4,
            (True, midnight(2024, 1, 4)),
        ),
        (
            "2020-01-03T10:00:00Z",
            midnight(2023, 12, 30) + timedelta(hours=12),
            3,
            (False, midnight(2023, 12, 31)),
        ),
        # the anniversary itself, with 0 days ahead
        ("2020-06-15", NOW, 0, (True, midnight(2024, 6, 16))),
        # yesterday's anniversary is a year away
        ("2020-06-14", NOW, 7, (False, midnight(2025, 6, 7))),
        ("2020-06-22", NOW, 7, (True, midnight(2024, 6, 23))),
        ("2020-06-23", NOW, 7, (False, midnight(2024, 6, 16))),
    ],
)
def test_day_of_year_within(
    anniversary_of: str, now: datetime, days: int, expected: Outcome
) -> None:
    assert run("d", "day_of_year_within", days, {"d": anniversary_of}, now) == expected


@pytest.mark.parametrize(
    ("now", "days", "expected"),
    [
        # common years: the 29th falls on the 28th
        (midnight(2023, 2, 28), 0, (True, midnight(2023, 3, 1))),
        (midnight(2023, 2, 27), 0, (False, midnight(2023, 2, 28))),
        (midnight(2023, 2, 21), 7, (True, midnight(2023, 3, 1))),
        (midnight(2023, 3, 1), 0, (False, midnight(2024, 2, 29))),
        # leap years: the 29th itself
        (midnight(2024, 2, 28), 0, (False, midnight(2024, 2, 29))),
        (midnight(2024, 2, 29), 0, (True, midnight(2024, 3, 1))),
        (midnight(2024, 3, 1), 0, (False, midnight(2025, 2, 28))),
        # 1 March 2023 to 29 February 2024 is 365 days
        (midnight(2023, 3, 1), 365, (True, midnight(2024, 3, 1))),
    ],
)
def test_day_of_year_within_a_29_february_birthday(
    now: datetime, days: int, expected: Outcome
) -> None:
    assert (
        run("birth_date", "day_of_year_within", days, {"birth_date": "1992-02-29"}, now) == expected
    )


# --- composites -------------------------------------------------------------------------------

RECENT = FieldTest("t", "within_days", 10)  # true at NOW, flips at t + 10 days
SOON = FieldTest("u", "within_days", 10)  # false at NOW, flips at u (a future time)
CONSENT = FieldTest("marketing_consent", "==", True)
NO_CONSENT = FieldTest("marketing_consent", "==", False)
CLOCKS = {
    "t": rfc3339(NOW - timedelta(days=5)),
    "u": rfc3339(NOW + timedelta(days=2)),
    "marketing_consent": True,
}


def evaluate(node: Node, profile: dict[str, Any] = CLOCKS, now: datetime = NOW) -> Outcome:
    return node.evaluate(profile, now, [])


def test_all_holds_when_every_child_holds_and_flips_at_the_earliest_child_flip() -> None:
    t_flip = evaluate(RECENT)[1]
    assert t_flip is not None
    assert evaluate(All((RECENT, CONSENT))) == (True, t_flip)
    assert evaluate(All((RECENT, SOON))) == (False, NOW + timedelta(days=2))


def test_all_is_settled_by_a_lasting_false_child() -> None:
    assert evaluate(All((RECENT, SOON, NO_CONSENT))) == (False, None)


def test_any_holds_when_a_child_holds_and_is_settled_by_a_lasting_true_child() -> None:
    assert evaluate(Any_((SOON, NO_CONSENT))) == (False, NOW + timedelta(days=2))
    assert evaluate(Any_((RECENT, NO_CONSENT)))[0]
    assert evaluate(Any_((RECENT, SOON, CONSENT))) == (True, None)
    assert evaluate(Any_((NO_CONSENT,))) == (False, None)


def test_not_inverts_and_keeps_the_flip() -> None:
    held, flip = evaluate(RECENT)
    assert evaluate(Not(RECENT)) == (not held, flip)
    assert evaluate(Not(NO_CONSENT)) == (True, None)
    assert evaluate(Not(FieldTest("nps", "<=", 6))) == (True, None)  # missing: the test is false


def test_every_test_appends_its_answer_in_source_order() -> None:
    tree = All((CONSENT, Not(NO_CONSENT), Any_((SOON, RECENT)), FieldTest("nps", "exists", True)))
    bits: list[bool] = []
    tree.evaluate(CLOCKS, NOW, bits)
    assert bits == [True, False, False, True, False]


# --- property: the flip is never late -----------------------------------------------------------

FIELDS = ("a", "b", "c")
_moments = st.datetimes(
    min_value=datetime(2019, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
_days = st.dates(min_value=date(1960, 1, 1), max_value=date(2030, 12, 31))
_field_values = st.one_of(_moments.map(rfc3339), _days.map(date.isoformat))
_clock_tests = st.one_of(
    st.builds(
        FieldTest,
        st.sampled_from(FIELDS),
        st.sampled_from(["within_days", "older_than_days"]),
        st.one_of(st.integers(0, 400), st.floats(0, 400, allow_nan=False)),
    ),
    st.builds(
        FieldTest,
        st.sampled_from(FIELDS),
        st.just("month_is"),
        st.one_of(st.just("current"), st.integers(1, 12)),
    ),
    st.builds(
        FieldTest, st.sampled_from(FIELDS), st.just("day_of_year_within"), st.integers(0, 366)
    ),
)
_static_tests = st.builds(FieldTest, st.just("flag"), st.sampled_from(["==", "!="]), st.booleans())
_trees = st.recursive(
    st.one_of(_clock_tests, _static_tests),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: All(tuple(c))),
        st.lists(children, min_size=1, max_size=3).map(lambda c: Any_(tuple(c))),
        children.map(Not),
    ),
    max_leaves=6,
)
_profiles = st.fixed_dictionaries(
    {name: st.one_of(st.none(), _field_values) for name in FIELDS} | {"flag": st.booleans()}
)


def check_never_late(node: Node, profile: dict[str, Any], now: datetime, fraction: float) -> None:
    held, flip = evaluate(node, profile, now)
    if flip is None:
        # only a profile change can change the answer: any later time gives the same one
        for later in (now + timedelta(days=400 * fraction), now + timedelta(days=3000)):
            assert evaluate(node, profile, later)[0] is held
        return
    assert flip > now
    inside = now + (flip - now) * fraction
    if now < inside < flip:
        assert evaluate(node, profile, inside)[0] is held, inside
    if flip - TICK > now:
        assert evaluate(node, profile, flip - TICK)[0] is held, flip - TICK


@settings(max_examples=400, deadline=None)
@given(
    test=_clock_tests,
    profile=_profiles,
    now=_moments,
    fraction=st.floats(0.0, 1.0, exclude_min=True, exclude_max=True),
)
def test_a_clock_test_flip_is_never_late(
    test: FieldTest, profile: dict[str, Any], now: datetime, fraction: float
) -> None:
    check_never_late(test, profile, now, fraction)


@settings(max_examples=400, deadline=None)
@given(
    tree=_trees,
    profile=_profiles,
    now=_moments,
    fraction=st.floats(0.0, 1.0, exclude_min=True, exclude_max=True),
)
def test_a_combination_flip_is_never_late(
    tree: Node, profile: dict[str, Any], now: datetime, fraction: float
) -> None:
    check_never_late(tree, profile, now, fraction)


@settings(max_examples=200, deadline=None)
@given(anniversary=_days, now=_moments, days=st.integers(0, 366))
def test_day_of_year_within_flips_exactly_when_the_answer_changes(
    anniversary: date, now: datetime, days: int
) -> None:
    """A sharper check for the day-based operator: its flip is the first midnight at which
    the answer differs (so it is neither late nor needlessly early)."""
    test = FieldTest("d", "day_of_year_within", days)
    profile = {"d": anniversary.isoformat()}
    held, flip = evaluate(test, profile, now)
    assert flip is not None
    assert evaluate(test, profile, flip)[0] is not held or days >= 364


def test_a_time_at_the_calendars_end_never_flips_instead_of_overflowing() -> None:
    """A purchase at 9999-10-02T23:59:59.999999Z is valid; 90 days later is past year 9999,
    and the next evaluation time past it: never, rather than a projection stopped for ever."""
    from datetime import UTC, datetime

    from domain.clock_tests import older_than_days

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert older_than_days("9999-10-02T23:59:59.999999Z", 90, now) == (False, None)
    assert older_than_days("9999-09-30T00:00:00Z", 90, now)[0] is False
