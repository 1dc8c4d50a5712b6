"""Partner status (contract section 5) as a fold of a partner's stream, in recorded order.

Unlike the profile, this fold follows the order in which the ledger recorded the stream
(the contract lifecycle is a sequence: each change replaces the terms it supplies), which
is the order the ingest checked its rules in. Only `kind` is latest-wins by `occurred_at`.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from domain.profile import apply_note, instant, money, render_notes

State = dict[str, Any]
RENEWAL_WINDOW_DAYS = 60

_STATUS_OF_CHANGE = {
    "proposed": "proposed",
    "signed": "active",
    "renewed": "active",
    "terminated": "terminated",
}
_TERMS = ("value", "currency", "effective_at", "ends_at")


def new_state(partner_id: str) -> State:
    return {
        "partner_id": partner_id,
        "kind": None,  # [instant, event_id, kind]
        "contracts": {},  # contract_id -> {status, value, currency, effective_at, ends_at}
        "disputes_total": 0,
        "disputes_resolved": 0,
    }  # the notes' part (`new_notes`) is added by the first note, as on a profile


def apply(state: State, type: str, payload: dict[str, Any]) -> None:
    """Fold the partner's next recorded interaction (of this `type`) into its state."""
    if type == "contract_changed":
        contract = state["contracts"].setdefault(
            payload["contract_id"], {"status": "proposed", **dict.fromkeys(_TERMS)}
        )
        contract["status"] = _STATUS_OF_CHANGE.get(payload["change"], contract["status"])
        for term in _TERMS:
            if payload.get(term) is not None:
                contract[term] = money(payload[term]) if term == "value" else payload[term]
        if payload.get("partner_kind") is not None:
            at, event_id = instant(payload["occurred_at"]), payload["event_id"].lower()
            current = state["kind"]
            if current is None or (at, event_id) > (current[0], current[1]):
                state["kind"] = [at, event_id, payload["partner_kind"]]
    elif type == "dispute_opened":
        state["disputes_total"] += 1
    elif type == "dispute_resolved":
        state["disputes_resolved"] += 1
    elif type == "note_added":
        apply_note(state, instant(payload["occurred_at"]), payload["event_id"].lower(), payload)


FIELDS = (
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
)
CONTRACT_FIELDS = ("status", *_TERMS)


def in_order(status: dict[str, Any]) -> dict[str, Any]:
    """A stored status with its keys back in the contract's order (jsonb sorts them)."""
    empty = render_notes({})  # a status stored before notes existed has none yet
    document = {name: status[name] if name in status else empty[name] for name in FIELDS}
    document["contracts"] = {
        cid: {name: terms[name] for name in CONTRACT_FIELDS}
        for cid, terms in sorted(status["contracts"].items())
    }
    return document


def render(state: State) -> dict[str, Any]:
    """The partner status of contract section 5."""
    contracts = state["contracts"]
    statuses = {c["status"] for c in contracts.values()}
    disputes_open = state["disputes_total"] - state["disputes_resolved"]
    if "active" in statuses:
        status = "at_risk" if disputes_open else "active"
    elif "proposed" in statuses or not contracts:
        status = "prospect"
    else:
        status = "terminated"
    active_value: dict[str, Decimal] = {}
    for contract in contracts.values():
        if contract["status"] == "active" and contract["value"] and contract["currency"]:
            currency = contract["currency"]
            active_value[currency] = active_value.get(currency, Decimal(0)) + Decimal(
                contract["value"]
            )
    return {
        "partner_id": state["partner_id"],
        "kind": state["kind"][2] if state["kind"] else None,
        "status": status,
        "contracts": {cid: dict(contracts[cid]) for cid in sorted(contracts)},
        "active_contract_value": {cur: money(v) for cur, v in sorted(active_value.items())},
        "disputes_open": disputes_open,
        "disputes_total": state["disputes_total"],
        **render_notes(state),
    }


def renewal_due(status: dict[str, Any], today: date) -> list[str]:
    """Active contracts that end within the renewal window from `today` (or have ended
    without a renewal), sorted: what an account manager must act on."""
    horizon = today + timedelta(days=RENEWAL_WINDOW_DAYS)
    return sorted(
        contract_id
        for contract_id, contract in status["contracts"].items()
        if contract["status"] == "active"
        and contract["ends_at"] is not None
        and date.fromisoformat(contract["ends_at"]) <= horizon
    )
