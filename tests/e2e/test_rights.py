"""Personal-data rights on real servers: `ledger export` shows everything the ledger holds
about a person, `ledger forget` (and `DELETE /customers/{id}`) leaves nothing personal to
read anywhere while every hash chain stays valid."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import psycopg
import pytest
from support import (
    audience_changes,
    enrollment,
    ingest,
    interaction,
    keyed,
    members,
    plaintext_rows,
    profile_rows,
    project,
    publish,
    purchase,
    recomputed_hashes,
    run_ledger,
    serve,
    simulated,
    wait_for,
)

from domain.interactions import INTERACTION_TYPES
from domain.schema import PARTNER_TYPES
from ledger import bootstrap
from ledger.settings import Settings
from producers.simulator import SimulationPlan

PLAN = SimulationPlan(customers=20, partners=2, events=300, seed=5, faults=False)
WHO, CARD, NEW_CARD, DUPLICATE = "C-R1", "K-R1", "K-R3", "C-R9"
NAME, EMAIL, BORN = "Zelda Quintessa", "zelda.quintessa@example.org", "1990-06-20"
OTHER, OTHER_NAME = "C-R2", "Olaf Other"
MARKETING = {"new_members", "big_spenders", "bakery_cross_sell", "birthday_this_month"}


def person() -> list[dict[str, Any]]:
    """One interaction of every kind a customer can have, and one invalid message that
    carries the person's name (a dead letter), for a customer in four marketing audiences."""
    at = {"occurred_at": "2026-06-02T10:00:00Z"}
    big = purchase("1200.00", customer_id=WHO, **at)
    refund = {"sku": "sku-1", "category": "grocery", "quantity": 1, "unit_price": "100.00"}
    return [
        enrollment(
            WHO,
            CARD,
            name=NAME,
            email=EMAIL,
            birth_date=BORN,
            marketing_consent=True,
            occurred_at="2026-06-01T09:00:00Z",
        ),
        interaction("card_swiped", card_id=CARD, store_id="S-1", **at),
        interaction("card_swiped", card_id=CARD, customer_id=WHO, store_id="S-2", **at),
        big,
        interaction(
            "purchase_returned",
            customer_id=WHO,
            store_id="S-1",
            order_id=big["order_id"],
            return_id="R-R1",
            currency="EUR",
            total="100.00",
            lines=[refund],
            **at,
        ),
        purchase("5.00", card_id=CARD, **at),
        interaction(
            "call",
            customer_id=WHO,
            direction="inbound",
            duration_seconds=60,
            topic=f"{NAME} asked about billing",
            **at,
        ),
        interaction(
            "complaint_filed",
            customer_id=WHO,
            complaint_id="CP-R1",
            category="service",
            severity="low",
            description=f"{NAME} says the till overcharged",
            **at,
        ),
        interaction(
            "complaint_resolved",
            customer_id=WHO,
            complaint_id="CP-R1",
            resolution=f"refunded {EMAIL}",
            **at,
        ),
        interaction("survey_answered", customer_id=WHO, survey_id="SV-1", score=9, **at),
        interaction("consent_changed", customer_id=WHO, marketing_consent=True, **at),
        interaction(
            "note_added",
            customer_id=WHO,
            note_id="N-R1",
            author="A-1",
            text=f"{NAME} wants a call back",
            stage="lead",
            **at,
        ),
        interaction(
            "card_replaced",
            customer_id=WHO,
            old_card_id=CARD,
            new_card_id=NEW_CARD,
            reason="lost",
            occurred_at="2026-06-02T11:00:00Z",
        ),
        enrollment(DUPLICATE, "K-R4", occurred_at="2026-06-01T09:30:00Z"),
        enrollment(WHO, "K-R9", name=NAME, birth_date="not a date"),  # dead-lettered
        enrollment(OTHER, "K-R2", name=OTHER_NAME, birth_date="not a date either"),
    ]


ODD_DEAD_LETTERS = [
    # Invalid messages about the person that name it in ways a byte search would miss.
    b'{"type": "customer_enrolled", "customer_id": "C\\u002dR1", "name": "Zelda Quintessa"}',
    b'{"type": "customer_enrolled", "customer_id": " C-R1 ", "card_id": "K-R1"}',
    b'{"type": "call", "note": "call back ZELDA.QUINTESSA@example.org"}',
]


@pytest.fixture
def ledger(settings: Settings) -> Settings:
    simulated(settings, PLAN)
    publish(settings, [keyed(obj) for obj in person()] + [(None, v, []) for v in ODD_DEAD_LETTERS])
    ingest(settings)
    # Once its enrollments are recorded: a duplicate merged into the person, then parted again
    # (both on the person's stream; the reason is personal data, sealed with its key).
    twice = {"survivor_id": WHO, "merged_id": DUPLICATE}
    publish(
        settings,
        [
            keyed(interaction("customers_merged", **twice, reason=f"{NAME} enrolled twice")),
            keyed(interaction("customers_unmerged", **twice)),
        ],
    )
    ingest(settings)
    project(settings)
    return settings


def ledger_json(settings: Settings, *args: str) -> Any:
    done = run_ledger(settings, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def sql(settings: Settings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def test_export_holds_every_kind_of_interaction_and_the_consent_history(
    ledger: Settings,
) -> None:
    document = ledger_json(ledger, "export", WHO)

    customer_kinds = set(INTERACTION_TYPES) - PARTNER_TYPES
    assert {e["type"] for e in document["history"]} == customer_kinds  # a table holds cards
    # 13 interactions and a merge and its unmerge (the card's holding is no event)
    assert len(document["history"]) == 15
    enrolled = next(e for e in document["history"] if e["type"] == "customer_enrolled")
    assert enrolled["payload"]["name"] == NAME and enrolled["payload"]["email"] == EMAIL
    assert NAME not in json.dumps(enrolled["hashed_payload"])  # as hashed: sealed
    history = ledger_json(ledger, "history", WHO, "--json")["events"]
    assert recomputed_hashes(history) == 15
    noted = next(e for e in document["history"] if e["type"] == "note_added")
    assert noted["payload"]["text"] == f"{NAME} wants a call back"
    assert (document["profile"]["notes_count"], document["profile"]["stage"]) == (1, "lead")
    assert document["profile"]["net_spend"] == {"EUR": "1105.00"}  # 1200 + 5 - 100
    filed = next(e for e in document["history"] if e["type"] == "complaint_filed")
    assert filed["payload"]["description"] == f"{NAME} says the till overcharged"
    assert document["profile"]["name"] == NAME
    assert document["profile"]["interaction_count"] == 13
    assert {a["audience"] for a in document["audiences"] if a["member"]} == MARKETING
    assert all(a["reason"] for a in document["audiences"])
    assert [(c["type"], c["marketing_consent"]) for c in document["consent"]] == [
        ("customer_enrolled", True),
        ("consent_changed", True),
    ]
    rejected = [d["value"] for d in document["dead_letters"]]
    assert len(rejected) == 1 + len(ODD_DEAD_LETTERS)  # not the other customer's
    assert all(d["error_type"] == "invalid" for d in document["dead_letters"])
    missing = run_ledger(ledger, "export", "C-NOBODY")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "ledger export: no customer 'C-NOBODY' in the ledger"


def test_forget_leaves_nothing_personal_and_every_chain_valid(ledger: Settings) -> None:
    before = profile_rows(ledger)
    assert WHO in set.union(*members(ledger).values())
    assert plaintext_rows(ledger, EMAIL)  # the profile holds it before
    assert run_ledger(ledger, "replay", "--schema", "early_replay").returncode == 0
    naming = run_ledger(ledger, "forget", WHO, "--reason", "zelda quintessa asked by phone")
    assert naming.returncode == 1
    assert naming.stderr.strip() == (
        "ledger forget: the reason names the person: say why, not who (it is kept for ever)"
    )

    done = run_ledger(ledger, "forget", WHO, "--reason", "erasure request #4411")
    assert done.returncode == 0, done.stderr
    assert "forgotten: key destroyed" in done.stdout
    assert "every projection has forgotten the person" in done.stdout

    # Nothing personal left in any table, in the clear or as raw bytes.
    for text in (NAME, EMAIL, BORN):
        assert plaintext_rows(ledger, text) == [], text
    assert plaintext_rows(ledger, OTHER_NAME)  # another customer's dead letter stays

    # No digest of the plaintext is left to check a guess against, and the audience rows
    # keep neither the tests' answers nor reasons that tell what the profile was.
    digests = sql(
        ledger,
        "SELECT DISTINCT digest FROM ledger_interactions WHERE stream = %s",
        f"customer-{WHO}",
    )
    assert digests == [("erased",)]
    for schema in ("public", "early_replay"):
        rows = sql(
            ledger,
            f"SELECT member, tests, reason, inputs FROM {schema}.audience_members "
            "WHERE customer_id = %s",
            WHO,
        )
        assert rows and {(m, t, i) for m, t, _, i in rows} == {(False, "", None)}
        assert {r for _, _, r, _ in rows} <= {None, "erased"}
    early = sql(
        ledger, "SELECT reason FROM early_replay.audience_outbox WHERE customer_id = %s", WHO
    )
    assert early and set(early) == {("erased",)}  # a replay's outbox is never published

    # The profile forgets the person; nobody else's profile changed.
    after = profile_rows(ledger)
    forgotten = after.pop(WHO)
    assert (forgotten["name"], forgotten["email"], forgotten["birth_date"]) == (None, None, None)
    assert forgotten["marketing_consent"] is False
    assert forgotten["interaction_count"] == 13  # counts are not personal once anonymous
    before.pop(WHO)
    assert after == before

    # No audience holds the person, and each exit was published with reason "erased".
    assert WHO not in set.union(set(), *members(ledger).values())
    exits = [c for c in audience_changes(ledger) if c["customer_id"] == WHO]
    erased = {c["audience"] for c in exits if c["change"] == "exited"}
    assert erased == MARKETING
    assert {c["reason"] for c in exits if c["change"] == "exited"} == {"erased"}

    # The chains still verify, and a replay rebuilds a profile with nothing personal.
    verified = run_ledger(ledger, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("no finding")
    replayed = run_ledger(ledger, "replay", "--schema", "rights_replay")
    assert replayed.returncode == 0, replayed.stderr
    ((profile,),) = sql(
        ledger, "SELECT profile FROM rights_replay.profiles WHERE customer_id=%s", WHO
    )
    assert profile == forgotten
    assert not sql(
        ledger, "SELECT 1 FROM rights_replay.audience_members WHERE customer_id=%s AND member", WHO
    )

    # The CLI shows the sealed fields as erased, and refuses an export.
    table = run_ledger(ledger, "history", WHO, COLUMNS="300")
    assert "name=[erased]" in table.stdout and "topic=[erased]" in table.stdout
    history = ledger_json(ledger, "history", WHO, "--json")["events"]
    enrolled = next(e for e in history if e["type"] == "customer_enrolled")
    assert enrolled["payload"]["name"] == enrolled["payload"]["email"] == "[erased]"
    assert history[-1]["type"] == "customer_forgotten"
    assert recomputed_hashes(history) == len(history) == 18  # the key is gone: all recompute
    refused = run_ledger(ledger, "export", WHO)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "was forgotten" in refused.stderr

    again = ledger_json(ledger, "forget", WHO, "--reason", "twice", "--json")
    assert again["first"] is False and again["cards"] == [CARD, NEW_CARD]


def test_after_forget_every_interaction_naming_the_person_or_a_card_is_a_rule_rejection(
    ledger: Settings,
) -> None:
    assert run_ledger(ledger, "forget", WHO, "--reason", "erasure request").returncode == 0
    later = [
        purchase("3.00", customer_id=WHO),
        interaction("card_swiped", card_id=CARD, store_id="S-1"),
        interaction("consent_changed", customer_id=WHO, marketing_consent=True),
        enrollment(WHO, "K-NEW", name=NAME),
        enrollment("C-NEWCOMER", CARD, name="Somebody Else"),
        purchase("4.00", customer_id="C-00001", card_id=CARD),
    ]
    invalid = enrollment(WHO, "K-NEW", name=NAME, email=EMAIL, birth_date="soon")
    malformed = [  # not JSON: a truncated enrollment, and a note naming the person's id
        f'{{"type": "customer_enrolled", "customer_id": "{WHO}", "name": "{NAME}", "bi'.encode(),
        f'call back "{WHO}", {NAME}'.encode(),
    ]
    publish(ledger, [keyed(obj) for obj in [*later, invalid]] + [(None, m, []) for m in malformed])
    stats = ingest(ledger)
    assert stats.recorded == 0
    assert stats.rejected == {"rule": len(later), "invalid": 1, "malformed": 2}
    assert plaintext_rows(ledger, NAME) == []
    # Nothing of what was said about the forgotten person is kept, not even as sent.
    kept = sql(
        ledger,
        "SELECT count(*) FROM ledger_dead_letters WHERE event_id = ANY(%s) AND value IS NULL",
        [obj["event_id"] for obj in [*later, invalid]],
    )
    assert kept == [(len(later) + 1,)]
    assert plaintext_rows(ledger, EMAIL) == []
    reasons = dict(
        sql(
            ledger,
            "SELECT event_id, error FROM ledger_dead_letters WHERE event_id = ANY(%s)",
            [obj["event_id"] for obj in [*later, invalid]],
        )
    )
    assert reasons[later[0]["event_id"]] == "customer 'C-R1' was forgotten"
    assert reasons[later[1]["event_id"]] == "card 'K-R1' belongs to a forgotten customer"
    assert reasons[later[4]["event_id"]] == "card 'K-R1' belongs to a forgotten customer"
    assert reasons[later[5]["event_id"]] == "card 'K-R1' belongs to a forgotten customer"
    assert reasons[invalid["event_id"]] == "erased: it named a forgotten customer"


def test_a_running_worker_that_cached_the_streams_rejects_what_follows_a_forget(
    ledger: Settings,
) -> None:
    """The worker decided the person's streams from memory; the forgetting, written by
    another process, makes its next batch fail on the store's version key, and the
    retry, from the stored streams, dead-letters it."""
    stop = threading.Event()
    worker = bootstrap.ingest_worker(ledger)
    running = threading.Thread(target=worker.run, args=(stop,))
    running.start()
    try:
        warm = purchase("2.00", customer_id=WHO, card_id=CARD)
        publish(ledger, [keyed(warm)])
        wait_for(lambda: worker.stats.recorded == 1, what="the warm-up purchase")
        assert run_ledger(ledger, "forget", WHO, "--reason", "request").returncode == 0
        later = purchase("3.00", customer_id=WHO)
        publish(ledger, [keyed(later)])
        wait_for(lambda: worker.stats.rejected["rule"] == 1, what="the rule rejection")
    finally:
        stop.set()
        running.join()
    assert worker.stats.recorded == 1
    assert worker.stats.retries == 1  # the stale decision failed, and was made again
    ((error,),) = sql(
        ledger, "SELECT error FROM ledger_dead_letters WHERE event_id = %s", later["event_id"]
    )
    assert error == "customer 'C-R1' was forgotten"


@pytest.fixture
def api(ledger: Settings) -> Iterator[httpx.Client]:
    yield from serve(replace(ledger, api_token="s3cret"))


def test_the_api_exports_and_forgets_with_the_token_only(
    ledger: Settings, api: httpx.Client
) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    exported = api.get(f"/customers/{WHO}/export", headers=auth)
    assert exported.status_code == 200
    assert exported.json() == ledger_json(ledger, "export", WHO) | {
        "position": exported.json()["position"]
    }

    assert api.delete(f"/customers/{WHO}", params={"reason": "request"}).status_code == 401
    for bad in (" ", "x\x00y", "two\rlines", f"asked by {EMAIL}"):
        refused = api.delete(f"/customers/{WHO}", params={"reason": bad}, headers=auth)
        assert refused.status_code == 422, bad
    unknown = api.delete("/customers/C-NOBODY", params={"reason": "request"}, headers=auth)
    assert unknown.status_code == 404

    stop = threading.Event()
    projector = threading.Thread(target=bootstrap.ledger(ledger).project, args=(stop,))
    projector.start()  # as `ledger project` runs beside the API
    try:
        forgot = api.delete(f"/customers/{WHO}", params={"reason": "request"}, headers=auth)
    finally:
        stop.set()
        projector.join()
    assert forgot.status_code == 200, forgot.text
    body = forgot.json()
    assert body["first"] is True and body["projected"] is True and body["cards"] == [CARD, NEW_CARD]
    profile = api.get(f"/customers/{WHO}", headers=auth)
    assert profile.json()["name"] is None and profile.json()["email"] is None
    gone = api.get(f"/customers/{WHO}/export", headers=auth)
    assert gone.status_code == 410 and "was forgotten" in gone.json()["detail"]
    assert int(gone.headers["X-Ledger-Position"]) >= body["position"]
    history = api.get(f"/customers/{WHO}/history", headers=auth).json()["events"]
    assert NAME not in json.dumps(history) and EMAIL not in json.dumps(history)
    repeat = api.delete(f"/customers/{WHO}", params={"reason": "request"}, headers=auth)
    assert repeat.status_code == 200 and repeat.json()["first"] is False


def test_without_a_token_the_api_refuses_to_forget(ledger: Settings) -> None:
    for api in serve(ledger):
        refused = api.delete(f"/customers/{WHO}", params={"reason": "request"})
        assert refused.status_code == 403
        assert "LEDGER_API_TOKEN" in refused.json()["detail"]
        assert api.get(f"/customers/{WHO}").json()["name"] == NAME


def test_a_consent_withdrawal_leaves_every_marketing_audience_at_once(
    ledger: Settings,
) -> None:
    withdrawn = interaction(
        "consent_changed",
        customer_id=WHO,
        marketing_consent=False,
        occurred_at="2026-06-10T10:00:00Z",
    )
    publish(ledger, [keyed(withdrawn)])
    ingest(ledger)
    project(ledger)
    assert WHO not in set.union(set(), *members(ledger).values())
    exits = [c for c in audience_changes(ledger) if c["customer_id"] == WHO]
    left = {c["audience"] for c in exits if c["change"] == "exited"}
    assert left == MARKETING
    assert all(
        c["reason"].startswith("marketing_consent == true became false")
        for c in exits
        if c["change"] == "exited"
    )
