"""The customer profile as a fold of the interactions that count for a customer.

Every step is commutative (counts, sums, minima and maxima, and latest-wins values keyed by
`(occurred_at, event_id)`), so the same interactions in any order give the same profile,
and the one function serves the live projection, as-of views, replay and verify. The
state is small, explicit JSON: spend per currency and per category, never the purchases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any

from domain.aggregates import CUSTOMER_FORGOTTEN
from domain.merges import MERGES
from domain.personal import PROFILE_PERSONAL_FIELDS

State = dict[str, Any]

FIELD_KINDS: dict[str, str] = {
    "customer_id": "text",
    "cards": "list",
    "retired_cards": "list",
    "merged_ids": "list",
    "enrolled_at": "time",
    "name": "text",
    "email": "text",
    "birth_date": "date",
    "marketing_consent": "bool",
    "interaction_count": "number",
    "swipe_count": "number",
    "purchase_count": "number",
    "call_count": "number",
    "total_spend": "money",
    "last_purchase_at": "time",
    "last_interaction_at": "time",
    "top_categories": "list",
    "categories": "list",
    "complaints_total": "number",
    "complaints_open": "number",
    "nps": "number",
    "return_count": "number",
    "total_refunded": "money",
    "net_spend": "money",
    "notes_count": "number",
    "last_note_at": "time",
    "stage": "text",
}
"""The profile's fields (contract section 5) and their kinds, for the audience language."""

_COUNTED = {"card_swiped": "swipe_count", "purchase": "purchase_count", "call": "call_count"}


def instant(occurred_at: str) -> str:
    """A sortable UTC key for an RFC 3339 time: fixed width, so strings compare as times.

    RFC 3339 allows a lower-case `t` and `z`, which Python 3.11's parser refuses.
    """
    if len(occurred_at) == 20 and occurred_at[4::3] == "--T::Z":
        # Whole seconds in UTC, as tills nearly always send them: checked by the parser,
        # then keyed without the time-zone round trip (a replay keys every event).
        datetime.fromisoformat(occurred_at[:19])
        return occurred_at[:19] + ".000000Z"
    moment = datetime.fromisoformat(occurred_at.upper()).astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def rfc3339(key: str | None) -> str | None:
    """The readable UTC form of an `instant` key (micro-seconds only when present)."""
    if key is None:
        return None
    return key.replace(".000000Z", "Z")


def utc_text(moment: datetime) -> str:
    """An aware datetime as RFC 3339 UTC text, in the same form as the profile's times."""
    text = moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return text.replace(".000000Z", "Z")


def new_state(customer_id: str) -> State:
    return {
        "customer_id": customer_id,
        "cards": [],
        "enrolled_at": None,
        "personal": {},  # field -> [instant, event_id, value]
        "consent": None,  # [instant, event_id, bool]
        "nps": None,  # [instant, event_id, score]
        "counts": {"interaction_count": 0, "swipe_count": 0, "purchase_count": 0, "call_count": 0},
        "spend": {},  # currency -> decimal string
        "category_spend": {},  # category -> decimal string, all currencies
        "last_purchase_at": None,
        "last_interaction_at": None,
        "complaints_total": 0,
        "complaints_resolved": 0,
        "forgotten": False,
    }
    # Returns' and notes' parts (`new_returns`, `new_notes`) are added by the first return
    # or note: a state stored before they existed then equals one folded afresh.


def new_returns() -> State:
    """The returns' part of a fold state: how many, the refunds per currency and per
    category (all currencies, as `category_spend`)."""
    return {"return_count": 0, "refunded": {}, "category_refunds": {}}


def new_notes() -> State:
    """The notes' part of a fold state (a customer's or a partner's): how many, the latest
    `occurred_at`, and the latest stage given ([instant, event_id, stage])."""
    return {"notes_count": 0, "last_note_at": None, "stage": None}


def apply_note(state: State, at: str, event_id: str, payload: dict[str, Any]) -> None:
    """Fold a `note_added` into a state holding `new_notes()` (a state folded before notes
    existed holds none yet: they start empty)."""
    for name, empty in new_notes().items():
        state.setdefault(name, empty)
    state["notes_count"] += 1
    state["last_note_at"] = latest(state["last_note_at"], at)
    if payload.get("stage") is not None and later(state["stage"], at, event_id):
        state["stage"] = [at, event_id, payload["stage"]]


def render_returns(state: State) -> dict[str, Any]:
    """`return_count`, `total_refunded` and `net_spend` (spend less refunds, for every
    currency in either) of a fold state."""
    spent, refunded = state.get("spend", {}), state.get("refunded", {})
    return {
        "return_count": state.get("return_count", 0),
        "total_refunded": {cur: money(v) for cur, v in sorted(refunded.items())},
        "net_spend": {
            cur: money(
                _EXACT.subtract(Decimal(spent.get(cur, "0")), Decimal(refunded.get(cur, "0")))
            )
            for cur in sorted(spent.keys() | refunded.keys())
        },
    }


def render_notes(state: State) -> dict[str, Any]:
    """The notes' fields of a profile or a partner status."""
    stage = state.get("stage")
    return {
        "notes_count": state.get("notes_count", 0),
        "last_note_at": rfc3339(state.get("last_note_at")),
        "stage": stage[2] if stage else None,
    }


def later(current: list[Any] | None, at: str, event_id: str) -> bool:
    return current is None or (at, event_id) > (current[0], current[1])


def latest(current: str | None, at: str) -> str:
    return at if current is None or at > current else current


_EXACT = Context(prec=80, traps=[Inexact, InvalidOperation])
"""Sums of money stay exact (the default context rounds after 28 digits)."""


def add_money(amounts: dict[str, str], key: str, amount: Decimal) -> None:
    amounts[key] = str(_EXACT.add(Decimal(amounts.get(key, "0")), amount))


def forgotten(state: State) -> bool:
    return bool(state.get("forgotten"))


def apply(state: State, type: str, payload: dict[str, Any]) -> None:
    """Fold one interaction that counts for this customer into its profile state.

    `customer_forgotten` is not an interaction: it drops the personal fields and the
    consent, and keeps them out whatever order the rest comes in."""
    if type == CUSTOMER_FORGOTTEN:
        state["forgotten"] = True
        state["personal"] = {}
        state["consent"] = None
        return
    if type in MERGES:
        return  # who is merged into whom: the shape of a tree (`combine`), not an interaction
    at = instant(payload["occurred_at"])
    event_id = payload["event_id"].lower()  # ties go to the greater UUID, whatever its case
    counts = state["counts"]
    counts["interaction_count"] += 1
    if type in _COUNTED:
        counts[_COUNTED[type]] += 1
    state["last_interaction_at"] = latest(state["last_interaction_at"], at)
    if type == "customer_enrolled":
        hold(state, "cards", payload["card_id"])
        if state["enrolled_at"] is None or at < state["enrolled_at"]:
            state["enrolled_at"] = at
        if forgotten(state):
            return
        for name in PROFILE_PERSONAL_FIELDS:
            value = payload.get(name)
            if value is not None and later(state["personal"].get(name), at, event_id):
                state["personal"][name] = [at, event_id, value]
        if later(state["consent"], at, event_id):
            state["consent"] = [at, event_id, bool(payload.get("marketing_consent", False))]
    elif type == "consent_changed":
        if not forgotten(state) and later(state["consent"], at, event_id):
            state["consent"] = [at, event_id, payload["marketing_consent"]]
    elif type == "purchase":
        state["last_purchase_at"] = latest(state["last_purchase_at"], at)
        add_money(state["spend"], payload["currency"], Decimal(payload["total"]))
        for line in payload["lines"]:
            add_money(
                state["category_spend"],
                line["category"],
                line["quantity"] * Decimal(line["unit_price"]),
            )
    elif type == "complaint_filed":
        state["complaints_total"] += 1
    elif type == "complaint_resolved":
        state["complaints_resolved"] += 1
    elif type == "survey_answered" and later(state["nps"], at, event_id):
        state["nps"] = [at, event_id, payload["score"]]
    elif type == "note_added":
        apply_note(state, at, event_id, payload)
    elif type == "card_replaced":
        hold(state, "cards", payload["new_card_id"])
        hold(state, "retired_cards", payload["old_card_id"])
    elif type == "purchase_returned":
        for name, empty in new_returns().items():
            state.setdefault(name, empty)  # a state folded before returns existed
        state["return_count"] += 1
        add_money(state["refunded"], payload["currency"], Decimal(payload["total"]))
        for line in payload["lines"]:
            amount = line["quantity"] * Decimal(line["unit_price"])
            add_money(state["category_refunds"], line["category"], amount)


def hold(state: State, name: str, card_id: str) -> None:
    """Add a card to the sorted list `name` (`retired_cards` is added by the first
    replacement, as the returns' part)."""
    cards = state.get(name, [])
    if card_id not in cards:
        state[name] = sorted([*cards, card_id])


def render(state: State) -> dict[str, Any]:
    """The profile of contract section 5 from a fold state."""
    personal = state["personal"]
    retired = state.get("retired_cards", ())
    refunds = state.get("category_refunds", {})
    net = {
        name: _EXACT.subtract(Decimal(spent), Decimal(refunds.get(name, "0")))
        for name, spent in state["category_spend"].items()
    }
    by_spend = sorted(((n, v) for n, v in net.items() if v > 0), key=lambda kv: (-kv[1], kv[0]))
    return {
        "customer_id": state["customer_id"],
        "cards": [card for card in state["cards"] if card not in retired],
        "retired_cards": state.get("retired_cards", []),
        "merged_ids": state.get("merged_ids", []),
        "enrolled_at": rfc3339(state["enrolled_at"]),
        **{
            name: personal[name][2] if name in personal else None
            for name in PROFILE_PERSONAL_FIELDS
        },
        "marketing_consent": state["consent"][2] if state["consent"] else False,
        **state["counts"],
        "total_spend": {cur: money(v) for cur, v in sorted(state["spend"].items())},
        "last_purchase_at": rfc3339(state["last_purchase_at"]),
        "last_interaction_at": rfc3339(state["last_interaction_at"]),
        "top_categories": [name for name, _ in by_spend[:3]],
        "categories": sorted(state["category_spend"]),
        "complaints_total": state["complaints_total"],
        "complaints_open": state["complaints_total"] - state["complaints_resolved"],
        "nps": state["nps"][2] if state["nps"] else None,
        **render_returns(state),
        **render_notes(state),
    }


def in_order(profile: dict[str, Any]) -> dict[str, Any]:
    """A stored profile with its keys back in the contract's order (jsonb sorts them); a
    profile stored before a field existed shows it empty until the customer's next change
    (or a replay)."""
    empty = {
        **render_returns({}),
        **render_notes({}),
        "net_spend": profile.get("total_spend"),
        "retired_cards": [],
        "merged_ids": [],
    }
    return {name: profile[name] if name in profile else empty.get(name) for name in FIELD_KINDS}


def money(value: Any) -> str:
    """A decimal amount as the read models show money: a string with two decimals."""
    return f"{Decimal(str(value)):.2f}"


def fold(customer_id: str, interactions: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The profile of a customer from its interactions, in any order."""
    state = new_state(customer_id)
    for type, payload in interactions:
        apply(state, type, payload)
    return render(state)
