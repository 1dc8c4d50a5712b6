"""The composition root: the one place where settings become servers, recorders,
producers, consumers and applications. Entry points (CLI, workers, HTTP) call in here."""

from __future__ import annotations

import contextlib
import logging
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from eventsourcing.application import Application
from eventsourcing.postgres import PostgresFactory, PostgresTrackingRecorder
from eventsourcing.utils import Environment
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from consumers.application import CACHE_MAXSIZE, LedgerApplication
from consumers.kafka_headers import read_undecodable_header_names
from consumers.loader import BatchLoader
from consumers.log_ids import log_id
from consumers.relay import DeadLetterRelay
from domain.audiences import Audience, AudienceFileError, load_audiences
from ledger import embedded
from ledger.errors import first_line
from ledger.ingest_worker import IngestWorker
from ledger.settings import Settings
from projections import positions, tables
from projections.audience_outbox import AudienceRelay
from services.ingest import Ingest
from services.ledger import Ledger
from services.ports import Ports
from store import (
    card_holdings,
    dead_letters,
    ingest_batches,
    interaction_index,
    locks,
    merges,
    offsets,
)
from store.keys import SCHEMA_SQL as KEYS_SCHEMA
from store.keys import PostgresKeyStore
from store.locks import Lock

log = logging.getLogger(__name__)

INGEST_SCHEMAS = (
    interaction_index.SCHEMA_SQL,
    card_holdings.SCHEMA_SQL,
    merges.SCHEMA_SQL,
    dead_letters.SCHEMA_SQL,
    offsets.SCHEMA_SQL,
    ingest_batches.SCHEMA_SQL,
    KEYS_SCHEMA,
)
"""The ingest side's tables, each from its owner in `store/`."""

KAFKA_GROUP_TIMEOUTS: dict[str, int] = {
    # A group join waits out the rebalance timeout (max_poll_interval_ms) on the embedded
    # broker; short timeouts make a join take seconds, not the default ~25 s.
    "max_poll_interval_ms": 5_000,
    "session_timeout_ms": 6_000,
    "heartbeat_interval_ms": 1_000,
}


def with_servers(settings: Settings) -> Settings:
    """Settings with both server addresses: configured ones, else the embedded servers
    under `LEDGER_HOME` (started if they are not running)."""
    if not (settings.database_url and settings.kafka_bootstrap):
        servers = embedded.up(settings.home)
        settings = settings.with_servers(
            settings.database_url or servers.database_url,
            settings.kafka_bootstrap or servers.kafka_bootstrap,
        )
    assert settings.database_url
    # Fail in seconds with the server's own reason, not after the pool's 30 s wait.
    psycopg.connect(settings.database_url, connect_timeout=5).close()
    return settings


def postgres_env(database_url: str) -> dict[str, str]:
    """The eventsourcing library's PostgreSQL settings for a `postgresql://` URL."""
    parts = urlsplit(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_MAX_OVERFLOW": "4",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        # The library's database-function insert skips the recorder's `_insert_events`
        # hook, where each batch's offsets, index rows and dead letters are written.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
    }


def ledger_application(settings: Settings, *, create_tables: bool = False) -> LedgerApplication:
    assert settings.database_url, "call with_servers() first"
    env = postgres_env(settings.database_url) | {
        "CREATE_TABLE": "y" if create_tables else "n",
        "AGGREGATE_CACHE_MAXSIZE": str(CACHE_MAXSIZE),
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }
    return LedgerApplication(env=env)


def connect(settings: Settings) -> psycopg.Connection[Any]:
    """A plain connection for the read side and the projection runners."""
    assert settings.database_url, "call with_servers() first"
    return psycopg.connect(settings.database_url, autocommit=False)


def init_schema(settings: Settings) -> None:
    """Create the ledger's tables (idempotent).

    Workers started together (`--scale ledger-consume=3`) all get here at once, and the
    library's `create_table()` replaces its insert function each time, which PostgreSQL
    refuses to do concurrently ("tuple concurrently updated"): a session advisory lock
    makes the starts take turns.
    """
    with (
        psycopg.connect(settings.database_url or "", autocommit=True) as session,
        locks.held(session, Lock.SCHEMA),
    ):
        app = ledger_application(settings, create_tables=True)
        tracking_recorder(app).create_table()
        app.close()
        with connect(settings) as conn:
            older = not card_holdings.exists(conn)
            for schema in INGEST_SCHEMAS:
                conn.execute(schema)  # type: ignore[arg-type]
            if older:  # a ledger that held its cards on their streams: hold them here
                card_holdings.backfill(conn)
            tables.create(conn)


def init_topics(settings: Settings) -> list[str]:
    """Create the contract's topics (idempotent), and give the inbound and dead-letter
    topics the retention of the settings; return the names created now.

    A kept topic that does not take the retention is named in one warning line, not a
    failure: it works all the same, and refusing would stop every command that gets here.
    kafka-python first checks that the broker lists the key for the topic, and the embedded
    broker lists none for a topic a producer auto-created ("Unrecognized configs")."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="ledger-init")
    try:
        existing = set(admin.list_topics())
        config = {"retention.ms": str(settings.retention_ms)}
        wanted = [
            NewTopic(settings.inbound_topic, settings.partitions, 1, topic_configs=config),
            NewTopic(settings.dead_letter_topic, settings.partitions, 1, topic_configs=config),
            NewTopic(settings.audiences_topic, settings.partitions, 1),
        ]
        new = [t for t in wanted if t.name not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        # `LEDGER_RETENTION_DAYS` may have changed since the kept topics were created.
        for name in [t.name for t in wanted[:2] if t.name in existing]:
            try:
                answer = admin.alter_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, name, configs=config)],
                    incremental=True,
                )
                why = str(answer.get("topic", {}).get(name, "OK"))
            except (ValueError, KafkaError) as error:
                why = first_line(error)
            if why != "OK":
                log.warning(
                    "ledger: could not set retention.ms on topic %s (%s; was it created "
                    "outside the ledger, e.g. by a producer's auto-create?); it keeps the "
                    "broker's retention",
                    name,
                    why,
                )
        return [t.name for t in new]
    finally:
        admin.close()


def producer(settings: Settings) -> KafkaProducer:
    """The idempotent, acks=all producer every publishing path uses."""
    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        batch_size=256 * 1024,
        client_id="ledger",
    )


def inbound_log(settings: Settings) -> str:
    """The inbound topic's log id (`consumers.log_ids`): its cluster's id and its own,
    stored with each offset and dead letter, so a new (empty) broker or a topic created
    again is noticed."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="ledger")
    try:
        cluster = str(admin.describe_cluster().get("cluster_id") or "")
        topics = admin.describe_topics([settings.inbound_topic])
        topic_id = topics[0].get("topic_id") if topics else None
        return log_id(cluster, str(topic_id) if topic_id else None)
    finally:
        admin.close()


def ingest(settings: Settings, *, seal: bool = True) -> Ingest:
    """The ingest use case on this ledger's store; `seal=False` records personal fields in
    the clear (only the encryption benchmark's baseline wants that)."""
    assert settings.database_url, "call with_servers() first"
    app = ledger_application(settings)
    keys = PostgresKeyStore(settings.database_url) if seal else None
    return Ingest(app, BatchLoader(app, keys))


def ingest_worker(settings: Settings, *, seal: bool = True) -> IngestWorker:
    """The ingest worker; `seal=False` records personal fields in the clear (only the
    encryption benchmark's baseline, `bench/sealing.py`, wants that)."""
    assert settings.database_url and settings.kafka_bootstrap, "call with_servers() first"
    read_undecodable_header_names()  # a header name that is no UTF-8 must not stop ingest
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.ingest_group,
        client_id="ledger-ingest",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5000,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **KAFKA_GROUP_TIMEOUTS,
    )
    relay = DeadLetterRelay(
        settings.database_url,
        producer(settings),
        settings.kafka_bootstrap,
        settings.inbound_topic,
        settings.dead_letter_topic,
    )
    return IngestWorker(
        ingest(settings, seal=seal),
        consumer,
        relay,
        settings.database_url,
        settings.inbound_topic,
        inbound_log(settings),
    )


def tracking_recorder(app: Application[Any]) -> PostgresTrackingRecorder:
    """The library's tracking recorder, for the projections' positions."""
    return positions.tracking_recorder(app.recorder.datastore)  # type: ignore[attr-defined]


def schema_tracking(settings: Settings, schema: str) -> PostgresTrackingRecorder:
    """The library's tracking recorder, on a datastore of its own in `schema` (a replay's)."""
    env = postgres_env(settings.database_url or "") | {"POSTGRES_SCHEMA": schema}
    return positions.tracking_recorder(PostgresFactory(Environment(env=env)).datastore)


def audiences(settings: Settings) -> list[Audience]:
    """The audience definitions in force: `LEDGER_AUDIENCES`, else the built-in set.

    Raises AudienceFileError (its line and reason) for a file that cannot be used."""
    if settings.audiences_path is None:
        text = resources.files("ledger").joinpath("audiences.toml").read_text("utf-8")
        return load_audiences(text, "the built-in audiences")
    try:
        text = settings.audiences_path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise AudienceFileError(f"LEDGER_AUDIENCES {settings.audiences_path}: {error}") from None
    return load_audiences(text, str(settings.audiences_path))


def ports(settings: Settings) -> Ports:
    """What the read side's use cases need, wired to these (reachable) servers."""
    assert settings.database_url, "call with_servers() first"
    url = settings.database_url

    def connect(*, autocommit: bool = False, schema: str | None = None) -> psycopg.Connection[Any]:
        if schema is None:
            return psycopg.connect(url, autocommit=autocommit)
        return psycopg.connect(
            url, autocommit=autocommit, options=f"-c search_path={schema},public"
        )

    return Ports(
        connect=connect,
        application=lambda: ledger_application(settings),
        live_tracking=tracking_recorder,
        scratch_tracking=lambda schema: schema_tracking(settings, schema),
        audience_relay=lambda: AudienceRelay(url, producer(settings), settings.audiences_topic),
        audiences=lambda: audiences(settings),
        clock=settings.clock,
        now=settings.now,
    )


def ledger(settings: Settings) -> Ledger:
    """The read side's use cases over these (reachable) servers."""
    return Ledger(ports(settings))
