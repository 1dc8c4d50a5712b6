"""The one settings object, built from the environment by the composition root.

Nothing reads the environment at import time: `Settings.from_env()` is called by the CLI
(and by tests with their own mapping), validated once, and passed down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit


class SettingsError(Exception):
    """A configuration value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    kafka_bootstrap: str | None = None
    topic_prefix: str = "crm"
    home: Path = Path(".ledger")
    audiences_path: Path | None = None
    api_token: str | None = None
    now: datetime | None = None
    partitions: int = 6
    retention_ms: int = 7 * 24 * 3600 * 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the contract's `LEDGER_*` variables; unset ones take the documented defaults."""
        env = os.environ if env is None else env
        now_text = env.get("LEDGER_NOW") or None
        prefix = env.get("LEDGER_TOPIC_PREFIX") or "crm"
        if not all(c.isalnum() or c in "._-" for c in prefix):
            raise SettingsError(
                f"LEDGER_TOPIC_PREFIX {prefix!r} may hold only letters, digits, '.', '_', '-'"
            )
        settings = cls(
            database_url=env.get("LEDGER_DATABASE_URL") or None,
            kafka_bootstrap=env.get("LEDGER_KAFKA_BOOTSTRAP") or None,
            topic_prefix=prefix,
            home=Path(env.get("LEDGER_HOME") or ".ledger").absolute(),
            audiences_path=Path(env["LEDGER_AUDIENCES"]) if env.get("LEDGER_AUDIENCES") else None,
            api_token=env.get("LEDGER_API_TOKEN") or None,
            now=_parse_now(now_text) if now_text else None,
            retention_ms=_retention_ms(env.get("LEDGER_RETENTION_DAYS") or "7"),
        )
        if settings.database_url:
            _check_database_url(settings.database_url)
        if settings.kafka_bootstrap:
            _check_bootstrap(settings.kafka_bootstrap)
        return settings

    def with_servers(self, database_url: str, kafka_bootstrap: str) -> Settings:
        return replace(self, database_url=database_url, kafka_bootstrap=kafka_bootstrap)

    @property
    def inbound_topic(self) -> str:
        return f"{self.topic_prefix}.interactions"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}.interactions.dlq"

    @property
    def audiences_topic(self) -> str:
        return f"{self.topic_prefix}.audiences"

    @property
    def ingest_group(self) -> str:
        return f"{self.topic_prefix}-ingest"

    def clock(self) -> datetime:
        """The time every process takes as now: `LEDGER_NOW` when set, else the system clock."""
        return self.now if self.now is not None else datetime.now(UTC)


NOW_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))
"""The clocks `LEDGER_NOW` may set, as [from, to): the audience language looks up to a
hundred years either side of now (`domain.audiences.MAX_DAYS`) and a year ahead, so a clock
near the calendar's ends (year 1 or 9999) would overflow there instead of here."""


def _parse_now(text: str) -> datetime:
    """`LEDGER_NOW` in UTC; a refusal names the variable, whatever the reason (an
    out-of-range year, or a conversion to UTC that leaves the calendar)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:  # "year 0 is out of range" says more than "Invalid isoformat"
        why = "" if str(error).startswith("Invalid isoformat") else f" ({error})"
        if re.match(r"\s*[+-]?[0-9]{5,}-", text):
            why = f" (a year of more than 4 digits; it must fall from {NOW_RANGE[0]:%Y-%m-%d} "
            why += f"to before {NOW_RANGE[1]:%Y-%m-%d})"
        raise SettingsError(f"LEDGER_NOW {text!r} is not an RFC 3339 time{why}") from None
    if value.tzinfo is None:
        raise SettingsError(f"LEDGER_NOW {text!r} has no time zone")
    outside = SettingsError(
        f"LEDGER_NOW {text!r} is out of range: it must fall from {NOW_RANGE[0]:%Y-%m-%d} "
        f"to before {NOW_RANGE[1]:%Y-%m-%d} (UTC)"
    )
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is a moment before year 1 in UTC
        raise outside from None
    if not NOW_RANGE[0] <= value < NOW_RANGE[1]:
        raise outside
    return value


def _retention_ms(days: str) -> int:
    """`LEDGER_RETENTION_DAYS` (may be fractional) as Kafka's `retention.ms`."""
    try:
        value = float(days)
    except ValueError:
        value = 0.0
    if not 1 / 24 <= value <= 36500:  # at least an hour: ingest must read a message first
        raise SettingsError(
            f"LEDGER_RETENTION_DAYS {days!r} is not a number of days from 0.042 (an hour) to 36500"
        )
    return round(value * 24 * 3600 * 1000)


_ENTRY = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:\[\],/]+):(?P<port>\d{1,5})")


def _check_bootstrap(servers: str) -> None:
    """Each comma-separated entry is host:port (an IPv6 host in brackets), port 1-65535:
    Kafka clients otherwise fail later with a reason that does not name the variable."""
    for entry in servers.split(","):
        found = _ENTRY.fullmatch(entry.strip())
        if found is None or not 1 <= int(found["port"]) <= 65535:
            raise SettingsError(
                f"LEDGER_KAFKA_BOOTSTRAP entry {entry.strip()!r} is not host:port with a port "
                "from 1 to 65535 (the variable is host:port[,host:port])"
            )


def _check_database_url(url: str) -> None:
    """The URL's shape, port included; a refusal shows the URL without its password."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a port that is not a number, or beyond 65535
        port_ok = False
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not port_ok:
        raise SettingsError(
            "LEDGER_DATABASE_URL must look like postgresql://user:pw@host:port/db (a port "
            f"from 1 to 65535), not {_without_password(url)!r}"
        )


_PASSWORD_PARAMETER = re.compile(r"(password\s*=\s*)('[^']*'|[^&\s]*)", re.IGNORECASE)


def _without_password(url: str) -> str:
    """The URL with `***` for its password, in the user part, a `password=` query parameter
    or a `key=value` connection string: error lines are shown and logged."""
    url = _PASSWORD_PARAMETER.sub(r"\1***", url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}").geturl()
