"""The canonical encoding that content digests and the hash chain are computed over.

Auditors must be able to recompute every hash with another tool, so the encoding is a
published standard (RFC 8785, JSON Canonicalization Scheme) applied to plain JSON values,
never the event store's own storage bytes (which a cipher or compressor would change).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
import rfc8785

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first event of every stream."""


_MAX_SAFE_INT = 2**53 - 1


def is_plain(value: Any) -> bool:
    """True when the standard library's sorted, compact JSON equals RFC 8785 byte for byte.

    That holds for values without floats (number formatting differs), with integers in
    I-JSON's safe range, and with ASCII object keys (RFC 8785 sorts keys by UTF-16 code
    units, Python by code points; the two orders agree on ASCII). String escaping is the
    same in both. Interactions nearly always qualify (money is a decimal string).
    """
    # Explicit loops, with the common leaves (strings, booleans, null) tested in the
    # caller's loop: generator expressions and a call per leaf made this walk cost more
    # than the encoding it guards (`ledger verify` runs it for every record).
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            item_kind = type(item)
            if item_kind is str or item_kind is bool or item is None:
                continue
            if not is_plain(item):
                return False
        return True
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT
    if kind is list:
        for item in value:
            item_kind = type(item)
            if item_kind is str or item_kind is bool or item is None:
                continue
            if not is_plain(item):
                return False
        return True
    return False


_PLAIN_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
)
"""Built once: `json.dumps` with options builds a new encoder on every call."""


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value (dicts, lists, str, int, float, bool, None).

    The `rfc8785` package is the reference; it is pure Python and costs ~75 us for an
    interaction, which alone would cap ingest near 6k/s on one core. For the plain subset
    (see `is_plain`) `encode_plain` gives identical bytes in a few microseconds; unit tests
    hold the two equal.
    """
    if is_plain(value):
        try:
            return encode_plain(value)
        except UnicodeEncodeError:
            pass  # a lone surrogate: let the reference refuse it with its own error
    return rfc8785.dumps(value)


def encode_plain(value: Any) -> bytes:
    """The canonical bytes of a value the caller knows `is_plain` (no walk to check it).

    orjson with sorted keys writes the plain subset exactly as RFC 8785 does (a unit test
    holds them equal), several times faster than the standard library; what it refuses
    (a lone surrogate, nesting past 255 levels) goes to the standard library's encoder,
    which gives the same bytes or raises `UnicodeEncodeError`.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _PLAIN_ENCODER.encode(value).encode("utf-8")


def sha256_hex(value: Any) -> str:
    """SHA-256, lower-case hex, of the canonical encoding of a JSON value."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def chain_hash(
    stream: str,
    version: int,
    type: str,
    payload: Any,
    prev_hash: str,
    *,
    payload_bytes: bytes | None = None,
) -> str:
    """The hash of one recorded event, chained to its predecessor in the same stream.

    `hash = sha256(rfc8785({"stream", "version", "type", "payload", "prev_hash"}))`.

    The envelope is assembled from canonical pieces in RFC 8785's key order (payload,
    prev_hash, stream, type, version), which is byte for byte what encoding the whole
    object gives; `payload_bytes`, when the caller already holds the payload's canonical
    bytes (ingest computed them for the content digest), saves encoding it twice.
    """
    body = payload_bytes if payload_bytes is not None else canonical_bytes(payload)
    envelope = b"".join(
        (
            b'{"payload":',
            body,
            b',"prev_hash":',
            _string(prev_hash),
            b',"stream":',
            _name(stream),
            b',"type":',
            _name(type),
            b',"version":',
            b"%d" % version
            if type_of(version) is int and 0 <= version <= _MAX_SAFE_INT
            else canonical_bytes(version),
            b"}",
        )
    )
    return hashlib.sha256(envelope).hexdigest()


type_of = type  # `chain_hash` names a parameter `type`


_NAMES: dict[str, bytes] = {}
_NAMES_KEPT = 4096


def _name(value: Any) -> bytes:
    """`_string` of a stream name or event type, remembered: a stream's records come
    together (the chain check reads stream by stream, ingest appends to a cached stream)
    and types are few, so most calls skip the encoding. Bounded: cleared when full."""
    found = _NAMES.get(value) if type_of(value) is str else None
    if found is None:
        found = _string(value)
        if type_of(value) is str:
            if len(_NAMES) >= _NAMES_KEPT:
                _NAMES.clear()
            _NAMES[value] = found
    return found


def _string(value: Any) -> bytes:
    """`canonical_bytes` of a string, without its type walk: a string is in the plain
    subset, which orjson writes as RFC 8785 does (see `encode_plain`)."""
    if type_of(value) is str:
        try:
            return orjson.dumps(value)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: the reference refuses it with its own error
    return canonical_bytes(value)
