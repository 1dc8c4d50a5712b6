"""Membership of one audience for one customer: how an evaluation becomes a stored row and
a published change. Pure: the projection (`projections.audiences`) stores and publishes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from domain.audiences import Audience, Verdict


@dataclass(frozen=True)
class Membership:
    """One audience's answer for one customer, as stored: `seq` counts its changes,
    `next_flip` is when the clock alone may change it (None: only a profile change can),
    and `inputs` holds the profile fields its clock tests read, so a clock pass needs
    neither the profile nor the other tests (their answers are in `tests`)."""

    audience: str
    customer_id: str
    member: bool
    since: datetime | None
    reason: str | None
    seq: int
    tests: str
    next_flip: datetime | None
    inputs: dict[str, Any] | None = None


@dataclass(frozen=True)
class Change:
    """An entry or exit, as published on `{prefix}.audiences`."""

    audience: str
    customer_id: str
    change: str  # "entered" or "exited"
    at: datetime
    reason: str
    seq: int


def step(
    audience: Audience,
    customer_id: str,
    current: Membership | None,
    profile: dict[str, Any],
    now: datetime,
    trigger: str,
    before: dict[str, Any] | None = None,
) -> tuple[Membership | None, Change | None]:
    """Re-evaluate one audience for one profile at `now`; return the row to store (None:
    nothing to store) and the change to publish (None: membership did not change).

    The reason names the tests that flipped, then `trigger`: what caused the evaluation
    (`event TYPE ID` or `clock T`). With no stored row, the tests' earlier answers come
    from `before`, the profile as it was (absent for a new customer: every true test).
    """
    verdict = audience.evaluate(profile, now)
    earlier: str | None = None
    if current is not None:
        earlier = current.tests
    elif before is not None and verdict.holds:
        earlier = audience.evaluate(before, now).tests
    return _settle(audience, customer_id, current, verdict, earlier, now, trigger, profile)


def tick(
    audience: Audience, current: Membership, now: datetime, trigger: str
) -> tuple[Membership | None, Change | None]:
    """Re-evaluate a stored row as time alone has moved: the clock tests on the stored
    inputs, the others as they answered (the profile has not changed since, or its change
    would have re-evaluated the row)."""
    verdict = audience.evaluate(current.inputs or {}, now, recall=current.tests)
    return _settle(
        audience, current.customer_id, current, verdict, current.tests, now, trigger, None
    )


@dataclass(frozen=True)
class Shift:
    """What a clock pass does to every due row of one group: the rows of one audience that
    store the same answer (`member`, `tests`, `next_flip`, `inputs`), which `tick` takes
    to the same result whoever the customer (`shift`). `change` is None when membership
    stays, and then `since`, `reason` and `seq` stay too; `keep_inputs` says whether the
    rows keep their `inputs` (else None)."""

    at: datetime
    member: bool
    change: str | None  # "entered", "exited" or None
    reason: str | None
    tests: str
    next_flip: datetime | None
    keep_inputs: bool

    def apply(self, current: Membership) -> tuple[Membership, Change | None]:
        """The row and change of one due row of the group: what the clock pass writes in
        SQL for the whole group at once (the unit tests hold it equal to `tick`)."""
        inputs = current.inputs if self.keep_inputs else None
        row = replace(current, tests=self.tests, next_flip=self.next_flip, inputs=inputs)
        if self.change is None or self.reason is None:
            return row, None
        row = replace(row, member=self.member, since=self.at, reason=self.reason, seq=row.seq + 1)
        change = Change(row.audience, row.customer_id, self.change, self.at, self.reason, row.seq)
        return row, change


def shift(audience: Audience, group: Membership, now: datetime, trigger: str) -> Shift | None:
    """What `tick` does at `now` to every due row that stores what `group` stores (its
    `member`, `tests`, `next_flip` and `inputs`: all `tick` reads besides `seq`, which it
    only counts on), or None when it leaves them as they are. Evaluated once per group,
    so a pass over many rows with few distinct answers (a birthday audience at a month
    boundary: one group per birth date) evaluates few."""
    row, change = tick(audience, group, now, trigger)
    if row is None:
        return None
    return Shift(
        now,
        row.member,
        None if change is None else change.change,
        None if change is None else change.reason,
        row.tests,
        row.next_flip,
        row.inputs is not None,
    )


def _settle(
    audience: Audience,
    customer_id: str,
    current: Membership | None,
    verdict: Verdict,
    earlier: str | None,
    now: datetime,
    trigger: str,
    profile: dict[str, Any] | None,
) -> tuple[Membership | None, Change | None]:
    inputs = None  # kept only while the clock can change the answer
    if verdict.next_flip is not None:
        if profile is not None:
            inputs = audience.clock_inputs(profile)
        elif current is not None:
            inputs = current.inputs
    was_member = current.member if current is not None else False
    if verdict.holds != was_member:
        flipped = audience.flipped(earlier, verdict.tests)
        reason = "; ".join(flipped) or ("condition met" if verdict.holds else "condition unmet")
        reason += f", by {trigger}"
        seq = (current.seq if current is not None else 0) + 1
        row = Membership(
            audience.name,
            customer_id,
            verdict.holds,
            now,
            reason,
            seq,
            verdict.tests,
            verdict.next_flip,
            inputs,
        )
        change = "entered" if verdict.holds else "exited"
        return row, Change(audience.name, customer_id, change, now, reason, seq)
    if current is None:
        if verdict.next_flip is None:
            return None, None  # never a member, and time alone cannot make it one
        return (
            Membership(
                audience.name,
                customer_id,
                False,
                None,
                None,
                0,
                verdict.tests,
                verdict.next_flip,
                inputs,
            ),
            None,
        )
    if (current.tests, current.next_flip, current.inputs) == (
        verdict.tests,
        verdict.next_flip,
        inputs,
    ):
        return None, None
    return replace(current, tests=verdict.tests, next_flip=verdict.next_flip, inputs=inputs), None


ERASED = "erased"
"""The reason of every exit of a forgotten customer (`ledger forget`)."""


def leave(current: Membership, now: datetime, reason: str) -> tuple[Membership, Change | None]:
    """Out for good, whatever the profile says: an audience no longer defined, or a
    customer forgotten. A member exits for `reason`; no row waits on the clock any more,
    and none keeps the profile fields its clock tests read. The row stays, so its `seq`
    goes on if the audience is defined again."""
    if not current.member:
        return replace(current, next_flip=None, inputs=None), None
    row = replace(
        current,
        member=False,
        since=now,
        reason=reason,
        seq=current.seq + 1,
        next_flip=None,
        inputs=None,
    )
    return row, Change(current.audience, current.customer_id, "exited", now, reason, row.seq)


def erase(current: Membership, now: datetime) -> tuple[Membership, Change | None]:
    """A forgotten customer's row: out with reason `erased`, and nothing kept that tells
    anything of the person (the tests' answers and the reason of an earlier change name
    what the profile was, such as the month of a birth date)."""
    row, change = leave(current, now, ERASED)
    return replace(row, tests="", reason=ERASED if row.reason else None), change


def fingerprint(audience: Audience) -> str:
    """What decides membership, as a stable text: a changed condition changes it (the
    description does not)."""
    return hashlib.sha256(repr(audience.condition).encode()).hexdigest()
