"""Settings from the environment: the retention Kafka keeps raw (personal) messages for."""

from __future__ import annotations

import re

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


@pytest.mark.parametrize(
    "servers", ["kafka:9092", "127.0.0.1:1,broker-2.example.com:65535", "[::1]:9092, b:9093"]
)
def test_a_bootstrap_list_of_host_port_entries_is_taken_as_it_is(servers: str) -> None:
    assert Settings.from_env({"LEDGER_KAFKA_BOOTSTRAP": servers}).kafka_bootstrap == servers


@pytest.mark.parametrize(
    ("servers", "bad"),
    [
        ("host:notaport", "host:notaport"),
        ("kafka", "kafka"),
        (":9092", ":9092"),
        ("a:1,b:0", "b:0"),
        ("a:1,b:65536", "b:65536"),
        ("a:1,,b:2", ""),
        ("http://kafka:9092", "http://kafka:9092"),
    ],
)
def test_a_bootstrap_entry_that_is_not_host_port_is_refused_by_name(servers: str, bad: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"LEDGER_KAFKA_BOOTSTRAP": servers})
    assert str(refused.value).startswith(f"LEDGER_KAFKA_BOOTSTRAP entry {bad!r} ")
    assert "1 to 65535" in str(refused.value)


@pytest.mark.parametrize(
    "now",
    [
        "0000-01-01T00:00:00Z",  # year 0 is no year
        "99999-01-01T00:00:00Z",  # five digits
        "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC
        "9999-12-31T23:00:00-05:00",  # after year 9999 once in UTC
        "0001-01-01T00:00:00Z",  # the audience clock tests look 100 years back
        "9999-12-31T00:00:00Z",  # and a year ahead
    ],
)
def test_a_clock_out_of_range_is_refused_naming_ledger_now(now: str) -> None:
    with pytest.raises(SettingsError, match=f"^{re.escape(f'LEDGER_NOW {now!r} ')}"):
        Settings.from_env({"LEDGER_NOW": now})


def test_a_clock_in_range_is_taken_in_utc() -> None:
    now = Settings.from_env({"LEDGER_NOW": "2026-06-15T14:00:00+02:00"}).now
    assert now is not None and now.isoformat() == "2026-06-15T12:00:00+00:00"


@pytest.mark.parametrize(
    "url", ["postgresql://app:s3cret@db:notaport/ledger", "mysql://app:s3cret@db:5432/ledger"]
)
def test_a_database_url_refused_is_shown_without_its_password(url: str) -> None:
    with pytest.raises(SettingsError, match="^LEDGER_DATABASE_URL ") as refused:
        Settings.from_env({"LEDGER_DATABASE_URL": url})
    assert "s3cret" not in str(refused.value) and "app:***@db" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://h:notaport/db?password=secret",
        "host=h password=secret",
        "host=h password='sec ret'",
        "postgresql://u:secret@h:notaport/db",
    ],
)
def test_a_refused_database_url_never_shows_its_password(url: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"LEDGER_DATABASE_URL": url})
    assert "secret" not in str(refused.value) and "sec ret" not in str(refused.value)
    assert "***" in str(refused.value)


def test_a_clock_with_a_five_digit_year_is_refused_with_the_range() -> None:
    with pytest.raises(SettingsError, match="a year of more than 4 digits; it must fall from"):
        Settings.from_env({"LEDGER_NOW": "99999-01-01T00:00:00Z"})
