"""Personal data in interactions: the one place that says which fields hold it.

A ledger that never forgets must still let a person be forgotten: the data-rights issue
encrypts exactly these fields per customer before they are recorded (crypto-shredding),
and every projection that shows them reads this list. Any new type with free text about a
person adds its fields here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PERSONAL_FIELDS: dict[str, frozenset[str]] = {
    "customer_enrolled": frozenset({"name", "email", "birth_date"}),
    "complaint_filed": frozenset({"description"}),
    "complaint_resolved": frozenset({"resolution"}),
    "call": frozenset({"topic"}),
    "note_added": frozenset({"text"}),  # sealed only for a customer (a partner has no key)
    "customers_merged": frozenset({"reason"}),  # sealed with the survivor's key
    "customers_unmerged": frozenset({"reason"}),
}
"""Interaction type -> the fields of its payload that are personal data: identifying
fields, and the free text staff write about a person (it may name anybody)."""

PROFILE_PERSONAL_FIELDS: tuple[str, ...] = ("name", "email", "birth_date")
"""The personal fields a customer profile shows (from the latest enrollment giving each)."""


def key_holder(payload: Mapping[str, Any]) -> str | None:
    """The customer whose key seals a recorded payload's personal fields: the customer it
    names, or a merge's survivor (on whose stream it is recorded); None: a partner's or a
    card's, which carry none."""
    return payload.get("customer_id") or payload.get("survivor_id")
