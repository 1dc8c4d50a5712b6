"""Turning any failure into the one readable sentence a user sees."""

from __future__ import annotations

import psycopg
import psycopg.errors
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError


def describe_error(error: BaseException) -> str:
    if isinstance(error, KafkaTimeoutError) and "bootstrap" in str(error).lower():
        return "no Kafka broker answers at LEDGER_KAFKA_BOOTSTRAP (is it running? try `ledger up`)"
    if isinstance(error, psycopg.errors.UndefinedTable):
        return "the database has no ledger schema yet: run `ledger init` (or `ledger up`)"
    if isinstance(error, KafkaConnectionError):
        return "no Kafka broker answers at LEDGER_KAFKA_BOOTSTRAP (is it running? try `ledger up`)"
    if isinstance(error, psycopg.OperationalError):
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"cannot reach PostgreSQL at LEDGER_DATABASE_URL: {first}"
    if isinstance(error, KafkaError):
        return f"Kafka: {error}"
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
