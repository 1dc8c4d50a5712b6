"""Forgetting a customer, with no server: the streams it closes, the profile fold that drops
the personal fields in any order, the memberships that leave, the audiences that need
consent."""

from __future__ import annotations

import itertools
import json
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from domain import conditions, errors
from domain import profile as fold
from domain.aggregates import CUSTOMER_FORGOTTEN, Card, Customer, card_stream
from domain.audiences import load_audiences
from domain.forgetting import check_reason, forget, forget_event_id, mentioned_ids, named_ids
from domain.interactions import validate_object
from domain.membership import ERASED, Membership, leave
from domain.recording import record, streams_named

NOW = datetime(2026, 6, 15, tzinfo=UTC)
AT = "2026-06-15T00:00:00Z"
_IDS = itertools.count(1)


def enrolled(customer: str, card: str) -> Any:
    return validate_object(
        {
            "event_id": f"00000000-0000-4000-8000-{next(_IDS):012d}",
            "type": "customer_enrolled",
            "occurred_at": "2026-06-01T09:00:00Z",
            "source": "pos-1",
            "customer_id": customer,
            "card_id": card,
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "marketing_consent": True,
        }
    )


def swiped(card: str, customer: str | None = None) -> Any:
    obj = {
        "event_id": f"00000000-0000-4000-8000-{next(_IDS):012d}",
        "type": "card_swiped",
        "occurred_at": "2026-06-02T09:00:00Z",
        "source": "pos-1",
        "card_id": card,
        "store_id": "S-1",
    }
    return validate_object(obj | ({"customer_id": customer} if customer else {}))


def ledger_of(*interactions: Any) -> dict[str, Any]:
    streams: dict[str, Any] = {}
    holders: dict[str, str] = {}
    for ix in interactions:
        for name in streams_named(ix):
            streams.setdefault(name, None)
        for stream in record(ix, streams, holders):
            streams[stream.stream] = stream
    return streams


def test_forget_closes_the_customer_and_every_card_it_holds() -> None:
    streams = ledger_of(enrolled("C-1", "K-1"), enrolled("C-1", "K-2"), swiped("K-1"))
    customer = streams["customer-C-1"]
    cards = {c: streams[card_stream(c)] for c in ("K-1", "K-2")}

    done = forget(customer, cards, "erasure request", AT)

    assert done.event_id == forget_event_id("C-1")
    assert [s.stream for s in done.streams] == ["customer-C-1", "card-K-1", "card-K-2"]
    assert done.card_ids == ["K-1", "K-2"]
    assert set(done.payload) == {"event_id", "type", "customer_id", "occurred_at", "reason"}
    last = [s.collect_events()[-1] for s in done.streams]
    assert {e.kind for e in last} == {CUSTOMER_FORGOTTEN}
    assert all("name" not in e.payload and "email" not in e.payload for e in last)


@pytest.mark.parametrize(
    ("later", "reason"),
    [
        (lambda: swiped("K-1"), "card 'K-1' belongs to a forgotten customer"),
        (lambda: swiped("K-1", "C-1"), "card 'K-1' belongs to a forgotten customer"),
        (lambda: swiped("K-1", "C-2"), "card 'K-1' belongs to a forgotten customer"),
        (lambda: enrolled("C-1", "K-9"), "customer 'C-1' was forgotten"),
        (lambda: enrolled("C-2", "K-1"), "card 'K-1' belongs to a forgotten customer"),
    ],
)
def test_nothing_is_recorded_after_a_forget(later: Any, reason: str) -> None:
    streams = ledger_of(enrolled("C-1", "K-1"))
    done = forget(streams["customer-C-1"], {"K-1": streams["card-K-1"]}, "request", AT)
    streams.update((s.stream, s) for s in done.streams)
    ix = later()
    for name in streams_named(ix):
        streams.setdefault(name, None)
    with pytest.raises(errors.CustomerForgotten) as refused:
        record(ix, streams, {"K-1": "C-1"})
    assert refused.value.reason == reason


def test_a_second_forget_is_refused_by_the_rules() -> None:
    streams = ledger_of(enrolled("C-1", "K-1"))
    customer: Customer = streams["customer-C-1"]
    card: Card = streams["card-K-1"]
    forget(customer, {"K-1": card}, "request", AT)
    with pytest.raises(errors.CustomerForgotten):
        forget(customer, {"K-1": card}, "again", AT)


def test_the_profile_drops_the_personal_fields_whatever_the_order() -> None:
    ix = enrolled("C-1", "K-1")
    interactions = [
        (ix.type, ix.payload),
        ("consent_changed", {**ix.payload, "type": "consent_changed", "event_id": "e-2"}),
        (CUSTOMER_FORGOTTEN, {"event_id": "e-3", "customer_id": "C-1", "occurred_at": AT}),
    ]
    profiles = [fold.fold("C-1", order) for order in itertools.permutations(interactions)]
    assert all(p == profiles[0] for p in profiles)
    profile = profiles[0]
    assert (profile["name"], profile["email"], profile["birth_date"]) == (None, None, None)
    assert profile["marketing_consent"] is False
    assert profile["interaction_count"] == 2  # forgetting is not an interaction
    assert profile["cards"] == ["K-1"]


def test_a_forgotten_member_leaves_with_reason_erased_and_keeps_no_inputs() -> None:
    member = Membership(
        "birthday_this_month", "C-1", True, NOW, "joined", 3, "11", NOW, {"birth_date": "x"}
    )
    row, change = leave(member, NOW, ERASED)
    assert (row.member, row.reason, row.seq, row.inputs, row.next_flip) == (
        False,
        "erased",
        4,
        None,
        None,
    )
    assert change is not None and (change.change, change.reason, change.seq) == (
        "exited",
        "erased",
        4,
    )
    outsider = Membership("big_spenders", "C-1", False, None, None, 0, "0", NOW, {"x": 1})
    row, change = leave(outsider, NOW, ERASED)
    assert change is None and row.inputs is None and row.next_flip is None


def test_every_built_in_marketing_audience_requires_consent() -> None:
    text = (Path(__file__).parents[2] / "ledger" / "audiences.toml").read_text()
    for audience in load_audiences(text, "built-in"):
        if "not marketing" in audience.description:
            continue
        assert isinstance(audience.condition, conditions.All), audience.name
        tests = [t for t in audience.condition.children if isinstance(t, conditions.Test)]
        assert any((t.field, t.op, t.value) == ("marketing_consent", "==", True) for t in tests), (
            audience.name
        )


@pytest.mark.parametrize(
    "reason",
    ["Ada  Lovelace", "Lovelace, Ada asked", "ada\u00a0lovelace", "by ADA@EXAMPLE.COM"],
)
def test_a_reason_that_names_the_person_is_refused(reason: str) -> None:
    with pytest.raises(ValueError, match="names the person"):
        check_reason(reason, ["Ada Lovelace", "ada@example.com"])


@pytest.mark.parametrize("reason", ["", " ", "a\rb", "x\x00y", "bidi\u202eevil", "zero\u200bw"])
def test_a_reason_that_is_not_one_visible_line_is_refused(reason: str) -> None:
    with pytest.raises(ValueError, match="on one line"):
        check_reason(reason)


def test_a_fair_reason_is_kept_stripped() -> None:
    assert check_reason("  legal request, ticket 7  ", ["Al Lovelace"]) == (
        "legal request, ticket 7"
    )


@pytest.mark.parametrize(
    ("raw", "ids"),
    [
        (b'{"customer_id": "C\\u002d1"}', {"C-1"}),
        (b'{"lines": [{"card_id": " K-1 "}]}', {"K-1"}),
        (b'{"type": "x", "customer_id": "C-1", "name": "Ad', {"C-1"}),
    ],
)
def test_the_ids_a_raw_message_names(raw: bytes, ids: set[str]) -> None:
    assert named_ids(raw) == ids


def test_a_reason_in_decomposed_unicode_is_still_the_name() -> None:
    decomposed = unicodedata.normalize("NFD", "Zoë Müller asked")
    with pytest.raises(ValueError, match="names the person"):
        check_reason(decomposed, ["Zoë Müller"])


@pytest.mark.parametrize(
    "raw",
    [
        b"not json at all: Liam Lopez K-1",
        b"{not json 'C-1' Liam",
        b'{bad "customer C-1" Liam',
        b'"C-1 Liam Lopez"',
    ],
)
def test_a_message_that_is_no_json_object_mentions_every_token(raw: bytes) -> None:
    assert mentioned_ids(raw) & {"C-1", "K-1"}


def test_ingest_checks_every_id_of_a_rejected_message_and_200_words() -> None:
    """A forgotten person named after 200 decoys must still be found."""
    from domain.forgetting import mentioned_ids

    decoys = [{"customer_id": f"C-{i}"} for i in range(36_000)]
    many = json.dumps({"items": [*decoys, {"customer_id": "FG1"}]}).encode()
    assert len(mentioned_ids(many)) == 36_001 and "FG1" in mentioned_ids(many)
    words = b" ".join(f"w{i}".encode() for i in range(10_000))
    assert len(mentioned_ids(words)) == 200
