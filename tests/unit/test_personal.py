"""The personal fields are named in one place, and the published schema marks the same ones."""

from __future__ import annotations

from typing import Any

from domain.interactions import interaction_json_schema
from domain.personal import PERSONAL_FIELDS


def marked_fields(schema: dict[str, Any]) -> dict[str, set[str]]:
    marked: dict[str, set[str]] = {}
    for definition in schema.get("$defs", {}).values():
        kind = definition.get("properties", {}).get("type", {}).get("const")
        for name, spec in definition.get("properties", {}).items():
            if spec.get("x-personal-data"):
                marked.setdefault(kind, set()).add(name)
    return marked


def test_the_schema_marks_exactly_the_personal_fields_of_the_domain() -> None:
    expected = {kind: set(fields) for kind, fields in PERSONAL_FIELDS.items()}
    assert marked_fields(interaction_json_schema()) == expected
