"""Membership in bulk: what a page of changed profiles, and a clock pass over the due rows,
do to the stored rows. Pure, like `domain.membership`, whose `step` and `tick` decide each
row; this module decides which rows need them, so that a page evaluates an audience only
for the customers whose change it can see, and a clock pass evaluates each distinct stored
answer once, however many customers store it. The projection (`projections.audiences`)
reads and writes the rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import orjson

from domain.audiences import Audience
from domain.membership import Change, Membership, Shift, erase, leave, shift, step

Key = tuple[str, str]
"""(audience, customer_id): a stored row's key."""


def on_profiles(
    audiences: list[Audience],
    stored: Mapping[Key, Membership],
    profiles: Mapping[str, dict[str, Any]],
    before: Mapping[str, dict[str, Any]],
    triggers: Mapping[str, str],
    erased: Collection[str],
    now: datetime,
    settled_at: datetime | None,
    departed: Mapping[str, str] | None = None,
) -> tuple[list[Membership], list[Change]]:
    """The rows to store and the changes to publish for a page of changed profiles
    (`before`: as they were, for the customers that had one; `stored`: their rows).
    Forgotten customers (`erased`) leave every audience they have a row in, defined or not;
    so do `departed` ones (merged into another customer), with the reason given.

    `settled_at`: None unless the stored rows follow the definitions in force (reconciled),
    and then the latest time any of them was evaluated. With it, an audience is evaluated
    only for the customers whose change it can see (`unaffected`); without it, for all.
    """
    rows: list[Membership] = []
    changes: list[Change] = []
    departed = departed or {}
    for (_, customer_id), row_now in stored.items():
        if customer_id in erased:
            left, exit_ = erase(row_now, now)
        elif customer_id in departed:
            left, exit_ = leave(row_now, now, departed[customer_id])
        else:
            continue
        rows.append(left)
        if exit_ is not None:
            changes.append(exit_)
    clock_settled = settled_at is not None and now >= settled_at
    for customer_id, profile in profiles.items():
        if customer_id in erased or customer_id in departed:
            continue
        earlier = before.get(customer_id)
        changed = None
        if settled_at is not None and earlier is not None:
            changed = changed_fields(earlier, profile)
        for audience in audiences:
            current = stored.get((audience.name, customer_id))
            if changed is not None and unaffected(audience, changed, current, now, clock_settled):
                continue
            row, change = step(
                audience, customer_id, current, profile, now, triggers[customer_id], earlier
            )
            if row is not None:
                rows.append(row)
            if change is not None:
                changes.append(change)
    return rows, changes


GroupKey = tuple[str, bool, str, datetime | None, str]
"""(audience, member, tests, next_flip, inputs as stored JSON text, '' for none): what
the due rows of one group store alike, all that `tick` reads besides `seq`."""


def clock_shifts(
    by_name: Mapping[str, Audience], groups: list[GroupKey], now: datetime, trigger: str
) -> list[tuple[GroupKey, Shift]]:
    """What the clock does at `now` to the due rows of each group, for the groups whose
    rows it changes (`domain.membership.shift`): one evaluation per group."""
    shifts = []
    for key in groups:
        audience, member, tests, next_flip, inputs = key
        group = Membership(
            audience,
            "",
            member,
            None,
            None,
            0,
            tests,
            next_flip,
            orjson.loads(inputs) if inputs else None,
        )
        moved = shift(by_name[audience], group, now, trigger)
        if moved is not None:
            shifts.append((key, moved))
    return shifts


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> frozenset[str]:
    """The profile fields whose values differ between two versions of a profile, compared
    strictly (`1`, `1.0` and `true` differ, as a test may tell them apart)."""
    return frozenset(
        name
        for name in before.keys() | after.keys()
        if not _same(before.get(name), after.get(name))
    )


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(value, b[key]) for key, value in a.items())
    return bool(a == b)


def unaffected(
    audience: Audience,
    changed: frozenset[str],
    current: Membership | None,
    now: datetime,
    clock_settled: bool,
) -> bool:
    """Whether `step` is sure to leave this row as it is (nothing to store, no change) for a
    profile whose `changed` fields are all the change since its last evaluation, without
    evaluating it.

    The caller vouches that `current` (None: no row) is what the last evaluation of the
    profile as it was left, under this very condition (the definitions are reconciled),
    and, with `clock_settled`, that `now` is no earlier than that evaluation. Then, when the
    audience reads none of the changed fields:
    - without clock tests, the answer and every test's answer are the stored ones;
    - with clock tests, no row means the answer was false for good (no next flip), which
      time does not undo; a row of a flat condition (`Audience.flat`) whose next flip is
      still ahead holds every test's answer and that flip until then.
    Anything else is evaluated: the clock may have moved a test's answer that the stored
    `tests` would otherwise keep, and a later reason names the tests that flipped.
    """
    if not audience.fields.isdisjoint(changed):
        return False
    if not audience.uses_clock:
        return True
    if not clock_settled:
        return False
    if current is None:
        return True
    return audience.flat and current.next_flip is not None and now < current.next_flip
