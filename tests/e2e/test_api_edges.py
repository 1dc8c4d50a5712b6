"""`ledger serve` at its edges: odd input, waiting reads beside ordinary ones, several
worker processes behind one /metrics, the token's spelling, and Kafka out of reach."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from psycopg_pool import ConnectionPool
from support import free_port, ingest, keyed, publish, purchase, serve

from ledger.metrics import Metrics
from ledger.settings import Settings
from projections import positions


@pytest.fixture
def api(small: Settings) -> Iterator[httpx.Client]:
    yield from serve(small)


def test_odd_input_is_refused_or_not_found_never_a_server_error(api: httpx.Client) -> None:
    for path in ("/customers/a%00b", "/partners/a%00b", "/interactions/a%00b"):
        assert api.get(path).status_code == 422, path
    assert api.get("/audiences/new_members/members", params={"after": "\x00"}).status_code == 422
    for as_of in ("0", "1799999999", "yesterday"):
        assert api.get("/customers/C-1", params={"as_of": as_of}).status_code == 422, as_of
    missing = api.get("/customers/C-nobody")
    assert missing.status_code == 404
    assert int(missing.headers["X-Ledger-Position"]) > 0, "a 404 says how fresh it is too"
    unseen = api.get("/interactions/never-published")
    assert unseen.status_code == 404 and "X-Ledger-Position" in unseen.headers
    nowhere = api.get("/audiences/nope/members")
    assert nowhere.status_code == 404 and "X-Ledger-Position" in nowhere.headers


def test_reads_waiting_for_a_position_do_not_hold_up_other_reads(
    small: Settings, api: httpx.Client
) -> None:
    publish(small, [keyed(purchase(customer_id="C-1"))])
    ingest(small)  # recorded, not projected: the projections stay one behind the head
    head = api.get("/health").json()["head"]
    answers: list[int] = []

    def waiter() -> None:
        answers.append(api.get("/audiences", params={"min_position": head}).status_code)

    waiters = [threading.Thread(target=waiter) for _ in range(60)]
    for thread in waiters:
        thread.start()
    assert api.get("/customers/C-1/history").status_code == 200
    assert api.get("/partners/P-nobody").status_code == 404
    assert answers == [], "ordinary reads were answered while every waiter still waited"
    for thread in waiters:
        thread.join()
    assert answers == [503] * 60, "every waiter waited its 5 s, then gave up"


def test_metrics_count_every_worker_process(small: Settings) -> None:
    for api in serve(small, workers=2):
        for _ in range(40):
            assert api.get("/customers/C-1").status_code == 200
        counted = set()
        for _ in range(6):  # scrapes land on either worker; each must count all 40 reads
            text = api.get("/metrics").text
            found = re.search(
                r'^ledger_http_request_seconds_count\{route="/customers/\{customer_id\}"\} (\S+)$',
                text,
                re.M,
            )
            assert found, text[:2000]
            counted.add(float(found[1]))
        assert counted == {40.0}


def test_the_token_scheme_is_case_insensitive_and_documented(small: Settings) -> None:
    for api in serve(replace(small, api_token="s3cret")):
        for scheme in ("Bearer", "bearer", "BEARER"):
            answer = api.get("/customers/C-1", headers={"Authorization": f"{scheme} s3cret"})
            assert answer.status_code == 200, scheme
        document = api.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        operation = document["paths"]["/customers/{customer_id}"]["get"]
        assert operation["security"] == [{"bearer": []}] and "401" in operation["responses"]
        assert "X-Ledger-Position" in operation["responses"]["200"]["headers"]
        assert "security" not in document["paths"]["/health"]["get"]


def test_health_says_kafka_is_unreachable_within_seconds(small: Settings) -> None:
    gone = replace(small, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    pool = ConnectionPool(small.database_url or "", min_size=1, max_size=2, open=True)
    try:
        metrics = Metrics(pool, gone)
        started = time.monotonic()
        ends = metrics.end_offsets()
        assert time.monotonic() - started < 15, "Kafka's silence is bounded"
        with pool.connection() as conn:
            health = metrics.health(conn, ends)
        assert health["status"] == "kafka unreachable" and health["ingest_lag"] is None
        assert health["position"] == positions.position(conn) > 0
        assert time.monotonic() - started < 15
        assert "ledger_kafka_up 0.0" in metrics.render()[0].decode()
    finally:
        pool.close()
