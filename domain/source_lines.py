"""Finding the line of a problem in a TOML file that `tomllib` parsed without positions.

`tomllib` keeps no positions for values, so the audience loader looks for the problem's
text: regular expressions of the key or value, inside the audience's own table (the
table's header line when nothing matches). A syntax error's line comes from `tomllib`.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any


def decode_reason(error: tomllib.TOMLDecodeError) -> str:
    """`Invalid value (at line 3, column 9)` as `, line 3: not valid TOML: invalid value
    (column 9)`, in the form of every other refusal."""
    match = re.match(r"(.*) \(at line (\d+), column (\d+)\)$", str(error))
    if not match:
        return f": not valid TOML: {error}"
    reason, line, column = match.groups()
    return f", line {line}: not valid TOML: {reason[0].lower() + reason[1:]} (column {column})"


def key_pattern(name: str) -> str:
    """The pattern of `name = ...` (a key, not a word inside another)."""
    return rf"(^|[\s{{,\[]){re.escape(name)}\s*="


def quoted(text: str) -> str:
    return re.escape(f'"{text}"') + "|" + re.escape(f"'{text}'")


def value_pattern(value: Any) -> str | None:
    """The pattern of a value as the file may spell it (for finding its line)."""
    if value is None:
        return None
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, bool):
        return rf"=\s*{'true' if value else 'false'}\b"
    if isinstance(value, int | float):
        return rf"=\s*[-+]?{re.escape(str(value))}"
    return None


def top_level(key: str) -> str:
    """The pattern of a top-level key: `key = ...` or a table header `[key...]`."""
    return rf"^\s*(\[+\s*{re.escape(key)}\b|{re.escape(key)}\s*=)"


def find_line(lines: list[str], audience: str | None, patterns: tuple[str, ...]) -> int:
    """The 1-based line within `audience`'s table that matches every pattern, else the first
    that matches the first pattern, else the table's header line."""
    start, end = 0, len(lines)
    if audience is not None:
        header = re.compile(
            r"^\s*\[\s*audiences\s*\.\s*[\"']?" + re.escape(audience) + r"[\"']?\s*\]"
        )
        for index, line in enumerate(lines):
            if header.match(line):
                start = index
                end = next(
                    (j for j in range(index + 1, len(lines)) if lines[j].lstrip().startswith("[")),
                    len(lines),
                )
                break
        else:
            patterns = patterns or (quoted(audience), re.escape(audience))
    compiled = [re.compile(p) for p in patterns]
    for wanted in (compiled, compiled[:1]):
        if not wanted:
            continue
        for index in range(start, end):
            if all(p.search(lines[index]) for p in wanted):
                return index + 1
    return start + 1
