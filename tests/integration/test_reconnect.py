"""`ledger consume` and `ledger project` through PostgreSQL outages (`ledger.reconnect`):
each outage gets the whole budget, and a worker that keeps failing at once still ends."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ledger import reconnect
from ledger.settings import Settings


def test_each_outage_gets_the_whole_budget(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(reconnect, "RECOVERED_AFTER", 0.2)
    runs = []

    def run() -> None:
        runs.append(time.monotonic())
        if len(runs) <= 4:
            time.sleep(0.3)  # worked for a while since it resumed, then lost PostgreSQL
            raise psycopg.OperationalError("terminating connection due to administrator command")

    reconnect.keep_running(
        "consume", settings.database_url or "", run, threading.Event(), retry_for=1.0
    )
    assert len(runs) == 5  # four outages over more than the 1 s budget, each recovered
    lines = capsys.readouterr().err.splitlines()
    assert lines.count("ledger consume: PostgreSQL answers again; resuming") == 4
    assert all("retrying for up to 1 s" in line for line in lines[::2])


def test_a_worker_that_keeps_losing_the_connection_at_once_ends_in_one_line(
    settings: Settings,
) -> None:
    def run() -> None:
        raise psycopg.OperationalError("sorry, too many clients already")

    with pytest.raises(reconnect.DatabaseGone, match="kept failing for 1 s \\(sorry, too many"):
        reconnect.keep_running(
            "consume", settings.database_url or "", run, threading.Event(), retry_for=1.0
        )
