"""Crypto-shredding: a customer's personal fields, sealed with that customer's own key.

Before an interaction is recorded, each personal field (`domain.personal.PERSONAL_FIELDS`)
present in its payload is replaced by `"aesgcm:" + base64(nonce || ciphertext || tag)`:
AES-256-GCM (the `cryptography` package) over the field's JSON value, with the customer
id, the interaction's event id and the field's name as associated data, so a sealed value
cannot be moved to another customer, event or field unnoticed. The hash chain covers the
sealed payload; destroying the key (forgetting the customer) leaves every chain valid and
every sealed value unreadable.

Pure: keys come in as bytes, nonces from `os.urandom` (a fresh random 96-bit nonce per
value, as NIST SP 800-38D allows for up to 2^32 values per key).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.personal import PERSONAL_FIELDS

PREFIX = "aesgcm:"
ERASED = "[erased]"
"""What a sealed field shows once its key is destroyed."""
KEY_BYTES = 32


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


_SORTED_FIELDS = {type: tuple(sorted(fields)) for type, fields in PERSONAL_FIELDS.items()}


def sealed_fields(type: str, payload: Mapping[str, Any]) -> list[str]:
    """The personal fields this payload carries (present and not null). Called twice per
    interaction on ingest: the names are sorted once, at import."""
    return [f for f in _SORTED_FIELDS.get(type, ()) if payload.get(f) is not None]


def seal(type: str, payload: dict[str, Any], customer_id: str, key: bytes) -> dict[str, Any]:
    """The payload with its personal fields sealed (a new dict; the same one if none)."""
    fields = sealed_fields(type, payload)
    if not fields:
        return payload
    aead = AESGCM(key)
    sealed = dict(payload)
    for field in fields:
        nonce = os.urandom(12)
        data = aead.encrypt(nonce, orjson.dumps(payload[field]), _aad(customer_id, payload, field))
        sealed[field] = PREFIX + base64.b64encode(nonce + data).decode()
    return sealed


def unseal(
    type: str,
    payload: Mapping[str, Any],
    customer_id: str | None,
    key: bytes | None,
    *,
    erased: Any = None,
) -> dict[str, Any]:
    """The payload with its sealed fields opened; with no key (destroyed, or a customer
    never seen) or a value that does not open, each sealed field becomes `erased`."""
    if customer_id is None:
        return dict(payload)  # no customer, no key: nothing was sealed (a partner's note)
    fields = [
        f
        for f in PERSONAL_FIELDS.get(type, ())
        if isinstance(payload.get(f), str) and payload[f].startswith(PREFIX)
    ]
    if not fields:
        return dict(payload)
    opened = dict(payload)
    aead = AESGCM(key) if key is not None else None
    for field in fields:
        opened[field] = erased
        if aead is None or customer_id is None:
            continue
        try:
            raw = base64.b64decode(payload[field][len(PREFIX) :], validate=True)
            data = aead.decrypt(raw[:12], raw[12:], _aad(customer_id, payload, field))
            opened[field] = orjson.loads(data)
        except (ValueError, InvalidTag, orjson.JSONDecodeError):
            pass
    return opened


def _aad(customer_id: str, payload: Mapping[str, Any], field: str) -> bytes:
    return f"{customer_id}\x00{payload.get('event_id', '')}\x00{field}".encode()
