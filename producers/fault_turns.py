"""Faults taken in turn: each retail traffic module (`card_traffic`, `merge_traffic`)
breaks its rules one after the other, skipping those it cannot break yet."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def in_turn(
    kinds: Sequence[str], start: int, make: Callable[[str], dict[str, Any] | None]
) -> tuple[dict[str, Any] | None, int]:
    """The first fault `make` can build, trying `kinds` from `start` round; and where the
    next turn starts (`start` again when none could be built)."""
    for k in range(len(kinds)):
        at = (start + k) % len(kinds)
        made = make(kinds[at])
        if made is not None:
            return made, at + 1
    return None, start
