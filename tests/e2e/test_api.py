"""`ledger serve` over real HTTP, on real servers: every endpoint, 404s, 401s, paging,
freshness with `min_position`, and a POS reading its own write."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from support import (
    enrollment,
    ingest,
    interaction,
    keyed,
    ledger_env,
    profile_rows,
    project,
    publish,
    purchase,
    recomputed_hashes,
    serve,
    simulated,
    wait_for,
)

from ledger import bootstrap
from ledger.settings import Settings
from producers.simulator import SimulationPlan

PLAN = SimulationPlan(customers=120, partners=6, events=1500, seed=5, faults=True)


@pytest.fixture
def ledger(settings: Settings) -> Settings:
    """Simulated traffic, ingested and projected."""
    return simulated(settings, PLAN)


@pytest.fixture
def api(ledger: Settings) -> Iterator[httpx.Client]:
    yield from serve(ledger)


def test_customers_and_partners_answer_as_the_projections_say(
    api: httpx.Client, ledger: Settings
) -> None:
    profiles = profile_rows(ledger)
    some = sorted(profiles)[:5]
    for customer_id in some:
        answer = api.get(f"/customers/{customer_id}")
        assert answer.status_code == 200
        assert answer.json() == profiles[customer_id]
        assert int(answer.headers["X-Ledger-Position"]) > 0
    # An auditor holding only the histories recomputes every hash, sealed fields included.
    histories = [api.get(f"/customers/{c}/history").json()["events"] for c in some]
    events = [e for history in histories for e in history]
    assert sum(map(recomputed_hashes, histories)) == len(events) > 0
    sealed = [e for e in events if e["hashed_payload"] != e["payload"]]
    assert {e["type"] for e in sealed} >= {"customer_enrolled"}
    missing = api.get("/customers/C-nobody")
    assert (missing.status_code, missing.json()) == (
        404,
        {"detail": "no customer 'C-nobody' in the ledger"},
    )
    partner = api.get("/partners/P-001").json()
    assert partner["partner_id"] == "P-001"
    assert partner["status"] in {"active", "at_risk", "prospect", "terminated"}
    assert "renewal_due" in partner
    assert api.get("/partners/P-nobody").status_code == 404


def test_paging_through_an_audience_misses_and_repeats_no_member(api: httpx.Client) -> None:
    sizes = {a["name"]: a["size"] for a in api.get("/audiences").json()}
    name = max(sizes, key=lambda n: sizes[n])
    assert sizes[name] > 10
    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 7} | ({"after": after} if after else {})
        page = api.get(f"/audiences/{name}/members", params=params).json()
        seen += [m["customer_id"] for m in page["members"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert len(seen) == len(set(seen)) == sizes[name]
    assert api.get("/audiences/nobody/members").status_code == 404


def test_a_pos_learns_the_fate_of_what_it_published_and_reads_its_own_write(
    ledger: Settings, api: httpx.Client
) -> None:
    bought = purchase(customer_id="C-00001", total="7.00")
    bad = interaction("purchase", customer_id="C-00001")  # no lines, no total: invalid
    assert api.get(f"/interactions/{bought['event_id']}").status_code == 404
    publish(ledger, [keyed(bought), keyed(bad)])
    ingest(ledger)
    recorded = api.get(f"/interactions/{bought['event_id']}").json()
    assert recorded["status"] == "recorded" and recorded["position"] > 0
    dead = api.get(f"/interactions/{bad['event_id']}").json()
    assert (dead["status"], dead["error_type"]) == ("dead_lettered", "invalid")

    before = api.get("/customers/C-00001").json()["purchase_count"]
    stop = threading.Event()
    projector = threading.Thread(target=lambda: bootstrap.ledger(ledger).project(stop), daemon=True)
    projector.start()
    try:
        fresh = api.get("/customers/C-00001", params={"min_position": recorded["position"]})
        assert fresh.status_code == 200
        assert int(fresh.headers["X-Ledger-Position"]) >= recorded["position"]
        assert fresh.json()["purchase_count"] == before + 1
    finally:
        stop.set()
        projector.join(timeout=30)


def test_a_cached_profile_never_claims_a_position_it_does_not_reflect(
    ledger: Settings, api: httpx.Client
) -> None:
    customer = "/customers/C-00002"
    before = api.get(customer).json()["purchase_count"]
    api.get(customer)  # from the API process's cache from now on
    recorded: list[int] = []  # the position of each new purchase

    def consistent() -> int:
        """Read once; the answer holds every purchase its position covers."""
        answer = api.get(customer)
        position = int(answer.headers["X-Ledger-Position"])
        covered = sum(1 for p in recorded if p <= position)
        count = answer.json()["purchase_count"]
        assert count >= before + covered, (position, recorded, count)
        return count

    stop = threading.Event()
    projector = threading.Thread(target=lambda: bootstrap.ledger(ledger).project(stop), daemon=True)
    projector.start()
    try:
        for k in range(1, 4):
            bought = purchase(customer_id="C-00002")
            publish(ledger, [keyed(bought)])
            ingest(ledger)
            recorded.append(api.get(f"/interactions/{bought['event_id']}").json()["position"])
            wait_for(lambda k=k: consistent() == before + k, 15, f"purchase {k} in the profile")
    finally:
        stop.set()
        projector.join(timeout=30)
    hits = re.search(
        r'^ledger_api_profile_cache_total\{result="hit"\} (\S+)$', api.get("/metrics").text, re.M
    )
    assert hits and float(hits[1]) > 0, "the cache answered some of those reads"


def test_min_position_the_projections_have_not_reached_answers_503_after_waiting(
    ledger: Settings, api: httpx.Client
) -> None:
    projected = int(api.get("/audiences").headers["X-Ledger-Position"])
    assert api.get("/customers/C-00001", params={"min_position": projected}).status_code == 200
    publish(ledger, [keyed(purchase(customer_id="C-00001"))])
    ingest(ledger)  # recorded, not projected: no projector runs here
    recorded = api.get("/health").json()["head"]
    assert recorded > projected
    started = time.monotonic()
    waited = api.get("/customers/C-00001", params={"min_position": recorded})
    assert time.monotonic() - started >= 4.5, "it waited for the projections"
    assert waited.status_code == 503
    assert waited.headers["Retry-After"] == "1"
    assert int(waited.headers["X-Ledger-Position"]) == projected
    beyond = api.get("/customers/C-00001", params={"min_position": recorded + 1000})
    assert beyond.status_code == 503, "a position beyond the ledger's head: no use waiting"


def test_health_metrics_and_the_openapi_document(api: httpx.Client, ledger: Settings) -> None:
    health = api.get("/health").json()
    assert health["status"] == "ok"
    assert health["projection_lag"] == 0 and health["position"] == health["head"] > 0
    metrics = api.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'ledger_interactions_recorded_total{type="purchase"}' in metrics.text
    assert 'ledger_interactions_dead_lettered_total{error_type="invalid"}' in metrics.text
    assert "ledger_http_request_seconds_bucket" in metrics.text
    batches = re.search(r"^ledger_ingest_batch_size_count (\S+)$", metrics.text, re.M)
    assert batches and float(batches[1]) >= 1, "every committed ingest batch is counted"
    records = re.search(r"^ledger_ingest_batch_size_sum (\S+)$", metrics.text, re.M)
    assert records and float(records[1]) == PLAN.events, "the batches held every record"
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/customers/{customer_id}",
        "/partners/{partner_id}",
        "/audiences",
        "/audiences/{name}/members",
        "/interactions/{event_id}",
        "/health",
        "/metrics",
    } <= set(paths)


@pytest.fixture
def guarded(settings: Settings) -> Iterator[httpx.Client]:
    publish(settings, [keyed(enrollment("C-1", "K-1"))])
    ingest(settings)
    project(settings)
    yield from serve(replace(settings, api_token="s3cret"))


def test_with_a_token_every_endpoint_but_health_answers_401_without_it(
    guarded: httpx.Client,
) -> None:
    for path in ("/customers/C-1", "/audiences", "/metrics", "/openapi.json", "/nowhere"):
        refused = guarded.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert guarded.get("/health").status_code == 200
    wrong = guarded.get("/customers/C-1", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = guarded.get("/customers/C-1", headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200 and right.json()["customer_id"] == "C-1"


def test_as_of_answers_from_the_events_recorded_by_then(settings: Settings) -> None:
    joined = enrollment("C-9", "K-9", name="Ada", marketing_consent=True)
    publish(settings, [keyed(joined), keyed(purchase("10.00", customer_id="C-9"))])
    ingest(settings)
    first = datetime.now(UTC)
    publish(settings, [keyed(purchase("5.50", customer_id="C-9"))])
    wait_for(lambda: datetime.now(UTC) > first, 5, "the clock to move")
    ingest(settings)
    second = datetime.now(UTC)
    project(settings)
    for api in serve(settings):
        before = api.get("/customers/C-9", params={"as_of": "2020-01-01T00:00:00Z"})
        assert before.status_code == 404
        then = api.get("/customers/C-9", params={"as_of": first.isoformat()}).json()
        assert (then["purchase_count"], then["total_spend"], then["name"]) == (
            1,
            {"EUR": "10.00"},
            "Ada",
        )
        assert then["interaction_count"] == 2
        later = api.get("/customers/C-9", params={"as_of": second.isoformat()}).json()
        assert (later["purchase_count"], later["total_spend"]) == (2, {"EUR": "15.50"})
        assert later == api.get("/customers/C-9").json(), "as of now: the live profile"

        events = api.get("/customers/C-9/history").json()["events"]
        assert sorted(e["type"] for e in events) == [
            "customer_enrolled",  # its card is held in a table: no event on the card
            "purchase",
            "purchase",
        ]
        positions = [e["position"] for e in events]
        assert positions == sorted(positions), "in the order the ledger recorded them"
        assert [e["version"] for e in events if e["stream"] == "customer-C-9"] == [1, 2, 3]
        chained = [e for e in events if e["stream"] == "customer-C-9"]
        assert all(b["prev_hash"] == a["hash"] for a, b in zip(chained, chained[1:], strict=False))
        cli = subprocess.run(
            [sys.executable, "-m", "ledger.cli", "history", "C-9", "--json"],
            env=ledger_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert json.loads(cli.stdout) == {"events": events}
        assert api.get("/customers/C-nobody/history").status_code == 404
