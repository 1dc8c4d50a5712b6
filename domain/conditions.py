"""The audience condition language: a small tree of typed nodes, evaluated against a profile.

Each node answers two questions at a time `now`: does it hold, and the earliest time its
answer can change while the profile stays as it is (`flip`, None when it cannot). The
projection stores that time per audience and customer, so a clock pass re-evaluates only
the rows that are due. A flip time may be early (the pass then finds no change and
stores the next one), never late: composites take the earliest flip of their children,
except where one child settles the answer for good (a false test with no flip in `all`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.clock_tests import (
    Outcome,
    as_time,
    day_of_year_within,
    month_is,
    older_than_days,
    within_days,
)

Recall = str | None
"""Earlier answers of the tests ("1"/"0" in source order): when given, a test that does not
read the clock answers from it instead of the profile (the clock pass: nothing but time
has changed since those answers, and the profile holds only the clock tests' fields)."""


class Node:
    def evaluate(
        self, profile: dict[str, Any], now: datetime, bits: list[bool], recall: Recall = None
    ) -> Outcome:
        """Hold and flip at `now`; append every test's answer to `bits`, in source order."""
        raise NotImplementedError


@dataclass(frozen=True)
class All(Node):
    children: tuple[Node, ...]

    def evaluate(
        self, profile: dict[str, Any], now: datetime, bits: list[bool], recall: Recall = None
    ) -> Outcome:
        outcomes = [child.evaluate(profile, now, bits, recall) for child in self.children]
        return _combine(outcomes, settles=False)


@dataclass(frozen=True)
class Any_(Node):
    children: tuple[Node, ...]

    def evaluate(
        self, profile: dict[str, Any], now: datetime, bits: list[bool], recall: Recall = None
    ) -> Outcome:
        outcomes = [child.evaluate(profile, now, bits, recall) for child in self.children]
        return _combine(outcomes, settles=True)


def _combine(outcomes: list[Outcome], *, settles: bool) -> Outcome:
    """`all` (settled by a lasting False) or `any` (settled by a lasting True)."""
    if any(holds is settles and flip is None for holds, flip in outcomes):
        return settles, None
    holds = any(h for h, _ in outcomes) if settles else all(h for h, _ in outcomes)
    flips = [flip for _, flip in outcomes if flip is not None]
    return holds, min(flips) if flips else None


@dataclass(frozen=True)
class Not(Node):
    child: Node

    def evaluate(
        self, profile: dict[str, Any], now: datetime, bits: list[bool], recall: Recall = None
    ) -> Outcome:
        holds, flip = self.child.evaluate(profile, now, bits, recall)
        return not holds, flip


@dataclass(frozen=True)
class Test(Node):
    """`{ field, op, value }` on a field of a known `kind` (see `domain.profile.FIELD_KINDS`):
    a comparison then reads both sides as that kind, so a text field such as an id is
    compared as text even when it looks like a number, and a decimal string as a number.
    Kind `any` guesses from the values (tests of the language itself use it)."""

    field: str
    op: str
    value: Any
    kind: str = "any"
    path: tuple[str, ...] = dataclasses.field(init=False, repr=False, compare=False)
    typed: Any = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", tuple(self.field.split(".")))
        if self.kind in _TYPED and self.op in _COMPARISONS:
            values = self.value if self.op == "in" else [self.value]
            typed = [_typed(self.kind, v) for v in values]
            object.__setattr__(self, "typed", typed if self.op == "in" else typed[0])

    def describe(self) -> str:
        if self.op == "exists" and self.value is True:
            return f"{self.field} exists"
        return f"{self.field} {self.op} {_show(self.value)}"

    def evaluate(
        self, profile: dict[str, Any], now: datetime, bits: list[bool], recall: Recall = None
    ) -> Outcome:
        if recall is not None and self.op not in CLOCK_OPERATORS:
            answer = recall[len(bits)] == "1"
            bits.append(answer)
            return answer, None
        actual: Any = profile
        for step in self.path:
            actual = actual.get(step) if isinstance(actual, dict) else None
        if self.op == "exists":
            outcome: Outcome = ((actual is not None) == self.value, None)
        elif actual is None:
            outcome = (False, None)
        elif self.kind == "list" and self.op == "contains":  # lists of ids or names
            outcome = (isinstance(actual, list) and self.value in actual, None)
        elif self.kind in _TYPED and self.op in _COMPARISONS:
            typed = _typed(self.kind, actual)
            outcome = (typed is not None and _COMPARISONS[self.op](typed, self.typed), None)
        else:
            outcome = OPERATORS[self.op](actual, self.value, now)
        bits.append(outcome[0])
        return outcome


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


# --- comparisons ---------------------------------------------------------------------------


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = Decimal(str(value))
        return number if number.is_finite() else None
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _typed(kind: str, value: Any) -> Any:
    """A value read as a field kind's comparable type, or None if it is not one."""
    if kind == "number":
        return _number(value)
    if kind in ("time", "date"):
        return as_time(value)
    if kind == "text":
        return value if isinstance(value, str) else None
    return value if isinstance(value, bool) else None  # "bool"


_TYPED = frozenset({"number", "time", "date", "text", "bool"})
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: b is not None and a == b,
    "!=": lambda a, b: b is not None and a != b,
    "<": lambda a, b: b is not None and a < b,
    "<=": lambda a, b: b is not None and a <= b,
    ">": lambda a, b: b is not None and a > b,
    ">=": lambda a, b: b is not None and a >= b,
    "in": lambda a, options: a in options,
}


def _pair(actual: Any, expected: Any) -> tuple[Any, Any] | None:
    """Both sides in one comparable type, guessed from the values (kind `any`), or None
    when they cannot be compared."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return (actual, expected) if type(actual) is type(expected) else None
    if isinstance(expected, datetime | date):
        moment = as_time(actual)
        return None if moment is None else (moment, as_time(expected))
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        return left, right
    if isinstance(actual, str) and isinstance(expected, str):
        moments = as_time(actual), as_time(expected)
        if None not in moments and "-" in actual and "-" in expected:
            return moments
        return actual, expected
    return None


def _compare(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any, datetime], Outcome]:
    def operator(actual: Any, expected: Any, now: datetime) -> Outcome:
        pair = _pair(actual, expected)
        return (pair is not None and test(*pair), None)

    return operator


def _equal(actual: Any, expected: Any) -> bool:
    pair = _pair(actual, expected)
    return pair is not None and pair[0] == pair[1]


def _not_equal(actual: Any, expected: Any, now: datetime) -> Outcome:
    pair = _pair(actual, expected)
    return (pair is not None and pair[0] != pair[1], None)


def _in(actual: Any, expected: list[Any], now: datetime) -> Outcome:
    return (any(_equal(actual, option) for option in expected), None)


def _contains(actual: Any, expected: Any, now: datetime) -> Outcome:
    if isinstance(actual, list):
        return (any(_equal(item, expected) for item in actual), None)
    if isinstance(actual, dict):
        return (expected in actual, None)
    if isinstance(actual, str) and isinstance(expected, str):
        return (expected in actual, None)
    return (False, None)


OPERATORS: dict[str, Callable[[Any, Any, datetime], Outcome]] = {
    "==": lambda a, e, now: (_equal(a, e), None),
    "!=": _not_equal,
    "<": _compare(lambda a, b: a < b),
    "<=": _compare(lambda a, b: a <= b),
    ">": _compare(lambda a, b: a > b),
    ">=": _compare(lambda a, b: a >= b),
    "in": _in,
    "contains": _contains,
    "within_days": within_days,
    "older_than_days": older_than_days,
    "month_is": month_is,
    "day_of_year_within": day_of_year_within,
}
"""Every operator but `exists`, which is the one that looks at a missing field."""

CLOCK_OPERATORS = frozenset({"within_days", "older_than_days", "month_is", "day_of_year_within"})
