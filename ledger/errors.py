"""Turning any failure into the one readable sentence a user sees."""

from __future__ import annotations

import psycopg
import psycopg.errors
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError


def first_line(error: BaseException) -> str:
    """An error's first line, or its type's name when it has no text: what every log line
    and refusal of the ledger quotes of a library's (often multi-line) message."""
    lines = str(error).strip().splitlines()
    return lines[0].strip() if lines else type(error).__name__


def describe_error(error: BaseException) -> str:
    if isinstance(error, KafkaTimeoutError) and "bootstrap" in str(error).lower():
        return "no Kafka broker answers at LEDGER_KAFKA_BOOTSTRAP (is it running? try `ledger up`)"
    if isinstance(error, psycopg.errors.UndefinedTable):
        return "the database has no ledger schema yet: run `ledger init` (or `ledger up`)"
    if isinstance(error, KafkaConnectionError):
        return "no Kafka broker answers at LEDGER_KAFKA_BOOTSTRAP (is it running? try `ledger up`)"
    if isinstance(error, psycopg.OperationalError):
        return f"cannot reach PostgreSQL at LEDGER_DATABASE_URL: {first_line(error)}"
    if isinstance(error, KafkaError):
        return f"Kafka: {error}"
    return first_line(error)
