"""What the CLI prints: one JSON document with --json, else readable tables (rich)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel


def answer(model: type[BaseModel], document: dict[str, Any]) -> dict[str, Any]:
    """The document as the read model validates it: the same models serve the HTTP API."""
    return model.model_validate(document).model_dump(mode="json")


def show(document: dict[str, Any], *, as_json: bool) -> None:
    """One JSON document on stdout with --json, else a readable two-column table."""
    if as_json:
        print(json.dumps(document, indent=2, sort_keys=False))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None)
    for key, value in document.items():
        table.add_row(key, Text(value if isinstance(value, str) else json.dumps(value)))
    Console().print(table)


def show_rows(rows: list[dict[str, Any]], *, as_json: bool) -> None:
    """A JSON list with --json, else a table with a column per key."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*(rows[0] if rows else ()))
    for row in rows:
        table.add_row(*(Text(str(value)) for value in row.values()))  # no markup: "[erased]"
    Console().print(table)
