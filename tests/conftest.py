"""Real servers for the whole suite: the embedded PostgreSQL and Tansu broker, started once
per test session; each test gets its own database and topic prefix."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from ledger import bootstrap, embedded
from ledger.settings import Settings

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
"""The clock of every test's settings (`LEDGER_NOW` for subprocesses)."""


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.EmbeddedServers]:
    home = tmp_path_factory.mktemp("ledger-home")
    started = embedded.up(home)
    yield started
    embedded.down(home)


@pytest.fixture
def make_settings(servers: embedded.EmbeddedServers, tmp_path: Path) -> Callable[[], Settings]:
    """A factory of fresh databases and topic prefixes, with schema and topics created."""

    return lambda: new_settings(servers, tmp_path)


def new_settings(servers: embedded.EmbeddedServers, home: Path) -> Settings:
    """A fresh database and topic prefix on the session's servers, schema and topics made."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = servers.database_url.rsplit("/", 1)[0] + "/" + name
    ready = Settings(
        database_url=url,
        kafka_bootstrap=servers.kafka_bootstrap,
        topic_prefix=name,
        home=home,
        now=NOW,  # audiences are evaluated on a pinned clock, so runs compare equal
    )
    bootstrap.init_schema(ready)
    bootstrap.init_topics(ready)
    return ready


@pytest.fixture
def settings(make_settings: Callable[[], Settings]) -> Settings:
    """A fresh database and topic prefix, with schema and topics created."""
    return make_settings()


@pytest.fixture
def small(settings: Settings) -> Settings:
    """A fresh ledger holding one customer, C-1 with card K-1 and a purchase, projected."""
    from support import enrollment, ingest, keyed, project, publish, purchase

    publish(settings, [keyed(enrollment("C-1", "K-1")), keyed(purchase(customer_id="C-1"))])
    ingest(settings)
    project(settings)
    return settings
