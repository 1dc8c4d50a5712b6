"""Audience definitions (`domain.audiences`): loading the TOML file, evaluating an audience,
and the membership step, against contract section 5 (Campaign audiences).

Pure: definitions are given as text; the built-in file is read from the package.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest

from domain.audiences import Audience, AudienceFileError, load_audiences
from domain.membership import Membership, step

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
BUILTIN = resources.files("ledger").joinpath("audiences.toml").read_text("utf-8")


def builtin() -> dict[str, Audience]:
    return {audience.name: audience for audience in load_audiences(BUILTIN, "built-in")}


def profile(**fields: Any) -> dict[str, Any]:
    """A profile of contract section 5, empty but for `fields`."""
    document: dict[str, Any] = {
        "customer_id": "c-1",
        "cards": ["k-1"],
        "enrolled_at": "2020-01-01T00:00:00Z",
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
    }
    return document | fields


# --- the built-in definitions -----------------------------------------------------------------


def test_the_builtin_file_loads_seven_audiences() -> None:
    audiences = load_audiences(BUILTIN, "built-in")
    assert [a.name for a in audiences] == [
        "lapsed_buyers",
        "birthday_this_month",
        "loyalty_anniversary",
        "unhappy_customers",
        "big_spenders",
        "new_members",
        "bakery_cross_sell",
    ]
    assert all(a.description.strip() for a in audiences)
    clocked = {a.name for a in audiences if a.uses_clock}
    assert clocked == {"lapsed_buyers", "birthday_this_month", "loyalty_anniversary", "new_members"}


def test_big_spenders_compares_decimal_strings_as_numbers() -> None:
    big = builtin()["big_spenders"]
    at_1000 = big.evaluate(profile(total_spend={"EUR": "1000.00"}, marketing_consent=True), NOW)
    assert (at_1000.holds, at_1000.tests, at_1000.next_flip) == (True, "11", None)
    below = big.evaluate(profile(total_spend={"EUR": "999.99"}, marketing_consent=True), NOW)
    assert (below.holds, below.tests) == (False, "01")
    other_currency = big.evaluate(
        profile(total_spend={"USD": "5000.00"}, marketing_consent=True), NOW
    )
    assert not other_currency.holds


def test_bakery_cross_sell() -> None:
    cross = builtin()["bakery_cross_sell"]
    grocer = profile(categories=["dairy", "grocery"], marketing_consent=True)
    assert cross.evaluate(grocer, NOW).holds
    assert cross.evaluate(grocer, NOW).tests == "101"  # the bakery test itself is false
    both = profile(categories=["bakery", "grocery"], marketing_consent=True)
    assert not cross.evaluate(both, NOW).holds


def test_lapsed_buyers_enter_when_90_days_have_passed() -> None:
    lapsed = builtin()["lapsed_buyers"]
    last = NOW - timedelta(days=30)
    buyer = profile(purchase_count=3, last_purchase_at=last.isoformat(), marketing_consent=True)
    verdict = lapsed.evaluate(buyer, NOW)
    assert not verdict.holds
    assert verdict.next_flip is not None
    assert last + timedelta(days=90) < verdict.next_flip <= last + timedelta(days=90, seconds=1)
    assert lapsed.evaluate(buyer, verdict.next_flip).holds
    # without consent nothing the clock does can make it hold
    assert lapsed.evaluate(buyer | {"marketing_consent": False}, NOW).next_flip is None


def test_unhappy_customers_any() -> None:
    unhappy = builtin()["unhappy_customers"]
    assert unhappy.evaluate(profile(complaints_open=1), NOW).tests == "10"
    assert unhappy.evaluate(profile(nps=6), NOW).holds
    assert not unhappy.evaluate(profile(nps=7), NOW).holds
    assert not unhappy.evaluate(profile(), NOW).holds  # nps null: false, not an error


def test_birthday_this_month_flips_at_the_next_month_start() -> None:
    birthday = builtin()["birthday_this_month"]
    verdict = birthday.evaluate(profile(birth_date="1990-06-30", marketing_consent=True), NOW)
    assert (verdict.holds, verdict.next_flip) == (True, datetime(2024, 7, 1, tzinfo=UTC))


# --- refusing a bad file ------------------------------------------------------------------------

GOOD = """\
# Campaign audiences
[audiences.first]
description = "A valid one"
all = [
  { field = "purchase_count", op = ">=", value = 3 },
  { field = "marketing_consent", op = "==", value = true },
]
"""
"""Seven lines; every bad audience below starts on line 8."""


def refusal(text: str) -> str:
    with pytest.raises(AudienceFileError) as caught:
        load_audiences(text, "my-audiences.toml")
    return str(caught.value)


def line_of(message: str) -> int:
    match = re.search(r"\bline (\d+)\b", message)
    assert match, message
    return int(match[1])


BAD_FILES = {
    "toml syntax error": (
        """
[audiences.broken]
description = "Unclosed table"
all = [
  { field = "nps", op = "<=", value = 6 ,
]
""",
        12,
        "not valid TOML",
    ),
    "unknown operator": (
        """
[audiences.bad_op]
description = "A typo in an operator"
all = [
  { field = "nps", op = "<=", value = 6 },
  { field = "purchase_count", op = "=>", value = 3 },
]
""",
        13,
        "unknown operator '=>'",
    ),
    "unknown field": (
        """
[audiences.bad_field]
description = "A field the profile has not"
any = [
  { field = "complaints_open", op = ">", value = 0 },
  { field = "spend", op = ">", value = 0 },
]
""",
        13,
        "unknown profile field 'spend'",
    ),
    "a part of a field that has none": (
        """
[audiences.bad_part]
description = "Only total_spend has parts"
all = [
  { field = "nps.EUR", op = ">", value = 0 },
]
""",
        12,
        "only total_spend has parts",
    ),
    "within_days given text": (
        """
[audiences.bad_days]
description = "Days must be a number"
all = [
  { field = "marketing_consent", op = "==", value = true },
  { field = "enrolled_at", op = "within_days", value = "ten" },
]
""",
        13,
        "needs a number of days",
    ),
    "a negative number of days": (
        """
[audiences.negative]
description = "Days must not be negative"
all = [{ field = "enrolled_at", op = "older_than_days", value = -1 }]
""",
        11,
        "needs a number of days from 0 to 36525",
    ),
    "month 13": (
        """
[audiences.bad_month]
description = "There are twelve"
all = [
  { field = "birth_date", op = "month_is", value = 13 },
]
""",
        12,
        'month_is takes "current" or a month 1-12',
    ),
    "a clock operator on a number field": (
        """
[audiences.not_a_time]
description = "Only time fields meet the clock"
all = [
  { field = "purchase_count", op = "within_days", value = 3 },
]
""",
        12,
        "compares a time field with the clock",
    ),
    "a number field given text": (
        """
[audiences.not_a_number]
description = "Counts are numbers"
all = [
  { field = "purchase_count", op = ">=", value = "three" },
]
""",
        12,
        "purchase_count is a number",
    ),
    "a bool field given a number": (
        """
[audiences.not_a_bool]
description = "Consent is true or false"
all = [
  { field = "marketing_consent", op = "==", value = 1 },
]
""",
        12,
        "marketing_consent is true or false",
    ),
    "ordering a bool": (
        """
[audiences.ordered_bool]
description = "Bools have no order"
all = [
  { field = "marketing_consent", op = ">", value = false },
]
""",
        12,
        "does not order it",
    ),
    "exists given text": (
        """
[audiences.exists_text]
description = "exists takes a bool"
all = [
  { field = "email", op = "exists", value = "yes" },
]
""",
        12,
        "exists takes value = true or false",
    ),
    "a test without a value": (
        """
[audiences.no_value]
description = "Only exists may leave out the value"
all = [
  { field = "nps", op = "<=" },
]
""",
        12,
        "needs a value",
    ),
    "a condition with two keys": (
        """
[audiences.two_keys]
description = "Both kinds at once"
not = { any = [{ field = "nps", op = "exists" }], all = [{ field = "email", op = "exists" }] }
""",
        11,
        "a condition is exactly one of all",
    ),
    "an empty all": (
        """
[audiences.empty]
description = "Nothing to test"
all = []
""",
        11,
        "all needs a non-empty list",
    ),
    "no condition": (
        """
[audiences.no_condition]
description = "Forgot the condition"
""",
        9,
        "found nothing",
    ),
    "a missing description": (
        """
[audiences.undescribed]
all = [
  { field = "nps", op = "<=", value = 6 },
]
""",
        9,
        "needs a description",
    ),
    "an empty description": (
        """
[audiences.blank]
description = "  "
all = [{ field = "nps", op = "<=", value = 6 }]
""",
        10,
        "needs a description",
    ),
    "a test key typo": (
        """
[audiences.typo]
description = "A typo in value"
all = [
  { field = "marketing_consent", op = "==", value = true },
  { field = "nps", op = "<=", valeu = 6 },
]
""",
        13,
        "unknown key 'valeu' in a test",
    ),
    "an unknown top-level table": (
        """
[settings]
mail_from = "shop@example.com"
""",
        9,
        "unknown top-level key 'settings'",
    ),
    "a bad audience name": (
        """
[audiences."big spenders"]
description = "A space in the name"
all = [{ field = "nps", op = "<=", value = 6 }]
""",
        9,
        "a name holds only letters, digits",
    ),
}


@pytest.mark.parametrize(("body", "line", "reason"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_is_refused_with_its_line_and_reason(body: str, line: int, reason: str) -> None:
    text = GOOD + body
    assert text.splitlines()[7] == "", "every bad body starts with an empty line 8"
    message = refusal(text)
    assert message.startswith("my-audiences.toml")
    assert reason in message
    assert line_of(message) == line, (message, text.splitlines()[line - 1])


def test_an_unknown_top_level_key_before_the_audiences() -> None:
    message = refusal('title = "mine"\n' + GOOD)
    assert "unknown top-level key 'title'" in message
    assert line_of(message) == 1


def test_a_file_without_audiences_is_refused() -> None:
    assert "no [audiences.NAME] table" in refusal("# nothing yet\n")
    assert "no [audiences.NAME] table" in refusal("[audiences]\n")


def test_the_refusal_is_a_value_error() -> None:
    assert issubclass(AudienceFileError, ValueError)


def test_nothing_in_the_file_is_executed() -> None:
    text = """
[audiences.code]
description = "__import__('sys').exit(3)"
all = [
  { field = "name", op = "==", value = "__import__('sys').exit(3)" },
  { field = "email", op = "contains", value = "{__import__('sys').exit(3)}" },
]
"""
    (audience,) = load_audiences(text, "code.toml")  # SystemExit would end the test
    assert audience.description == "__import__('sys').exit(3)"
    assert [t.value for t in audience.tests] == [
        "__import__('sys').exit(3)",
        "{__import__('sys').exit(3)}",
    ]
    assert (
        audience.evaluate(profile(name="__import__('sys').exit(3)", email="x"), NOW).tests == "10"
    )
    refused = refusal(text.replace('field = "name"', "field = \"__import__('os')\""))
    assert "unknown profile field \"__import__('os')\"" in refused


def test_a_time_field_accepts_an_rfc3339_string_value() -> None:
    """Such values load, and compare as times (see test_conditions)."""
    text = """
[audiences.early]
description = "Enrolled before noon CEST on 1 June"
all = [{ field = "enrolled_at", op = "<", value = "2024-06-01T12:00:00+02:00" }]
"""
    (audience,) = load_audiences(text, "strings.toml")
    assert audience.tests[0].value == "2024-06-01T12:00:00+02:00"
    assert "is not a date" in refusal(text.replace("2024-06-01T12:00:00+02:00", "noon"))


def test_a_date_value_and_exists_false_load() -> None:
    text = """
[audiences.old_timers]
description = "Enrolled before 2021 and never gave an email"
all = [
  { field = "enrolled_at", op = "<", value = 2021-01-01 },
  { field = "email", op = "exists", value = false },
  { field = "total_spend.EUR", op = "exists" },
]
"""
    (audience,) = load_audiences(text, "dates.toml")
    assert audience.evaluate(profile(total_spend={"EUR": "1.00"}), NOW).holds
    assert not audience.evaluate(profile(total_spend={"EUR": "1.00"}, email="a@b.c"), NOW).holds


@pytest.mark.parametrize(
    ("body", "lines"),
    [
        # a key typo "fiel" is found inside the "field" of the line before
        (
            """
[audiences.typo]
description = "fiel for field"
all = [
  { field = "marketing_consent", op = "==", value = true },
  { fiel = "nps", op = "<=", value = 6 },
]
""",
            {13},
        ),
        # the second of two tests with the same operator is the bad one
        (
            """
[audiences.days]
description = "Two clock tests"
all = [
  { field = "enrolled_at", op = "within_days", value = 30 },
  { field = "last_purchase_at", op = "within_days", value = "ten" },
]
""",
            {13},
        ),
        # [audience.x] (singular) is reported at the first line mentioning "audience"
        (
            """
[audience.misspelt]
description = "The table name lost its s"
all = [{ field = "nps", op = "<=", value = 6 }]
""",
            {9},
        ),
        # two conditions: "all" is found in the description ("Customers we call")
        (
            """
[audiences.both]
description = "Customers we call"
any = [{ field = "nps", op = "<=", value = 6 }]
all = [{ field = "nps", op = ">", value = 1 }]
""",
            {11, 12},
        ),
    ],
    ids=["key typo fiel", "second test same op", "[audience.x] typo", "all in description"],
)
def test_a_refusal_points_at_the_offending_line_not_an_earlier_look_alike(
    body: str, lines: set[int]
) -> None:
    assert line_of(refusal(GOOD + body)) in lines


@pytest.mark.parametrize(
    "test",
    [
        '{ field = "nps", op = "<", value = nan }',
        '{ field = "enrolled_at", op = "within_days", value = inf }',
        '{ field = "enrolled_at", op = "within_days", value = 1000000 }',
        '{ field = "last_purchase_at", op = "older_than_days", value = 1e7 }',
    ],
)
def test_a_value_that_evaluation_cannot_use_is_refused_or_harmless(test: str) -> None:
    text = f'[audiences.x]\ndescription = "x"\nall = [{test}]\n'
    try:
        (audience,) = load_audiences(text, "x.toml")
    except AudienceFileError as refused:
        assert line_of(str(refused)) == 3
        return
    someone = profile(nps=5, last_purchase_at="2024-06-01T00:00:00Z")
    audience.evaluate(someone, NOW)  # a type mismatch is false, never an exception


# --- the membership step ------------------------------------------------------------------------

BIG = builtin()["big_spenders"]
NEW = builtin()["new_members"]


def rich(consent: bool = True, spend: str = "1500.00") -> dict[str, Any]:
    return profile(total_spend={"EUR": spend}, marketing_consent=consent)


def test_entering_is_seq_1_and_names_the_true_tests_then_the_trigger() -> None:
    row, change = step(BIG, "c-1", None, rich(), NOW, "event purchase e-1")
    assert row is not None and change is not None
    assert (change.change, change.seq, change.at, change.audience) == ("entered", 1, NOW, BIG.name)
    assert change.reason == (
        "total_spend.EUR >= 1000 became true; marketing_consent == true became true, "
        "by event purchase e-1"
    )
    assert (row.member, row.seq, row.since, row.reason) == (True, 1, NOW, change.reason)


def test_a_later_exit_is_seq_2_and_names_only_the_flipped_test() -> None:
    entered, _ = step(BIG, "c-1", None, rich(), NOW, "event purchase e-1")
    later = NOW + timedelta(days=1)
    row, change = step(BIG, "c-1", entered, rich(consent=False), later, "event consent_changed e-2")
    assert row is not None and change is not None
    assert (change.change, change.seq, change.at) == ("exited", 2, later)
    assert change.reason == "marketing_consent == true became false, by event consent_changed e-2"
    assert (row.member, row.seq, row.since) == (False, 2, later)


def test_the_profile_before_decides_which_tests_flipped_for_a_customer_without_a_row() -> None:
    before = rich(spend="800.00")
    _, change = step(BIG, "c-1", None, rich(), NOW, "event purchase e-9", before)
    assert change is not None
    assert change.reason == "total_spend.EUR >= 1000 became true, by event purchase e-9"


def test_a_never_member_without_a_clock_flip_stores_nothing() -> None:
    assert step(BIG, "c-1", None, rich(consent=False), NOW, "event purchase e-1") == (None, None)


def test_a_never_member_with_a_clock_flip_is_stored_as_a_non_member() -> None:
    joining = NOW + timedelta(hours=2)  # enrolled_at in the future: within_days from then on
    someone = profile(enrolled_at=joining.isoformat(), marketing_consent=True)
    row, change = step(NEW, "c-1", None, someone, NOW, "event customer_enrolled e-1")
    assert change is None
    assert row is not None
    assert (row.member, row.seq, row.since, row.next_flip) == (False, 0, None, joining)
    # then the clock makes it a member: seq 1
    row2, change2 = step(NEW, "c-1", row, someone, joining, "clock 2024-06-15T14:00:00Z")
    assert change2 is not None and row2 is not None
    assert (change2.change, change2.seq) == ("entered", 1)
    assert change2.reason == (
        "enrolled_at within_days 90 became true, by clock 2024-06-15T14:00:00Z"
    )


def test_an_unchanged_verdict_gives_nothing() -> None:
    row, _ = step(BIG, "c-1", None, rich(), NOW, "event purchase e-1")
    assert row is not None
    later = NOW + timedelta(days=3)
    assert step(BIG, "c-1", row, rich(spend="2000.00"), later, "event purchase e-2") == (None, None)


def test_a_changed_test_without_a_membership_change_updates_the_row_only() -> None:
    unhappy = builtin()["unhappy_customers"]
    row, _ = step(unhappy, "c-1", None, profile(nps=3), NOW, "event survey_answered e-1")
    assert row is not None and row.tests == "01"
    row2, change = step(
        unhappy, "c-1", row, profile(nps=3, complaints_open=1), NOW, "event complaint_filed e-2"
    )
    assert change is None
    assert row2 == Membership(row.audience, "c-1", True, row.since, row.reason, row.seq, "11", None)


def test_entering_by_a_negated_test_says_condition_met() -> None:
    (never_bad,) = load_audiences(
        """
[audiences.never_bad]
description = "No low score"
not = { field = "nps", op = "<=", value = 6 }
""",
        "x.toml",
    )
    _, change = step(never_bad, "c-1", None, profile(nps=9), NOW, "event survey_answered e-1")
    assert change is not None
    assert change.reason == "condition met, by event survey_answered e-1"
