"""Reading JSON Lines of interactions, each checked before anything is sent."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from domain.interactions import RejectedInteraction, validate_object


@dataclass(frozen=True)
class Line:
    number: int
    raw: bytes
    obj: dict[str, Any] | None  # None when the line was refused
    error: str | None = None


def read_lines(lines: Iterable[bytes]) -> Iterator[Line]:
    """Yield each non-blank line, validated; an invalid line carries its reason."""
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            validate_object(obj)
        except (UnicodeDecodeError, json.JSONDecodeError):
            yield Line(number, raw, None, "malformed: not UTF-8 JSON")
        except RejectedInteraction as rejection:
            yield Line(number, raw, None, f"{rejection.error_type}: {rejection.reason}")
        else:
            yield Line(number, raw, obj)
