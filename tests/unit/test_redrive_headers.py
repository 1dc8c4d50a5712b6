"""What a redriven record carries, and the dead-letter page cursor, without servers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from services.dead_letter_list import CURSOR, BadCursor, cursor_of, place_of
from services.redrive import redriven_headers
from store.dead_letters import Listed


def test_the_original_headers_go_back_with_redriven_from_replacing_an_earlier_one() -> None:
    headers = [
        (b"trace-id", b"t-1"),
        (b"redriven_from", b"0:1"),
        (b"error", b"copied from the dead-letter topic"),
        (b"source_offset", b"7"),
        (b"\xff", b"not UTF-8"),
        (b"nothing", None),
        (b"tenant", b"\x00\x01"),
    ]
    sent, left_out = redriven_headers(headers, ("cluster/topic", 3, 42))
    assert sent == [("trace-id", b"t-1"), ("tenant", b"\x00\x01"), ("redriven_from", b"3:42")]
    assert left_out == 2


def test_a_cursor_names_the_place_it_came_from() -> None:
    at = datetime(2026, 6, 1, 12, 30, 5, 123456, tzinfo=UTC)
    listed = Listed("abc/def.1", 4, 99, None, "invalid", "why", at, False)
    text = cursor_of(listed)
    assert re.fullmatch(CURSOR, text)
    assert place_of(text) == (at, "abc/def.1", 4, 99)
    with pytest.raises(BadCursor):
        place_of("yesterday")
