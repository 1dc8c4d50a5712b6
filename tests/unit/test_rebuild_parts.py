"""Parts of an audit job run in processes of their own; their answers come back whole."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services import rebuild_parts


class Big:
    """A job whose parts answer more than a pipe holds (a tampered ledger's findings)."""

    parts = 3

    def __call__(self, part: int, progress: Callable[[int], object]) -> bytes:
        progress(part + 1)
        return bytes([part]) * 2_000_000


class Failing:
    parts = 2

    def __call__(self, part: int, progress: Callable[[int], object]) -> int:
        if part == 1:
            raise ValueError("part 1 cannot be read")
        return part


def test_large_answers_come_back_whole_in_part_order() -> None:
    seen: list[int] = []
    answers = rebuild_parts.run(Big(), 2, seen.append)
    assert [(a[:1], len(a)) for a in answers] == [(bytes([p]), 2_000_000) for p in range(3)]
    assert seen[-1] == 1 + 2 + 3


def test_a_parts_failure_is_raised_in_the_parent() -> None:
    with pytest.raises(ValueError, match="part 1 cannot be read"):
        rebuild_parts.run(Failing(), 2, lambda done: None)
