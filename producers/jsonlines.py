"""Reading JSON Lines of interactions, each checked before anything is sent."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from domain.interactions import RejectedInteraction, parse_interaction


@dataclass(frozen=True)
class Line:
    number: int
    raw: bytes
    obj: dict[str, Any] | None  # the recorded payload; None when the line was refused
    error: str | None = None


def read_lines(lines: Iterable[bytes]) -> Iterator[Line]:
    """Yield each non-blank line, validated; an invalid line carries its reason."""
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            interaction = parse_interaction(raw)
        except RejectedInteraction as rejection:
            yield Line(number, raw, None, f"{rejection.error_type}: {rejection.reason}")
        else:
            yield Line(number, raw, interaction.payload)
