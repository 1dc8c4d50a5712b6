"""Campaign audiences: definitions read from TOML, checked before anything runs.

The file is data, never code: `tomllib` parses it and every condition becomes a tree of the
typed nodes of `domain.conditions`. Whatever is wrong is refused with the line it is on and
the reason. `tomllib` keeps no positions for values, so a semantic error's line is found
by looking for its text inside the audience's own table (the table header when that fails).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cached_property
from typing import Any

from domain.clock_tests import as_time
from domain.conditions import (
    CLOCK_OPERATORS,
    OPERATORS,
    All,
    Any_,
    Node,
    Not,
    Recall,
    Test,
)
from domain.profile import FIELD_KINDS
from domain.source_lines import (
    decode_reason,
    find_line,
    key_pattern,
    quoted,
    top_level,
    value_pattern,
)


class AudienceFileError(ValueError):
    """A definitions file that cannot be used; the message gives its line and the reason."""


@dataclass(frozen=True)
class Verdict:
    holds: bool
    tests: str  # each test's answer, "1" or "0", in source order
    next_flip: datetime | None


@dataclass(frozen=True)
class Audience:
    name: str
    description: str
    condition: Node
    tests: tuple[Test, ...]

    def evaluate(self, profile: dict[str, Any], now: datetime, recall: Recall = None) -> Verdict:
        """The answer at `now` (with `recall`: the clock tests on `profile`, the others as
        they answered before; see `domain.conditions.Recall`)."""
        bits: list[bool] = []
        holds, flip = self.condition.evaluate(profile, now, bits, recall)
        return Verdict(holds, "".join("1" if b else "0" for b in bits), flip)

    def clock_inputs(self, profile: dict[str, Any]) -> dict[str, Any]:
        """The profile fields its clock tests read: all a clock pass needs besides the
        tests' earlier answers."""
        return {name: profile.get(name) for name in self._clock_fields}

    @cached_property
    def _clock_fields(self) -> tuple[str, ...]:
        return tuple(sorted({t.path[0] for t in self.tests if t.op in CLOCK_OPERATORS}))

    @cached_property
    def fields(self) -> frozenset[str]:
        """The profile fields its tests read (the first name of each dotted path): while
        they keep their values, only the clock can change its answer."""
        return frozenset(t.path[0] for t in self.tests)

    @cached_property
    def flat(self) -> bool:
        """Whether its condition is a test or one all/any of tests (each perhaps under
        `not`). Then, while the answer has a next flip, every test's answer holds until
        then too: no test sits in a part that another test settles for good, where its
        own flips would not show in the audience's."""
        root = _bare(self.condition)
        if isinstance(root, All | Any_):
            return all(isinstance(_bare(child), Test) for child in root.children)
        return isinstance(root, Test)

    def flipped(self, before: str | None, after: str) -> list[str]:
        """The tests whose answer differs between two verdicts' `tests` (all true ones when
        there was no verdict before), each as `field op value became true|false`."""
        changed = []
        for index, test in enumerate(self.tests):
            now_true = after[index] == "1"
            was_true = before[index] == "1" if before and len(before) == len(after) else None
            if (was_true is None and now_true) or (was_true is not None and was_true != now_true):
                changed.append(f"{test.describe()} became {'true' if now_true else 'false'}")
        return changed

    @cached_property
    def uses_clock(self) -> bool:
        return any(test.op in CLOCK_OPERATORS for test in self.tests)


def _bare(node: Node) -> Node:
    while isinstance(node, Not):
        node = node.child
    return node


_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_DAYS = 36_525
"""A hundred years: the longest `within_days` or `older_than_days` window accepted."""
MAX_DEPTH = 64
"""How deep a condition (all/any/not) and the file's arrays and inline tables may nest:
far beyond any real audience, and far within what the parser's and the evaluator's
recursion can take, so a hostile file is refused with a reason, never a RecursionError."""
_CONDITION_KEYS = ("all", "any", "not")
_TEST_KEYS = {"field", "op", "value"}


def load_audiences(text: str, source: str) -> list[Audience]:
    """Every audience of a TOML document, or AudienceFileError naming `source` and the line."""
    deep = _too_deep(text)
    if deep is not None:
        raise AudienceFileError(
            f"{source}, line {deep}: arrays and inline tables nested deeper than {MAX_DEPTH} levels"
        )
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise AudienceFileError(f"{source}{decode_reason(error)}") from None
    lines = text.splitlines()
    extra = sorted(set(document) - {"audiences"})
    if extra:
        raise AudienceFileError(
            f"{source}, line {find_line(lines, None, (top_level(extra[0]),))}: "
            f"unknown top-level key {extra[0]!r}; definitions go under [audiences.NAME]"
        )
    table = document.get("audiences")
    if not isinstance(table, dict) or not table:
        raise AudienceFileError(f"{source}: no [audiences.NAME] table is defined")
    audiences = []
    for name, body in table.items():
        try:
            audiences.append(_audience(name, body))
        except _Problem as problem:
            line = find_line(lines, name, problem.patterns)
            raise AudienceFileError(
                f"{source}, line {line}: audience {name!r}: {problem}"
            ) from None
    return audiences


def _too_deep(text: str) -> int | None:
    """The line on which brackets and braces outside strings and comments nest deeper than
    MAX_DEPTH, or None. Checked before `tomllib`, which recurses once per level."""
    depth, line, at = 0, 1, 0
    while at < len(text):
        char = text[at]
        if char in "\"'":
            quote = char * 3 if text.startswith(char * 3, at) else char
            end = at + len(quote)
            while end < len(text) and not text.startswith(quote, end):
                end += 2 if char == '"' and text[end] == "\\" else 1
            line += text.count("\n", at, end)
            at = end + len(quote)
            continue
        if char == "#":
            at = text.find("\n", at)
            at = len(text) if at < 0 else at
            continue
        line += char == "\n"
        depth += (char in "[{") - (char in "]}")
        if depth > MAX_DEPTH:
            return line
        at += 1
    return None


class _Problem(Exception):
    """A reason, and patterns (regular expressions) of the line it is on: the line that
    matches them all, else the first that matches the first one."""

    def __init__(self, reason: str, *patterns: str) -> None:
        super().__init__(reason)
        self.patterns = patterns


def _audience(name: str, body: Any) -> Audience:
    if not _NAME.match(name):
        raise _Problem("a name holds only letters, digits, '_' and '-'")
    if not isinstance(body, dict):
        raise _Problem("must be a table with a description and a condition")
    description = body.get("description")
    if not isinstance(description, str) or not description.strip():
        raise _Problem("needs a description (a non-empty string)", key_pattern("description"))
    rest = {k: v for k, v in body.items() if k != "description"}
    tests: list[Test] = []
    condition = _condition(rest, tests, 1)
    return Audience(name, description, condition, tuple(tests))


def _condition(spec: Any, tests: list[Test], depth: int) -> Node:
    """The node of a condition `depth` levels down (1: the audience's own), refusing one
    nested deeper than MAX_DEPTH before recursing (dotted keys such as `not.not.not...`
    nest it without any bracket)."""
    if depth > MAX_DEPTH:
        raise _Problem(f"the condition nests all/any/not deeper than {MAX_DEPTH} levels")
    if not isinstance(spec, dict):
        raise _Problem(f"a condition must be a table, not {_kind(spec)}", re.escape(str(spec)[:20]))
    keys = set(spec)
    if keys & _TEST_KEYS:
        unknown = keys - _TEST_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise _Problem(
                f"unknown key {key!r} in a test (it takes field, op, value)", key_pattern(key)
            )
        return _test(spec, tests)
    if len(keys) != 1 or not keys <= set(_CONDITION_KEYS):
        found = ", ".join(sorted(keys)) or "nothing"
        raise _Problem(
            f"a condition is exactly one of all = [...], any = [...], not = {{...}} or a "
            f"test {{ field, op, value }}; found {found}",
            *(key_pattern(k) for k in sorted(keys)),
        )
    (key,) = keys
    value = spec[key]
    if key == "not":
        return Not(_condition(value, tests, depth + 1))
    if not isinstance(value, list) or not value:
        raise _Problem(f"{key} needs a non-empty list of conditions", key_pattern(key))
    children = tuple(_condition(child, tests, depth + 1) for child in value)
    return All(children) if key == "all" else Any_(children)


def _kind(value: Any) -> str:
    return type(value).__name__


def _test(spec: dict[str, Any], tests: list[Test]) -> Test:
    name, op = spec.get("field"), spec.get("op")
    if not isinstance(name, str):
        raise _Problem('a test needs field = "..." (a profile field)', key_pattern("op"))
    if not isinstance(op, str):
        raise _Problem(f'the test on {name!r} needs op = "..."', quoted(name))
    kind = _field_kind(name)
    if op != "exists" and op not in OPERATORS:
        known = ", ".join(["exists", *OPERATORS])
        raise _Problem(f"unknown operator {op!r} (known: {known})", quoted(op), quoted(name))
    if "value" not in spec and op != "exists":
        raise _Problem(f"the test {name} {op} needs a value", quoted(op), quoted(name))
    try:
        value = _check_value(name, kind, op, spec.get("value", True))
    except _Problem as problem:
        # The line that holds this test: its field, its operator and, if written, its value.
        shown = value_pattern(spec.get("value"))
        patterns = (p for p in (quoted(name), quoted(op), shown) if p)
        raise _Problem(str(problem), *patterns) from None
    test = Test(name, op, value, kind)
    tests.append(test)
    return test


def _field_kind(name: str) -> str:
    head, _, rest = name.partition(".")
    kind = FIELD_KINDS.get(head)
    if kind is None:
        known = ", ".join(FIELD_KINDS)
        raise _Problem(f"unknown profile field {name!r} (fields: {known})", quoted(name))
    if not rest:
        return kind
    if kind == "money" and re.fullmatch(r"[A-Z]{3}", rest):
        return "number"
    raise _Problem(
        f"{name!r}: only total_spend has parts, one per currency (total_spend.EUR)", quoted(name)
    )


def _check_value(name: str, kind: str, op: str, value: Any) -> Any:
    if isinstance(value, time):
        raise _Problem(f"{name} {op}: a time of day alone cannot be compared")
    if isinstance(value, dict):
        raise _Problem(f"{name} {op}: the value cannot be a table")
    if op == "exists":
        if not isinstance(value, bool):
            raise _Problem(f"{name} exists takes value = true or false")
    elif op in ("within_days", "older_than_days"):
        _need_time(name, kind, op)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= MAX_DAYS  # also refuses nan
        ):
            raise _Problem(f"{name} {op} needs a number of days from 0 to {MAX_DAYS}")
    elif op == "month_is":
        _need_time(name, kind, op)
        if value != "current" and not (
            isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 12
        ):
            raise _Problem(f'{name} month_is takes "current" or a month 1-12')
    elif op == "day_of_year_within":
        _need_time(name, kind, op)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 366:
            raise _Problem(f"{name} day_of_year_within takes whole days ahead, 0-366")
    elif op == "in":
        if not isinstance(value, list) or not value:
            raise _Problem(f"{name} in needs a non-empty list of values")
        for option in value:
            _check_scalar(name, kind, op, option)
    elif op == "contains":
        if kind not in ("list", "text", "money"):
            raise _Problem(f"{name} is a {kind} field; contains works on lists and text")
        _check_scalar(name, "text" if kind != "money" else kind, op, value)
    else:
        if op not in ("==", "!=") and kind in ("bool", "list", "money"):
            raise _Problem(f"{name} is a {kind} field; {op} does not order it")
        _check_scalar(name, kind, op, value)
    return value


def _need_time(name: str, kind: str, op: str) -> None:
    if kind not in ("time", "date"):
        raise _Problem(f"{op} compares a time field with the clock; {name} is a {kind}")


def _check_scalar(name: str, kind: str, op: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise _Problem(f"{name} {op}: {value} is not a number one can compare with")
    if isinstance(value, list | dict):
        raise _Problem(f"{name} {op} takes a single value, not a list")
    if kind == "number" and (isinstance(value, bool) or _not_number(value)):
        raise _Problem(f"{name} is a number; {value!r} is not")
    if kind == "bool" and not isinstance(value, bool):
        raise _Problem(f"{name} is true or false; {value!r} is not")
    if kind in ("time", "date") and not (
        isinstance(value, datetime | date) or (isinstance(value, str) and as_time(value))
    ):
        raise _Problem(f"{name} is a time; {value!r} is not a date or an RFC 3339 time")


def _not_number(value: Any) -> bool:
    if isinstance(value, int | float):
        return False
    if isinstance(value, str):
        return re.fullmatch(r"-?\d+(\.\d+)?", value) is None
    return True
