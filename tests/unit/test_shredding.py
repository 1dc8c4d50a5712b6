"""Sealing personal fields: only they are sealed, each opens with its customer's key only,
and without the key they read as erased."""

from __future__ import annotations

from domain.shredding import ERASED, PREFIX, new_key, seal, unseal

ENROLLED = {
    "event_id": "e-1",
    "type": "customer_enrolled",
    "customer_id": "C-1",
    "card_id": "K-1",
    "name": "Ada Lovelace",
    "email": "ada@example.org",
    "birth_date": "1815-12-10",
    "marketing_consent": True,
}


def test_personal_fields_are_sealed_and_open_again_with_the_key() -> None:
    key = new_key()
    sealed = seal("customer_enrolled", ENROLLED, "C-1", key)
    assert {f for f, v in sealed.items() if str(v).startswith(PREFIX)} == {
        "name",
        "email",
        "birth_date",
    }
    assert "Ada" not in str(sealed) and sealed["card_id"] == "K-1"
    assert unseal("customer_enrolled", sealed, "C-1", key) == ENROLLED
    assert seal("swipe", {"card_id": "K-1"}, "C-1", key) == {"card_id": "K-1"}


def test_without_the_right_key_or_customer_the_fields_read_as_erased() -> None:
    key = new_key()
    sealed = seal("customer_enrolled", ENROLLED, "C-1", key)
    for customer, used in (("C-1", None), ("C-1", new_key()), ("C-2", key)):
        opened = unseal("customer_enrolled", sealed, customer, used, erased=ERASED)
        assert (opened["name"], opened["email"], opened["birth_date"]) == (ERASED,) * 3
        assert opened["marketing_consent"] is True
    moved = dict(sealed, event_id="e-2")
    assert unseal("customer_enrolled", moved, "C-1", key)["name"] is None, "bound to its event"
