"""Forgetting a customer (`ledger forget`): the events that close its streams for good.

Pure: given the customer's stream and the streams of the cards it holds, append a
`customer_forgotten` event to each (no personal data in them: ids, the time, and on the
customer's stream the operator's reason) and return the streams that gained one. From then
on the streams' rules refuse every interaction (`CustomerForgotten`); the application
destroys the customer's key in the same transaction, so the sealed personal fields of the
earlier events can no longer be opened, while every hash chain stays valid.

Also pure, and here because forgetting needs them: what a reason may say (`check_reason`),
and which raw messages are about the person (`names_person`, `mentioned_ids`), so that dead
letters about them can be emptied.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import orjson

from domain.aggregates import CUSTOMER_FORGOTTEN, Card, Customer, LedgerStream, card_stream

REASON_MAX = 500
ID_FIELDS = ("customer_id", "card_id", "survivor_id", "merged_id", "old_card_id", "new_card_id")
IDENTIFYING = ("name", "email")
"""The values a person is recognised by in free text (reasons, dead letters), besides the
ids: a birth date or a description would match other people's messages too."""


def identifying(payloads: Iterable[Mapping[str, Any]]) -> set[str]:
    """The names and e-mails these opened payloads give the person."""
    return {p[f] for p in payloads for f in IDENTIFYING if isinstance(p.get(f), str)}


_HIDDEN = r"\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
REASON_PATTERN = rf"^[^{_HIDDEN}]*[^\s{_HIDDEN}][^{_HIDDEN}]*$"
"""One line of visible text, not blank: no control, format or invisible character, no line
or paragraph separator. The API's OpenAPI document publishes it as the reason's pattern."""


def check_reason(text: str, personal: Collection[str] = ()) -> str:
    """The reason, stripped, if it may be kept for ever in the clear: one line of 1 to 500
    characters (`REASON_PATTERN`) that names none of the person's `personal` values.
    Raises ValueError saying what is wrong."""
    if len(text) > REASON_MAX or not re.fullmatch(REASON_PATTERN, text):
        raise ValueError(f"give a reason of 1 to {REASON_MAX} visible characters on one line")
    if any(_names(text, value) for value in personal if value):
        raise ValueError("the reason names the person: say why, not who (it is kept for ever)")
    return text.strip()


def _names(text: str, value: str) -> bool:
    """Whether `text` holds `value`: every word of a name, in any order and spacing, or
    an e-mail address as it is; compared in any case, and as Unicode NFKC (a composed and
    a decomposed `ë` look the same)."""
    text, value = _plain(text), _plain(value)
    if "@" in value:
        return value in text
    words = set(re.findall(r"\w+", text))
    wanted = re.findall(r"\w+", value)
    return bool(wanted) and all(w in words for w in wanted)


def _plain(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


_RAW_ID = re.compile(
    rb'"(?:customer_id|card_id|survivor_id|merged_id|old_card_id|new_card_id)"'
    rb'\s*:\s*"((?:[^"\\]|\\.)*)"'
)


def named_ids(value: bytes | None) -> set[str]:
    """The customer and card ids (`ID_FIELDS`) a raw message names anywhere in it, spaces
    around them ignored (a reader would still see whom it is about); read from the text
    when the message is not valid JSON (a truncated one, say)."""
    return set(_named(value, _parsed(value)))


_NOT_JSON = object()


def _parsed(value: bytes | None) -> Any:
    """The message's JSON value, or `_NOT_JSON`: parsed once per message by each test."""
    try:
        return orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _named(value: bytes | None, document: Any) -> Iterator[str]:
    if document is not _NOT_JSON:
        yield from (item.strip() for key, item in _walk(document) if _is_id(key, item))
        return
    for raw in _RAW_ID.findall(value or b""):
        try:
            yield orjson.loads(b'"' + raw + b'"').strip()
        except orjson.JSONDecodeError:
            yield raw.decode("utf-8", "replace").strip()


def _is_id(key: Any, item: Any) -> bool:
    return key in ID_FIELDS and isinstance(item, str)


_TOKEN = re.compile(rb"[^\s\"',;:{}\[\]()]{1,200}")


TOKENS_MAX = 200
"""The most words of a message that is not a JSON object taken for possible ids."""


def mentioned_ids(value: bytes | None) -> set[str]:
    """What might be a customer or card id in a raw message: every id it names (all of
    them: one left unchecked could keep a forgotten person's data; a message of 1 MiB
    names at most some tens of thousands, checked in well under a second), and for a
    message that is not a JSON object its first `TOKENS_MAX` word-like tokens, since no
    field name tells which one is an id."""
    document = _parsed(value)
    named = set(_named(value, document))
    if isinstance(document, dict):
        return named
    tokens = _TOKEN.findall(value or b"")[:TOKENS_MAX]
    return named | {t.decode("utf-8", "replace") for t in tokens}


def _walk(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (key, value) of a parsed message in document order, a list's items with the
    key None: walked with a stack of iterators, not by recursion, since a rejected message
    may nest as deep as its parser allows."""
    stack: list[Iterator[tuple[Any, Any]]] = [iter([(None, node)])]
    while stack:
        pair = next(stack[-1], None)
        if pair is None:
            stack.pop()
            continue
        yield pair
        _, item = pair
        if isinstance(item, dict):
            stack.append(iter(item.items()))
        elif isinstance(item, list):
            stack.append((None, element) for element in item)


def names_person(value: bytes | None, ids: Collection[str], personal: Collection[str]) -> bool:
    """Whether a raw message (a dead letter's bytes) is about the person: it names one of
    `ids` (`named_ids`), or any text in it, or its raw bytes when it is not JSON, holds one
    of the `personal` values."""
    if not value:
        return False
    document = _parsed(value)
    if set(_named(value, document)) & set(ids):
        return True
    needles = [v.casefold() for v in personal if v]
    if document is _NOT_JSON:
        text = value.decode("utf-8", "replace").casefold()
        return any(n in text for n in needles) or any(f'"{i}"'.casefold() in text for i in ids)
    return any(n in text.casefold() for text in _texts(document) for n in needles)


def _texts(node: Any) -> Iterator[str]:
    """Every string of a parsed message, keys too."""
    for key, item in _walk(node):
        if isinstance(key, str):
            yield key
        if isinstance(item, str):
            yield item


def forget_event_id(customer_id: str) -> str:
    """One id per customer (uuid5), so a repeated `forget` is told apart from a first."""
    return str(uuid5(NAMESPACE_URL, f"urn:customer-ledger:forget:{customer_id}"))


@dataclass(frozen=True)
class Forgetting:
    event_id: str
    payload: dict[str, Any]  # the customer stream's event
    streams: list[LedgerStream]  # the customer's, then each card's
    card_ids: list[str]


def forget(
    customer: Customer, cards: Mapping[str, Card | None], reason: str, at: str
) -> Forgetting:
    """Record the forgetting on the customer's stream and each card it holds.

    Raises `CustomerForgotten` if it already was (the rules refuse anything after it).
    """
    customer_id = customer.customer_id
    event_id = forget_event_id(customer_id)
    common: dict[str, Any] = {
        "event_id": event_id,
        "type": CUSTOMER_FORGOTTEN,
        "customer_id": customer_id,
        "occurred_at": at,
    }
    payload = {**common, "reason": reason}
    customer.append(CUSTOMER_FORGOTTEN, event_id, payload)
    touched: list[LedgerStream] = [customer]
    held = []
    for card_id in customer.cards:  # its enrollments: every card it holds
        card = cards.get(card_id)
        closing = {**common, "card_id": card_id}
        if card is None:  # held, never used alone: its stream begins closed
            card = Card.open(card_stream(card_id), CUSTOMER_FORGOTTEN, event_id, closing)
        elif card.owner not in (None, customer_id) or card.forgotten:
            continue
        else:
            card.append(CUSTOMER_FORGOTTEN, event_id, closing)
        touched.append(card)
        held.append(card_id)
    return Forgetting(event_id, payload, touched, held)


ERASED_DIGEST = "erased"
"""The content digest of a forgotten customer's interactions: the sha256 of a payload
with plaintext fields would let anyone check a guess of them. A message about them sent
again finds this digest and is not recorded."""
ERASED_ERROR = "erased: it named a forgotten customer"
"""The reason a dead letter about a forgotten customer keeps, in place of one that may
quote a field."""
