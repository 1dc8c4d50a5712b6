"""`domain.canonical`: the RFC 8785 encoding and the hash chain computed over it.

`canonical_bytes` takes a fast path (`json.dumps`) for "plain" values and hands everything
else to the `rfc8785` package; these tests hold the two byte-for-byte equal, and make
sure that what RFC 8785 refuses is refused the same way.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from domain.canonical import GENESIS_HASH, canonical_bytes, chain_hash, sha256_hex

# --- strategies -------------------------------------------------------------------------

# Every code point but lone surrogates (those are tested on their own below): control
# characters, DEL, non-ASCII letters, U+2028/U+2029, and astral characters (two UTF-16
# code units, which is where RFC 8785's key order and Python's differ).
_CHARS = st.characters(exclude_categories=["Cs"])
_TRICKY_CHARS = st.sampled_from(
    [
        "\x00",
        "\x08",
        "\t",
        "\n",
        "\x0c",
        "\r",
        "\x1f",
        '"',
        "\\",
        "/",
        "\x7f",
        "\u00e9",
        "\u2028",
        "\u2029",
        "\ufeff",
        "\uffff",
        "\U00010000",
        "\U0001f600",
        "\U0010ffff",
    ]
)
_STRINGS = st.text(st.one_of(_CHARS, _TRICKY_CHARS), max_size=12)
_ASCII_KEYS = st.text(st.characters(max_codepoint=0x7F), max_size=6)
_KEYS = st.one_of(_ASCII_KEYS, _STRINGS)

_SAFE = 2**53 - 1
_INTEGERS = st.one_of(
    st.integers(min_value=-_SAFE, max_value=_SAFE),
    st.integers(min_value=_SAFE - 3, max_value=_SAFE + 3),
    st.integers(min_value=-_SAFE - 3, max_value=-_SAFE + 3),
    st.integers(),  # unbounded: far beyond 2**53 too
    st.sampled_from([2**53, -(2**53), 2**63, 2**64 + 1, -(10**30)]),
)
_FLOATS = st.floats()  # NaN and infinities included: RFC 8785 refuses them
_SCALARS = st.one_of(st.none(), st.booleans(), _INTEGERS, _FLOATS, _STRINGS)

JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(_KEYS, children, max_size=5),
    ),
    max_leaves=30,
)

# The plain subset that takes the `json.dumps` path: no floats, safe integers, ASCII keys.
PLAIN_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-_SAFE, max_value=_SAFE), _STRINGS),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(_ASCII_KEYS, children, max_size=5),
    ),
    max_leaves=30,
)


def _outcome(encode: Any, value: Any) -> tuple[str, Any]:
    """What an encoder does with a value: its bytes, or the class of what it raised."""
    try:
        return ("bytes", encode(value))
    except Exception as error:  # the class itself is what is compared
        return ("raised", type(error))


def _independent_chain_hash(
    stream: str, version: int, kind: str, payload: Any, prev_hash: str
) -> str:
    """The documented chain hash, computed with hashlib and rfc8785 only."""
    document = {
        "stream": stream,
        "version": version,
        "type": kind,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


# --- canonical_bytes ----------------------------------------------------------------------


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES)
@example({"\uffff": 1, "\U00010000": 2, "a": 3})  # UTF-16 order puts the astral key first
@example({"é": 1, "z": 2, "Z": 3, "": 4})
@example([2**53 - 1, -(2**53 - 1)])
@example({"big": 2**53})
@example({"n": -(2**53)})
@example({"x": 1.0, "y": -0.0, "z": 1e21, "w": 1e-7, "v": 5e-324})
@example({"ctl": '\x00\x01\x1f\x7f\b\t\n\f\r"\\/'})
@example({"nan": float("nan")})
@example([float("inf")])
def test_canonical_bytes_equal_rfc8785_or_fail_the_same_way(value: Any) -> None:
    assert _outcome(canonical_bytes, value) == _outcome(rfc8785.dumps, value)


@settings(max_examples=600)
@given(PLAIN_VALUES)
def test_the_plain_fast_path_gives_rfc8785_bytes(value: Any) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("value", [2**53, -(2**53), 2**64, -(10**30)])
def test_an_integer_beyond_the_safe_range_is_refused_like_rfc8785(value: int) -> None:
    with pytest.raises(rfc8785.IntegerDomainError):
        rfc8785.dumps({"n": value})
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical_bytes({"n": value})


@pytest.mark.parametrize("value", [2**53 - 1, -(2**53 - 1)])
def test_the_largest_safe_integers_are_encoded_plainly(value: int) -> None:
    assert canonical_bytes({"n": value}) == b'{"n":%d}' % value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_float_is_refused_like_rfc8785(value: float) -> None:
    with pytest.raises(rfc8785.FloatDomainError):
        canonical_bytes([value])


@pytest.mark.parametrize(
    "value",
    [
        "\ud800",  # plain value: the fast path
        {"note": "a\udfffb"},  # plain value nested in an ASCII-keyed object
        {"größe": "\ud800"},  # non-ASCII key: the rfc8785 path
        {"\ud83d": 1},  # a lone surrogate as a key
    ],
)
def test_a_lone_surrogate_is_refused_with_the_same_error_as_rfc8785(value: Any) -> None:
    outcome = _outcome(canonical_bytes, value)
    assert outcome[0] == "raised" and issubclass(outcome[1], ValueError)
    assert outcome == _outcome(rfc8785.dumps, value)


def test_keys_are_ordered_by_utf16_code_units_not_code_points() -> None:
    value = {"\uffff": 1, "\U0001f600": 2, "a": 3}
    assert canonical_bytes(value) == '{"a":3,"\U0001f600":2,"\uffff":1}'.encode()


def test_non_ascii_text_is_written_as_utf8_not_escaped() -> None:
    assert canonical_bytes({"name": "Zoë 𝄞"}) == '{"name":"Zoë 𝄞"}'.encode()


def test_control_characters_use_the_short_escapes_and_lower_case_hex() -> None:
    assert canonical_bytes("\b\t\n\f\r\x00\x1f\x7f") == b'"\\b\\t\\n\\f\\r\\u0000\\u001f\x7f"'


def test_sha256_hex_is_the_digest_of_the_canonical_bytes() -> None:
    value = {"b": [1, "two", None], "a": True}
    assert sha256_hex(value) == hashlib.sha256(b'{"a":true,"b":[1,"two",null]}').hexdigest()


# --- chain_hash ---------------------------------------------------------------------------

_PAYLOAD = {
    "event_id": "6f1c2a4e-9b3d-4c8e-a1f2-3d4e5f6a7b8c",
    "occurred_at": "2024-05-01T12:30:00Z",
    "source": "pos-store-17",
    "type": "purchase",
    "customer_id": "c-42",
    "store_id": "s-17",
    "order_id": "o-1001",
    "currency": "EUR",
    "total": "25.00",
    "lines": [{"sku": "bk-1", "category": "books", "quantity": 2, "unit_price": "12.50"}],
}
_PREV = "ab" * 32
_KNOWN_HASH = "be9277860efb9f6e6c489c6240007c833429d16e04af3d4338d88b8ad4a56a02"

# A payload off the fast path: a float, a non-ASCII key, an astral key, -0.0.
_ODD_PAYLOAD = {
    "event_id": "6f1c2a4e-9b3d-4c8e-a1f2-3d4e5f6a7b8c",
    "note": "Zoë ☕ 𝄞",
    "größe": 1.5,
    "\U0001f600": [1e21, -0.0, None, True],
}
_ODD_KNOWN_HASH = "b42ad4cd726c3e64720b6bfb1e08e3306bff8be7e87e454574820fedd392d6c9"


def test_chain_hash_of_a_fixed_event_is_a_known_value() -> None:
    assert _independent_chain_hash("customer-c-42", 3, "purchase", _PAYLOAD, _PREV) == _KNOWN_HASH
    assert chain_hash("customer-c-42", 3, "purchase", _PAYLOAD, _PREV) == _KNOWN_HASH


def test_chain_hash_of_a_payload_off_the_fast_path_is_a_known_value() -> None:
    assert (
        _independent_chain_hash("customer-c-42", 1, "call", _ODD_PAYLOAD, GENESIS_HASH)
        == _ODD_KNOWN_HASH
    )
    assert chain_hash("customer-c-42", 1, "call", _ODD_PAYLOAD, GENESIS_HASH) == _ODD_KNOWN_HASH


def test_chain_hash_ignores_key_order_of_the_payload() -> None:
    reordered = dict(reversed(list(_PAYLOAD.items())))
    assert chain_hash("customer-c-42", 3, "purchase", reordered, _PREV) == _KNOWN_HASH


def test_the_genesis_hash_is_64_zeros() -> None:
    assert GENESIS_HASH == "0" * 64


_CHANGED_PAYLOAD = {**_PAYLOAD, "total": "25.01"}


@pytest.mark.parametrize(
    ("stream", "version", "kind", "payload", "prev_hash"),
    [
        pytest.param("customer-c-43", 3, "purchase", _PAYLOAD, _PREV, id="stream"),
        pytest.param("customer-c-42", 4, "purchase", _PAYLOAD, _PREV, id="version"),
        pytest.param("customer-c-42", 3, "card_swiped", _PAYLOAD, _PREV, id="type"),
        pytest.param("customer-c-42", 3, "purchase", _CHANGED_PAYLOAD, _PREV, id="payload"),
        pytest.param("customer-c-42", 3, "purchase", _PAYLOAD, "ac" * 32, id="prev_hash"),
    ],
)
def test_chain_hash_changes_with_each_hashed_field(
    stream: str, version: int, kind: str, payload: Any, prev_hash: str
) -> None:
    assert chain_hash(stream, version, kind, payload, prev_hash) != _KNOWN_HASH


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=_STRINGS,
    version=st.integers(min_value=1, max_value=_SAFE),
    kind=_STRINGS,
    payload=st.dictionaries(_KEYS, JSON_VALUES, max_size=4),
    prev_hash=st.text("0123456789abcdef", min_size=64, max_size=64),
)
def test_chain_hash_is_the_sha256_of_the_rfc8785_document(
    stream: str, version: int, kind: str, payload: dict[str, Any], prev_hash: str
) -> None:
    args = (stream, version, kind, payload, prev_hash)
    # equal hashes, or the same refusal (an unsafe integer or a non-finite float)
    assert _outcome(lambda a: chain_hash(*a), args) == _outcome(
        lambda a: _independent_chain_hash(*a), args
    )


def test_the_chain_hash_from_an_interactions_own_canonical_bytes_equals_the_reference() -> None:
    from domain.interactions import validate_object

    ix = validate_object(
        {
            "event_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "type": "purchase",
            "occurred_at": "2026-01-02T03:04:05+01:00",
            "source": "pos-1",
            "card_id": "K-1",
            "store_id": "S",
            "order_id": "O",
            "currency": "EUR",
            "total": 12.5,
            "lines": [{"sku": "a", "category": "é", "quantity": 2, "unit_price": "6.25"}],
            "note": {"z": 1, "a": [True, None]},
        }
    )
    assert ix.canonical == rfc8785.dumps(ix.payload)
    reference = hashlib.sha256(
        rfc8785.dumps(
            {
                "stream": "card-K-1",
                "version": 7,
                "type": ix.type,
                "payload": ix.payload,
                "prev_hash": "ab" * 32,
            }
        )
    ).hexdigest()
    fast = chain_hash("card-K-1", 7, ix.type, ix.payload, "ab" * 32, payload_bytes=ix.canonical)
    assert fast == reference
