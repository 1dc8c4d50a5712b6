"""The one settings object, built from the environment by the composition root.

Nothing reads the environment at import time: `Settings.from_env()` is called by the CLI
(and by tests with their own mapping), validated once, and passed down.
"""

from __future__ import annotations

import os
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


def _parse_now(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise SettingsError(f"LEDGER_NOW {text!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise SettingsError(f"LEDGER_NOW {text!r} has no time zone")
    return value.astimezone(UTC)


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


def _check_database_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise SettingsError(
            f"LEDGER_DATABASE_URL must look like postgresql://user:pw@host:port/db, not {url!r}"
        )
