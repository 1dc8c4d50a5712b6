"""The partner status fold (`domain.partner`) against contract section 5 (Partner status) and
section 4's contract-change rule.

Payloads are made the way the ledger records them: producer objects passed through
`domain.interactions.validate_object`, so money is normalised text and dates are strings.
"""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

import pytest

from domain.interactions import validate_object
from domain.partner import apply, in_order, new_state, render, renewal_due

_SEQUENCE = itertools.count(1)
Event = tuple[str, dict[str, Any]]


def _event_id() -> str:
    return f"00000000-0000-4000-8000-{next(_SEQUENCE):012d}"


def recorded(
    kind: str, occurred_at: str = "2024-01-01T10:00:00Z", *, event_id: str = "", **fields: Any
) -> Event:
    """(kind, payload) of one partner interaction as the ledger records it."""
    ix = validate_object(
        {
            "event_id": event_id or _event_id(),
            "type": kind,
            "occurred_at": occurred_at,
            "source": "erp",
            "partner_id": "p-1",
            **fields,
        }
    )
    return (ix.type, ix.payload)


def contract(contract_id: str, change: str, **fields: Any) -> Event:
    occurred_at = fields.pop("occurred_at", "2024-01-01T10:00:00Z")
    return recorded(
        "contract_changed", occurred_at, contract_id=contract_id, change=change, **fields
    )


def opened(dispute_id: str) -> Event:
    return recorded("dispute_opened", dispute_id=dispute_id, reason="late deliveries")


def resolved(dispute_id: str) -> Event:
    return recorded("dispute_resolved", dispute_id=dispute_id, resolution="credit note")


def status(*events: Event) -> dict[str, Any]:
    state = new_state("p-1")
    for kind, payload in events:
        apply(state, kind, payload)
    return render(state)


TERMS = {"value": "1000", "currency": "EUR", "effective_at": "2024-01-01", "ends_at": "2024-12-31"}


# --- status ---------------------------------------------------------------------------------


def test_a_partner_without_events_is_a_prospect() -> None:
    assert status() == {
        "partner_id": "p-1",
        "kind": None,
        "status": "prospect",
        "contracts": {},
        "active_contract_value": {},
        "disputes_open": 0,
        "disputes_total": 0,
        "notes_count": 0,
        "last_note_at": None,
        "stage": None,
    }


def test_a_partner_with_only_a_dispute_and_no_contract_is_a_prospect() -> None:
    assert status(opened("d-1"))["status"] == "prospect"


def test_a_proposed_contract_makes_a_prospect() -> None:
    rendered = status(contract("c-1", "proposed", **TERMS))
    assert rendered["status"] == "prospect"
    assert rendered["contracts"] == {
        "c-1": {
            "status": "proposed",
            "value": "1000.00",
            "currency": "EUR",
            "effective_at": "2024-01-01",
            "ends_at": "2024-12-31",
        }
    }
    assert rendered["active_contract_value"] == {}


@pytest.mark.parametrize("change", ["signed", "renewed"])
def test_signed_or_renewed_makes_the_contract_and_partner_active(change: str) -> None:
    rendered = status(contract("c-1", "proposed", **TERMS), contract("c-1", change))
    assert rendered["contracts"]["c-1"]["status"] == "active"
    assert rendered["status"] == "active"


def test_amended_keeps_the_status() -> None:
    proposed = status(contract("c-1", "proposed"), contract("c-1", "amended", value="5"))
    assert proposed["contracts"]["c-1"]["status"] == "proposed"
    active = status(
        contract("c-1", "proposed"), contract("c-1", "signed"), contract("c-1", "amended")
    )
    assert active["contracts"]["c-1"]["status"] == "active"


def test_an_active_contract_and_an_open_dispute_is_at_risk_until_it_is_resolved() -> None:
    signed = (contract("c-1", "proposed"), contract("c-1", "signed"))
    at_risk = status(*signed, opened("d-1"))
    assert (at_risk["status"], at_risk["disputes_open"], at_risk["disputes_total"]) == (
        "at_risk",
        1,
        1,
    )
    again = status(*signed, opened("d-1"), opened("d-2"), resolved("d-1"))
    assert (again["status"], again["disputes_open"], again["disputes_total"]) == ("at_risk", 1, 2)
    calm = status(*signed, opened("d-1"), resolved("d-1"))
    assert (calm["status"], calm["disputes_open"], calm["disputes_total"]) == ("active", 0, 1)


def test_an_open_dispute_without_an_active_contract_is_not_at_risk() -> None:
    assert status(contract("c-1", "proposed"), opened("d-1"))["status"] == "prospect"
    ended = status(contract("c-1", "proposed"), contract("c-1", "terminated"), opened("d-1"))
    assert ended["status"] == "terminated"


def test_terminated_when_every_contract_is_terminated() -> None:
    one_left = (
        contract("c-1", "proposed"),
        contract("c-1", "signed"),
        contract("c-2", "proposed"),
        contract("c-1", "terminated"),
    )
    assert status(*one_left)["status"] == "prospect"
    rendered = status(*one_left, contract("c-2", "terminated"))
    assert rendered["status"] == "terminated"
    assert {c["status"] for c in rendered["contracts"].values()} == {"terminated"}


def test_one_active_contract_among_terminated_ones_is_active() -> None:
    rendered = status(
        contract("c-1", "proposed"),
        contract("c-1", "terminated"),
        contract("c-2", "proposed"),
        contract("c-2", "signed"),
    )
    assert rendered["status"] == "active"


def test_a_terminated_contract_keeps_its_terms() -> None:
    rendered = status(contract("c-1", "proposed", **TERMS), contract("c-1", "terminated"))
    assert rendered["contracts"]["c-1"] == {"status": "terminated", **TERMS, "value": "1000.00"}


# --- a change replaces only the terms it supplies -------------------------------------------


def test_a_change_replaces_only_the_terms_it_supplies() -> None:
    proposed = contract("c-1", "proposed", **TERMS)
    amended = status(proposed, contract("c-1", "amended", value="1200.5"))
    assert amended["contracts"]["c-1"] == {
        "status": "proposed",
        "value": "1200.50",
        "currency": "EUR",
        "effective_at": "2024-01-01",
        "ends_at": "2024-12-31",
    }
    renewed = status(
        proposed,
        contract("c-1", "signed"),
        contract("c-1", "renewed", ends_at="2025-12-31"),
        contract("c-1", "amended", currency="USD", effective_at="2024-02-01"),
    )
    assert renewed["contracts"]["c-1"] == {
        "status": "active",
        "value": "1000.00",
        "currency": "USD",
        "effective_at": "2024-02-01",
        "ends_at": "2025-12-31",
    }


def test_a_contract_proposed_without_terms_has_null_terms() -> None:
    assert status(contract("c-1", "proposed"))["contracts"]["c-1"] == {
        "status": "proposed",
        "value": None,
        "currency": None,
        "effective_at": None,
        "ends_at": None,
    }


def test_a_number_value_is_kept_as_a_decimal_string() -> None:
    rendered = status(contract("c-1", "proposed", value=99.9, currency="EUR"))
    assert rendered["contracts"]["c-1"]["value"] == "99.90"


# --- active contract value ------------------------------------------------------------------


def test_active_contract_value_sums_active_contracts_per_currency() -> None:
    rendered = status(
        contract("a", "proposed", value="1000", currency="EUR"),
        contract("a", "signed"),
        contract("b", "proposed", value="250.50", currency="EUR"),
        contract("b", "signed"),
        contract("c", "proposed", value="300", currency="USD"),
        contract("c", "renewed"),
        contract("d", "proposed", value="999", currency="EUR"),  # proposed only
        contract("e", "proposed", value="5000", currency="EUR"),
        contract("e", "signed"),
        contract("e", "terminated"),
        contract("f", "proposed", value="0", currency="GBP"),
        contract("f", "signed"),
    )
    assert rendered["active_contract_value"] == {
        "EUR": "1250.50",
        "GBP": "0.00",
        "USD": "300.00",
    }


def test_active_contract_value_follows_an_amended_value() -> None:
    rendered = status(
        contract("a", "proposed", value="1000", currency="EUR"),
        contract("a", "signed"),
        contract("a", "amended", value="800"),
    )
    assert rendered["active_contract_value"] == {"EUR": "800.00"}


# --- kind: latest-wins by occurred_at ----------------------------------------------------------


def kind_of(*changes: tuple[str, str, str]) -> str | None:
    """The rendered kind after changes given as (occurred_at, event_id suffix, kind)."""
    events = [
        contract(
            "c-1",
            "proposed" if i == 0 else "amended",
            occurred_at=at,
            event_id=f"00000000-0000-4000-8000-{suffix}",
            **({"partner_kind": kind} if kind else {}),
        )
        for i, (at, suffix, kind) in enumerate(changes)
    ]
    return status(*events)["kind"]


def test_kind_is_the_partner_kind_of_the_latest_change_by_occurred_at() -> None:
    assert kind_of(("2024-01-01T00:00:00Z", "000000000001", "vendor")) == "vendor"
    # recorded later but occurred earlier: does not win
    assert (
        kind_of(
            ("2024-03-01T00:00:00Z", "000000000001", "vendor"),
            ("2024-02-01T00:00:00Z", "000000000002", "supplier"),
        )
        == "vendor"
    )
    assert (
        kind_of(
            ("2024-02-01T00:00:00Z", "000000000001", "vendor"),
            ("2024-03-01T00:00:00Z", "000000000002", "supplier"),
        )
        == "supplier"
    )


def test_kind_compares_times_not_text() -> None:
    # 12:00+02:00 is 10:00Z, before 11:00Z
    assert (
        kind_of(
            ("2024-01-01T11:00:00Z", "000000000001", "vendor"),
            ("2024-01-01T12:00:00+02:00", "000000000002", "reseller"),
        )
        == "vendor"
    )


@pytest.mark.parametrize("first_greater", [True, False])
def test_kind_tie_on_occurred_at_goes_to_the_greater_event_id(first_greater: bool) -> None:
    big = ("2024-01-01T00:00:00Z", "00000000000f", "distributor")
    small = ("2024-01-01T00:00:00Z", "00000000000a", "vendor")
    assert kind_of(*((big, small) if first_greater else (small, big))) == "distributor"


def test_kind_tie_compares_event_ids_ignoring_case() -> None:
    upper = ("2024-01-01T00:00:00Z", "00000000000F", "reseller")
    lower = ("2024-01-01T00:00:00Z", "00000000000a", "vendor")
    assert kind_of(upper, lower) == kind_of(lower, upper) == "reseller"


def test_a_change_without_partner_kind_keeps_the_kind() -> None:
    assert (
        kind_of(
            ("2024-01-01T00:00:00Z", "000000000001", "vendor"),
            ("2024-06-01T00:00:00Z", "000000000002", ""),
        )
        == "vendor"
    )
    assert kind_of(("2024-01-01T00:00:00Z", "000000000001", "")) is None


# --- stored order and renewal -------------------------------------------------------------------


def test_in_order_puts_a_stored_status_back_in_the_contract_order() -> None:
    rendered = status(
        contract("c-9", "proposed", **TERMS), contract("c-10", "proposed"), opened("d")
    )
    # jsonb gives keys back shortest first, then by bytes
    stored = {k: rendered[k] for k in sorted(rendered, key=lambda k: (len(k), k))}
    stored["contracts"] = {
        cid: {k: terms[k] for k in sorted(terms, key=lambda k: (len(k), k))}
        for cid, terms in sorted(rendered["contracts"].items(), key=lambda i: (len(i[0]), i[0]))
    }
    ordered = in_order(stored)
    assert ordered == rendered
    assert list(ordered) == [
        "partner_id",
        "kind",
        "status",
        "contracts",
        "active_contract_value",
        "disputes_open",
        "disputes_total",
        "notes_count",
        "last_note_at",
        "stage",
    ]
    assert list(ordered["contracts"]) == ["c-10", "c-9"]
    assert list(ordered["contracts"]["c-9"]) == [
        "status",
        "value",
        "currency",
        "effective_at",
        "ends_at",
    ]


TODAY = date(2024, 6, 15)  # + 60 days is 14 August 2024


def active_until(contract_id: str, ends_at: str | None) -> tuple[Event, Event]:
    terms = {"ends_at": ends_at} if ends_at else {}
    return contract(contract_id, "proposed", **terms), contract(contract_id, "signed")


def test_renewal_due_lists_active_contracts_ending_within_60_days() -> None:
    rendered = status(
        *active_until("ends-today", "2024-06-15"),
        *active_until("ends-day-60", "2024-08-14"),
        *active_until("ends-day-61", "2024-08-15"),
        *active_until("ended-unrenewed", "2024-05-01"),
        *active_until("open-ended", None),
        contract("proposed-soon", "proposed", ends_at="2024-07-01"),
        *active_until("terminated-soon", "2024-07-01"),
        contract("terminated-soon", "terminated"),
    )
    assert renewal_due(in_order(rendered), TODAY) == [
        "ended-unrenewed",
        "ends-day-60",
        "ends-today",
    ]


def test_renewing_with_a_later_end_takes_a_contract_off_the_list() -> None:
    due = (*active_until("c-1", "2024-07-01"),)
    assert renewal_due(status(*due), TODAY) == ["c-1"]
    renewed = status(*due, contract("c-1", "renewed", ends_at="2025-07-01"))
    assert renewal_due(renewed, TODAY) == []


def noted(occurred_at: str, event_id: str, **fields: Any) -> Event:
    return recorded(
        "note_added",
        occurred_at,
        event_id=event_id,
        note_id=f"n-{event_id[-3:]}",
        author="account-manager-2",
        text="pricing call went well",
        **fields,
    )


def test_notes_count_and_the_latest_stage_wins_whatever_the_recorded_order() -> None:
    notes = [
        noted("2024-03-01T10:00:00Z", "00000000-0000-4000-8000-000000000101", stage="proposal"),
        noted("2024-02-01T10:00:00Z", "00000000-0000-4000-8000-000000000102", stage="lead"),
        noted("2024-03-01T12:00:00+02:00", "00000000-0000-4000-8000-000000000100", stage="won"),
        noted("2024-04-01T10:00:00Z", "00000000-0000-4000-8000-000000000103"),
    ]
    for ordering in (notes, notes[::-1]):
        rendered = status(*ordering)
        assert (rendered["notes_count"], rendered["last_note_at"]) == (4, "2024-04-01T10:00:00Z")
        assert rendered["stage"] == "proposal"  # 10:00Z twice: the greater event_id wins


def test_a_status_stored_before_notes_shows_none_yet() -> None:
    stored = status(contract("c-1", "proposed"))
    for name in ("notes_count", "last_note_at", "stage"):
        del stored[name]
    assert in_order(stored)["notes_count"] == 0 and in_order(stored)["stage"] is None
