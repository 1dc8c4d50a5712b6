"""Who is merged into whom, as the profile projection knows it: the table `profile_merges`
(merged id -> survivor id, the open merges), written in the projection's page transaction
(`projections.profiles`) from the survivors' `customers_merged` and `customers_unmerged`.

A root's profile is the fold of its whole tree (`domain.profile_tree.combine` of each member's
own fold state), and every member's row holds that same document, with `root_id` naming
the root for the members that are not it: a read of a merged customer answers its root's
profile with no second query (contract section 8).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from psycopg import Cursor

from domain.merges import MERGED, root_of
from projections import copy_text

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS profile_merges (
    merged_id text PRIMARY KEY,
    survivor_id text NOT NULL
);
"""

_COMPONENTS = """
WITH RECURSIVE up (customer_id) AS (
    SELECT unnest(%s::text[])
    UNION
    SELECT m.survivor_id FROM profile_merges m JOIN up ON m.merged_id = up.customer_id
), down (customer_id) AS (
    SELECT customer_id FROM up
    UNION
    SELECT m.merged_id FROM profile_merges m JOIN down ON m.survivor_id = down.customer_id
)
SELECT merged_id, survivor_id FROM profile_merges WHERE merged_id IN (SELECT customer_id FROM down)
"""

COMPARED: tuple[tuple[str, str], ...] = (
    ("merge", 'SELECT merged_id COLLATE "C", survivor_id FROM {}.profile_merges'),
)
"""What `ledger verify` compares of this table (`projections.compare`)."""


def edges(curs: Cursor[Any], customers: Iterable[str]) -> dict[str, str]:
    """Every open merge of the trees these customers belong to (merged id -> survivor id)."""
    wanted = sorted(set(customers))
    if not wanted:
        return {}
    curs.execute(_COMPONENTS, (wanted,))
    return {row["merged_id"]: row["survivor_id"] for row in curs.fetchall()}


def every_edge(curs: Cursor[Any]) -> dict[str, str]:
    """Every open merge (`curs`: a tuple-row cursor; a rebuild's, where they are few)."""
    curs.execute("SELECT merged_id, survivor_id FROM profile_merges")
    return {str(m): str(s) for m, s in curs.fetchall()}


def follow(parents: dict[str, str], type: str, payload: Mapping[str, Any]) -> None:
    """A merge or unmerge applied to the edges (recorded, so the rules held)."""
    if type == MERGED:
        parents[payload["merged_id"]] = payload["survivor_id"]
    else:
        parents.pop(payload["merged_id"], None)


def members(parents: Mapping[str, str], root_id: str) -> list[str]:
    """The root and every customer of its tree."""
    children: dict[str, list[str]] = {}
    for merged, survivor in parents.items():
        children.setdefault(survivor, []).append(merged)
    found, todo = [], [root_id]
    while todo:
        customer = todo.pop()
        found.append(customer)
        todo.extend(children.get(customer, ()))
    return found


def roots(parents: Mapping[str, str], customers: Iterable[str]) -> set[str]:
    return {root_of(parents, customer) for customer in customers}


def write(curs: Cursor[Any], before: Mapping[str, str], after: Mapping[str, str]) -> None:
    """Store the page's changes to the edges (`before`: as loaded, `after`: as the page
    left them)."""
    gone = [m for m in before if m not in after]
    new = {m: s for m, s in after.items() if before.get(m) != s}
    if gone:
        curs.execute("DELETE FROM profile_merges WHERE merged_id = ANY(%s)", (gone,))
    if new:
        curs.execute(
            "INSERT INTO profile_merges (merged_id, survivor_id) "
            "SELECT * FROM unnest(%s::text[], %s::text[]) "
            "ON CONFLICT (merged_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id",
            (list(new), list(new.values())),
        )


def copy_rows(curs: Cursor[Any], parents: Mapping[str, str]) -> None:
    """Bulk-load open merges into `profile_merges` (a rebuild, `projections.rebuild`)."""
    t = copy_text
    lines = (t.line((t.text(m), t.text(s))) for m, s in parents.items())
    with curs.copy("COPY profile_merges (merged_id, survivor_id) FROM STDIN") as copy:
        for chunk in t.chunks(lines):
            copy.write(chunk)
