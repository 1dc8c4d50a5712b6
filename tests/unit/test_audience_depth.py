"""Audience files nested deeper than any real audience: refused with the file, the line and
the reason (`domain.audiences.MAX_DEPTH`), never a RecursionError."""

from __future__ import annotations

import pytest

from domain.audiences import MAX_DEPTH, AudienceFileError, load_audiences

TEST = '{ field = "nps", op = ">=", value = 9 }'
HEAD = '[audiences.deep]\ndescription = "deep"\n'


def nested_not(levels: int) -> str:
    """`not = { not = { ... test ... } }`: `levels` nots, in inline tables."""
    return HEAD + "not = " + "{ not = " * (levels - 1) + TEST + " }" * (levels - 1) + "\n"


def test_inline_tables_3000_deep_are_refused_with_file_and_line() -> None:
    with pytest.raises(AudienceFileError) as refused:
        load_audiences(nested_not(3000), "deep.toml")
    assert str(refused.value) == (
        f"deep.toml, line 3: arrays and inline tables nested deeper than {MAX_DEPTH} levels"
    )


def test_arrays_3000_deep_are_refused() -> None:
    text = HEAD + "all = " + "[" * 3000 + TEST + "]" * 3000 + "\n"
    with pytest.raises(AudienceFileError, match=f"^deep.toml, line 3: .* deeper than {MAX_DEPTH}"):
        load_audiences(text, "deep.toml")


def test_dotted_keys_3000_deep_are_refused_as_a_condition_too_deep() -> None:
    """Dotted keys nest tables without a bracket: the condition's own depth is bounded."""
    text = HEAD + "not." * 3000 + 'field = "nps"\n' + "not." * 3000 + 'op = "exists"\n'
    with pytest.raises(AudienceFileError) as refused:
        load_audiences(text, "dotted.toml")
    assert str(refused.value).startswith("dotted.toml, line ")
    assert f"audience 'deep': the condition nests all/any/not deeper than {MAX_DEPTH}" in str(
        refused.value
    )


def test_a_condition_at_the_limit_loads_and_one_past_it_is_refused() -> None:
    (audience,) = load_audiences(nested_not(MAX_DEPTH - 1), "ok.toml")
    assert audience.tests[0].describe() == "nps >= 9"
    with pytest.raises(AudienceFileError, match="deeper than"):
        load_audiences(nested_not(MAX_DEPTH + 1), "deep.toml")


def test_brackets_in_strings_and_comments_do_not_count() -> None:
    brackets = "[{" * 200
    text = (
        f'# {brackets}\n[audiences.a]\ndescription = "{brackets}"\n'
        f"note = '''{brackets}\n{brackets}'''\n"
    )
    with pytest.raises(AudienceFileError) as refused:  # refused for `note`, not for depth
        load_audiences(text, "a.toml")
    assert "deeper" not in str(refused.value)
    test = 'field = "nps"\nop = ">="\nvalue = 9\n'
    plain = f'[audiences.a]\ndescription = "{brackets} \\" {brackets}"\n{test}'
    (audience,) = load_audiences(plain, "a.toml")
    assert audience.description.startswith("[{")
