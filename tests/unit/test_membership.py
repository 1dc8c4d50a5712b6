"""A clock pass's `tick` (stored inputs and answers) agrees with a full `step` on the
profile, so skipping the profile in the pass changes nothing a reader can see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.audiences import load_audiences
from domain.membership import step, tick

AUDIENCES = load_audiences(
    (Path(__file__).parents[2] / "ledger" / "audiences.toml").read_text(), "built-in"
)
START = datetime(2026, 1, 1, tzinfo=UTC)


def moment(days: float) -> str:
    return (START + timedelta(days=days)).isoformat().replace("+00:00", "Z")


profiles = st.fixed_dictionaries(
    {
        "customer_id": st.just("C-1"),
        "marketing_consent": st.booleans(),
        "purchase_count": st.integers(0, 6),
        "last_purchase_at": st.none() | st.floats(0, 700).map(moment),
        "enrolled_at": st.none() | st.floats(-400, 700).map(moment),
        "birth_date": st.none() | st.dates().map(lambda d: d.isoformat()),
        "complaints_open": st.integers(0, 2),
        "nps": st.none() | st.integers(0, 10),
        "total_spend": st.fixed_dictionaries({"EUR": st.sampled_from(["10.00", "2000.00"])}),
        "categories": st.lists(st.sampled_from(["grocery", "bakery", "toys"]), unique=True),
    }
)


@settings(max_examples=300, deadline=None)
@given(profiles, st.floats(0, 500), st.floats(0, 400))
def test_tick_agrees_with_a_full_step_on_the_unchanged_profile(
    profile: dict[str, object], first: float, later: float
) -> None:
    then, now = START + timedelta(days=first), START + timedelta(days=first + later)
    for audience in AUDIENCES:
        stored, _ = step(audience, "C-1", None, profile, then, "event")
        if stored is None or stored.next_flip is None:
            continue  # a row the clock cannot change is never due
        assert tick(audience, stored, now, "clock") == step(
            audience, "C-1", stored, profile, now, "clock"
        )
