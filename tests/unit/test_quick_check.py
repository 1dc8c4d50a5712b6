"""The hand check of `domain.quick_check` never accepts what the schema's pydantic models
refuse, and gives the same normalised values when both accept."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.quick_check import FIELDS, LINE_FIELDS, quick_check
from domain.schema import INTERACTION_ADAPTER, MODELS, PurchaseLine, money_text
from producers.simulator import SimulationPlan, simulate

SAMPLES: list[dict[str, Any]] = list(
    simulate(SimulationPlan(customers=40, partners=5, events=600, seed=4, retail=True))
)  # seed 4: a plan whose traffic has every type (a card replaced too)
# Merges come MERGE_LAG (2,000) interactions after the enrollments they join
# (producers.merge_traffic), so no 600-event plan has them: hand-made samples instead.
for _kind_ in ("customers_merged", "customers_unmerged"):
    if not any(o["type"] == _kind_ for o in SAMPLES):
        SAMPLES.append(
            {
                "event_id": "5f0c3a4e-9d1b-4c8e-a2f7-1b2c3d4e5f62",
                "type": _kind_,
                "occurred_at": "2024-05-01T12:30:00Z",
                "source": "crm-web",
                "survivor_id": "C-1",
                "merged_id": "C-2",
                "reason": "one person",
            }
        )


def _kind(model: Any) -> str:
    return str(model.model_fields["type"].annotation.__args__[0])


@pytest.mark.parametrize("model", MODELS, ids=_kind)
def test_the_hand_checks_fields_are_the_models(model: Any) -> None:
    fields = FIELDS[_kind(model)]
    expected = {name: info.is_required() for name, info in model.model_fields.items()}
    del expected["type"]
    assert {name: required for name, (_, required) in fields.items()} == expected


def test_the_lines_fields_are_the_models() -> None:
    expected = {name: info.is_required() for name, info in PurchaseLine.model_fields.items()}
    assert {name: required for name, (_, required) in LINE_FIELDS.items()} == expected


def test_every_simulated_interaction_passes_the_hand_check() -> None:
    for obj in SAMPLES:
        assert quick_check(obj, obj["type"]) is not None, obj


def _same_answer(obj: dict[str, Any]) -> None:
    """Where the hand check accepts, pydantic accepts with the same values."""
    checked = quick_check(obj, obj["type"])
    if checked is None:
        return
    try:
        model = INTERACTION_ADAPTER.validate_python(obj)
    except ValidationError as error:
        pytest.fail(f"hand check accepted what pydantic refuses: {obj!r}: {error}")
    assert checked.occurred_at == model.occurred_at
    if obj["type"] == "purchase":
        assert checked.total == money_text(model.total)
        assert checked.unit_prices == [money_text(line.unit_price) for line in model.lines]
    if obj["type"] == "contract_changed" and model.value is not None:
        assert checked.value == money_text(model.value)


ODD_CONSTANTS: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    10,
    11,
    -1,
    2**53 - 1,
    2**53,
    1.0,
    0.5,
    12.345,
    float("nan"),
    "",
    "x" * 200,
    "x" * 201,
    "é" * 200,
    "é" * 201,
    "\ud800",
    "12.50",
    "12.5",
    "012.50",
    "1e3",
    "-0.00",
    "999999999999999.99",
    "1000000000000000.00",
    "12.505",
    "EUR",
    "eur",
    "EURO",
    "EUR\n",
    "2024-05-01T12:30:00Z",
    "2024-05-01 12:30:00Z",
    "2024-13-01T12:30:00Z",
    "2024-05-01T12:30:00Z\n",
    "2024-02-30",
    "2024-02-28",
    "2024-02-28\n",
    "inbound",
    "low",
    "signed",
    "vendor",
    "5f0c3a4e-9d1b-4c8e-a2f7-1b2c3d4e5f60",
    "5F0C3A4E-9D1B-4C8E-A2F7-1B2C3D4E5F60",
    "5f0c3a4e-9d1b-4c8e-a2f7-1b2c3d4e5f60\n",
    "5f0c3a4e-9d1b-4c8e-a2f7-1b2c3d4e5f601",
    [],
    [1],
    {},
]
ODD_VALUES = st.sampled_from(ODD_CONSTANTS) | (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.text(max_size=5)
    | st.lists(st.integers(0, 3), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


def _names(obj: dict[str, Any]) -> list[str]:
    names = sorted(FIELDS[obj["type"]]) + ["extra"]
    lines = obj.get("lines")
    if type(lines) is not list:
        return names
    return names + [
        f"lines.{i}.{n}" for i, line in enumerate(lines) if type(line) is dict for n in LINE_FIELDS
    ]


def test_every_field_given_every_odd_value_gets_the_same_answer() -> None:
    for kind in FIELDS:
        sample = next(o for o in SAMPLES if o["type"] == kind)
        for name in _names(sample):
            for value in ODD_CONSTANTS:
                obj = copy.deepcopy(sample)
                target, key = obj, name
                if name.startswith("lines."):
                    _, index, key = name.split(".")
                    target = obj["lines"][int(index)]
                target[key] = value
                _same_answer(obj)


@hypothesis_settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 60), st.booleans(), ODD_VALUES), min_size=1, max_size=3),
)
def test_a_changed_interaction_gets_the_same_answer(
    sample: dict[str, Any], changes: list[tuple[int, bool, Any]]
) -> None:
    obj = copy.deepcopy(sample)
    for pick, drop, value in changes:
        names = _names(obj)
        name = names[pick % len(names)]
        target, key = obj, name
        if name.startswith("lines."):
            _, index, key = name.split(".")
            target = obj["lines"][int(index)]
        if drop:
            target.pop(key, None)
        else:
            target[key] = value
    _same_answer(obj)


@pytest.mark.parametrize(
    "change",
    [
        {"total": "12.5"},
        {"total": 12.5},
        {"total": 1250},
        {"lines": []},
        {"customer_id": None},
        {"schema_version": True},
    ],
)
def test_unusual_purchases_get_the_same_answer(change: dict[str, Any]) -> None:
    obj = next(o for o in SAMPLES if o["type"] == "purchase")
    _same_answer({**copy.deepcopy(obj), **change})
