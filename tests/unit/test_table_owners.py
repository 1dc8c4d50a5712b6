"""Every table has one owner: SQL naming a table appears only in the module that holds its
DDL, writes and reads. The check reads the source (no server): every string constant of
every module of the packages, and the constant parts of f-strings, scanned for a table
after FROM (and each of a comma join), JOIN, INTO, UPDATE, USING, TRUNCATE, TABLE [IF NOT
EXISTS], DELETE FROM or COPY, and a table handed to `regclass`. Keywords are matched in
capitals, as every statement in the ledger is written (so prose such as "read from
profiles" in a docstring is not taken for SQL).

`bench/` is not scanned: the benchmarks are not part of the ledger, and they build their
fixtures with COPY straight into the tables and count rows to report what they measured.

A join lives with one of the tables it joins: a statement that names several tables is in
its place in the owner of any of them (the store's reads ask what the interaction index
holds that the store lacks, `store.interaction_index.missing_from_store`).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "store", "producers", "consumers", "projections", "services", "ledger")

OWNERS: dict[str, str] = {
    "profiles": "projections/profiles.py",
    "profile_card_owners": "projections/card_holders.py",
    "profile_parked": "projections/card_holders.py",
    "profile_merges": "projections/merge_tree.py",
    "partners": "projections/partners.py",
    "audience_members": "projections/audiences.py",
    "audience_clock": "projections/audiences.py",
    "audience_outbox": "projections/audience_outbox.py",
    "audience_definitions": "projections/audience_definitions.py",
    # The library's tracking recorder creates and writes it; our reads of positions:
    "projection_tracking": "projections/positions.py",
    # The library's recorder creates and writes it; our reads of it:
    "ledger_events": "store/event_store.py",
}
"""The projection tables and the event store's, each with its owner."""

INGEST_OWNERS: dict[str, str] = {
    "ledger_interactions": "store/interaction_index.py",
    "ledger_card_holders": "store/card_holdings.py",
    "ledger_merges": "store/merges.py",
    "ledger_dead_letters": "store/dead_letters.py",
    "ledger_offsets": "store/offsets.py",
    "ledger_ingest_batches": "store/ingest_batches.py",
    "customer_keys": "store/keys.py",
}
"""The ingest side's tables and their owners (in `store/`: the read side reads them too)."""

_TABLE = r"(?:\{\}\.|\"?\w+\"?\.)?\"?([a-z_][a-z0-9_]*)\b"
_NAMING = re.compile(
    r"\b(?:DELETE\s+FROM|FROM|JOIN|INTO|UPDATE|COPY|USING|TRUNCATE(?:\s+TABLE)?"
    r"|TABLE(?:\s+IF\s+NOT\s+EXISTS)?)\s+" + _TABLE
)
_LISTED = re.compile(r"\bFROM\s+[\w.{}\"]+(?:\s+(?:AS\s+)?\w+)?\s*,\s*" + _TABLE)
"""The second table of `FROM a, b` (a comma join)."""
_REGCLASS = re.compile(r"'\.?([a-z_][a-z0-9_]*)'::regclass|\|\|\s*'\.([a-z_][a-z0-9_]*)'")
"""A table named to `to_regclass` or cast to `regclass` (`'x'::regclass`, `|| '.x'`)."""


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every string constant; an f-string as its constant parts, each
    placeholder standing as `{}`."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                inside.add(id(value))
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    parts.append(value.value)
                else:
                    parts.append("{}")
            yield node.lineno, "".join(parts)
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and id(node) not in inside:
            yield node.lineno, text


def named_tables(source: str) -> Iterator[tuple[int, set[str]]]:
    """(line, the tables a statement names) of every statement (a string, or each part of
    it between semicolons: a script of DDL) that names a table."""
    for line, text in _strings(ast.parse(source)):
        for statement in text.split(";"):
            tables = set(_NAMING.findall(statement)) | set(_LISTED.findall(statement))
            tables |= {name for pair in _REGCLASS.findall(statement) for name in pair if name}
            if tables:
                yield line, tables


def modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def misplaced(owners: dict[str, str]) -> list[str]:
    """`module:line names table (owner: ...)` for every statement out of its place."""
    every_owner = OWNERS | INGEST_OWNERS
    found = []
    for path in modules():
        module = path.relative_to(ROOT).as_posix()
        for line, tables in named_tables(path.read_text("utf-8")):
            if any(every_owner.get(t) == module for t in tables):
                continue  # its own table, or a join kept with one of its tables
            for table in sorted(tables & owners.keys()):
                found.append(f"{module}:{line} names {table} (owner: {owners[table]})")
    return found


def test_every_projection_table_is_named_only_by_its_owner() -> None:
    assert misplaced(OWNERS) == []


def test_every_ingest_table_is_named_only_by_its_owner() -> None:
    assert misplaced(INGEST_OWNERS) == []


def test_the_scan_finds_sql_in_constants_and_f_strings() -> None:
    source = '''
QUERY = "SELECT a FROM profiles p JOIN partners q ON true"
def f(schema, cols):
    return f"INSERT INTO {schema}.audience_members ({cols}) SELECT 1"
DDL = """CREATE TABLE IF NOT EXISTS audience_clock (x int); CREATE TABLE partners (y int)"""
COMPARED = 'SELECT card_id FROM {}.profile_card_owners'
PROSE = "what the projections read from profiles"
'''
    assert [tables for _, tables in named_tables(source)] == [
        {"audience_members"},
        {"profiles", "partners"},
        {"audience_clock"},
        {"partners"},
        {"profile_card_owners"},
    ]


def test_the_scan_finds_comma_joins_truncate_using_and_regclass() -> None:
    source = """
COMMA = "SELECT 1 FROM profiles p, partners q WHERE true"
GONE = "TRUNCATE TABLE audience_members"
JOINED = "DELETE FROM audience_clock USING audience_definitions d WHERE true"
PROBED = "SELECT to_regclass(quote_ident(s) || '.projection_tracking')"
CAST = "SELECT 'profile_parked'::regclass"
"""
    assert [tables for _, tables in named_tables(source)] == [
        {"profiles", "partners"},
        {"audience_members"},
        {"audience_clock", "audience_definitions"},
        {"projection_tracking"},
        {"profile_parked"},
    ]


def test_a_table_named_outside_its_owner_is_reported_with_module_and_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stray = tmp_path / "ledger" / "stray.py"
    stray.parent.mkdir()
    stray.write_text('COUNT = "SELECT count(*) FROM profiles"\n', "utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("ledger",))
    assert misplaced(OWNERS) == [
        "ledger/stray.py:1 names profiles (owner: projections/profiles.py)"
    ]
