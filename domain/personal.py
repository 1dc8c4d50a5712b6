"""Personal data in interactions: the one place that says which fields hold it.

A ledger that never forgets must still let a person be forgotten: the data-rights issue
encrypts exactly these fields per customer before they are recorded (crypto-shredding),
and every projection that shows them reads this list. Any new type with free text about a
person adds its fields here.
"""

from __future__ import annotations

PERSONAL_FIELDS: dict[str, frozenset[str]] = {
    "customer_enrolled": frozenset({"name", "email", "birth_date"}),
    "complaint_filed": frozenset({"description"}),
    "complaint_resolved": frozenset({"resolution"}),
    "call": frozenset({"topic"}),
    "note_added": frozenset({"text"}),  # sealed only for a customer (a partner has no key)
}
"""Interaction type -> the fields of its payload that are personal data: identifying
fields, and the free text staff write about a person (it may name anybody)."""

PROFILE_PERSONAL_FIELDS: tuple[str, ...] = ("name", "email", "birth_date")
"""The personal fields a customer profile shows (from the latest enrollment giving each)."""
