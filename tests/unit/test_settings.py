"""Settings from the environment: the retention Kafka keeps raw (personal) messages for."""

from __future__ import annotations

import pytest

from ledger.settings import Settings, SettingsError

DAY_MS = 24 * 3600 * 1000


def test_retention_is_seven_days_unless_configured() -> None:
    assert Settings.from_env({}).retention_ms == 7 * DAY_MS
    assert Settings.from_env({"LEDGER_RETENTION_DAYS": "1.5"}).retention_ms == 36 * 3600 * 1000


@pytest.mark.parametrize("days", ["0", "-1", "soon", "nan", "40000", "1e-9", "0.01"])
def test_a_retention_that_is_not_a_sensible_number_of_days_is_refused(days: str) -> None:
    with pytest.raises(SettingsError, match="LEDGER_RETENTION_DAYS"):
        Settings.from_env({"LEDGER_RETENTION_DAYS": days})
