"""Membership in bulk agrees with `step` and `tick` row by row: a page that evaluates an
audience only for the customers whose change it can see stores and publishes exactly what
evaluating every audience would, and a clock pass that evaluates each group of due rows
once writes each row what `tick` gives it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import membership_batch as batch
from domain.audiences import load_audiences
from domain.membership import Membership, shift, step, tick

AUDIENCES = load_audiences(
    (Path(__file__).parents[2] / "ledger" / "audiences.toml").read_text(), "built-in"
) + load_audiences(
    """
[audiences.nested]
description = "A clock test under an any that another test can settle"
all = [
  { any = [
    { field = "nps", op = ">=", value = 9 },
    { field = "birth_date", op = "month_is", value = "current" },
  ] },
  { field = "enrolled_at", op = "within_days", value = 30 },
]

[audiences.not_lapsed]
description = "Not bought in 20 days"
not = { field = "last_purchase_at", op = "within_days", value = 20 }
""",
    "extra",
)
START = datetime(2026, 1, 1, tzinfo=UTC)


def moment(days: float) -> str:
    return (START + timedelta(days=days)).isoformat().replace("+00:00", "Z")


FIELDS = {
    "marketing_consent": st.booleans(),
    "purchase_count": st.integers(0, 6),
    "last_purchase_at": st.none() | st.floats(0, 700).map(moment),
    "enrolled_at": st.none() | st.floats(-400, 700).map(moment),
    "birth_date": st.none() | st.dates().map(lambda d: d.isoformat()),
    "complaints_open": st.integers(0, 2),
    "nps": st.none() | st.integers(0, 10),
    "total_spend": st.fixed_dictionaries({"EUR": st.sampled_from(["10.00", "2000.00"])}),
    "categories": st.lists(st.sampled_from(["grocery", "bakery", "toys"]), unique=True),
    "swipe_count": st.integers(0, 3),
}
profiles = st.fixed_dictionaries({"customer_id": st.just("C-1"), **FIELDS})
days = st.floats(0, 500)


def evaluated(
    first: dict[str, Any], profile: dict[str, Any], then: datetime, later: datetime
) -> dict[str, Membership]:
    """The rows a page at START leaves for a new customer with profile `first`, then a page
    at `then` that changes it to `profile`, then a clock pass at `later`."""
    rows = {}
    for audience in AUDIENCES:
        row, _ = step(audience, "C-1", None, first, START, "event a")
        row = step(audience, "C-1", row, profile, then, "event b", first)[0] or row
        if row is not None and row.next_flip is not None and row.next_flip <= later:
            row = tick(audience, row, later, "clock")[0] or row
        if row is not None:
            rows[audience.name] = row
    return rows


def page_agrees(
    earliest: dict[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    then: datetime,
    clocked: datetime,
    now: datetime,
) -> None:
    stored = {
        (name, "C-1"): row for name, row in evaluated(earliest, before, then, clocked).items()
    }
    page = (AUDIENCES, stored, {"C-1": after}, {"C-1": before}, {"C-1": "event c"}, ())
    everything = batch.on_profiles(*page, now, None)
    assert batch.on_profiles(*page, now, clocked) == everything


def changed(before: dict[str, Any], data: st.DataObject, fields: dict[str, Any]) -> dict[str, Any]:
    after = dict(before)
    for name in data.draw(st.sets(st.sampled_from(sorted(fields)))):
        after[name] = data.draw(fields[name])
    return after


@settings(max_examples=500, deadline=None)
@given(profiles, profiles, st.data(), days, days, st.floats(-30, 400))
def test_a_page_evaluating_only_what_changed_stores_what_evaluating_all_would(
    earliest: dict[str, Any],
    before: dict[str, Any],
    data: st.DataObject,
    first: float,
    passed: float,
    later: float,
) -> None:
    then = START + timedelta(days=first)
    clocked = then + timedelta(days=passed)
    now = clocked + timedelta(days=later)  # earlier than the pass, at times
    page_agrees(earliest, before, changed(before, data, FIELDS), then, clocked, now)


RECENT = FIELDS | {  # every time within weeks of the evaluations: many flips in between
    "last_purchase_at": st.none() | st.floats(0, 60).map(moment),
    "enrolled_at": st.none() | st.floats(0, 60).map(moment),
    "birth_date": st.none() | st.dates().map(lambda d: d.isoformat()),
    "nps": st.none() | st.integers(7, 10),
}
recent = st.fixed_dictionaries({"customer_id": st.just("C-1"), **RECENT})
weeks = st.floats(0, 45)


@settings(max_examples=500, deadline=None)
@given(recent, recent, st.data(), weeks, weeks, st.floats(-20, 45))
def test_the_same_when_times_are_close_and_the_clock_goes_back(
    earliest: dict[str, Any],
    before: dict[str, Any],
    data: st.DataObject,
    first: float,
    passed: float,
    later: float,
) -> None:
    then = START + timedelta(days=first)
    clocked = then + timedelta(days=passed)
    now = clocked + timedelta(days=later)
    page_agrees(earliest, before, changed(before, data, RECENT), then, clocked, now)


@settings(max_examples=300, deadline=None)
@given(profiles, days, days, st.integers(0, 5), st.booleans())
def test_a_clock_shift_writes_each_due_row_what_tick_gives_it(
    profile: dict[str, Any], first: float, later: float, seq: int, flipped_before: bool
) -> None:
    then, now = START + timedelta(days=first), START + timedelta(days=first + later)
    for audience in AUDIENCES:
        stored, _ = step(audience, "C-1", None, profile, then, "event")
        if stored is None or stored.next_flip is None or stored.next_flip > now:
            continue  # not due
        if flipped_before:
            stored = replace(stored, seq=stored.seq + seq, since=then, reason="an earlier one")
        group = replace(stored, customer_id="", since=None, reason=None, seq=0)
        moved = shift(audience, group, now, "clock")
        expected = tick(audience, stored, now, "clock")
        if moved is None:
            assert expected == (None, None)
        else:
            assert moved.apply(stored) == expected


def test_the_changed_fields_are_told_apart_strictly() -> None:
    before = {"a": 1, "b": [1, "x"], "c": {"EUR": "1.00"}, "d": True}
    assert batch.changed_fields(before, dict(before)) == frozenset()
    after = {"a": True, "b": [1, "x"], "c": {"EUR": "1.0"}, "e": None}
    assert batch.changed_fields(before, after) == {"a", "c", "d"}


def test_a_clock_test_hidden_by_another_is_evaluated_when_the_clock_moved_it() -> None:
    (nested,) = [a for a in AUDIENCES if a.name == "nested"]
    assert not nested.flat
    before = {"nps": 9, "birth_date": "1990-01-10", "enrolled_at": moment(20)}
    then, now = START + timedelta(days=25), START + timedelta(days=35)  # into February
    stored = {("nested", "C-1"): evaluated(before, before, then, then)["nested"]}
    assert stored[("nested", "C-1")].tests == "111"  # nps settles the any: no flip for it
    after = before | {"marketing_consent": True}  # a field the audience does not read
    page = ([nested], stored, {"C-1": after}, {"C-1": before}, {"C-1": "event c"}, ())
    rows, changes = batch.on_profiles(*page, now, then)
    assert [row.tests for row in rows] == ["101"] and changes == []
    assert (rows, changes) == batch.on_profiles(*page, now, None)
