"""`ledger dead-letters`, `ledger redrive` and `GET /dead-letters` as a user meets them:
the contract's JSON shapes, newest first, pages that miss and repeat nothing, one-line
refusals, and the fate of a redriven interaction over HTTP."""

from __future__ import annotations

import json
from typing import Any

from support import ingest, interaction, keyed, publish, purchase, run_ledger, serve

from ledger.settings import Settings

ROW_FIELDS = {
    "source_partition",
    "source_offset",
    "event_id",
    "error_type",
    "error",
    "dead_lettered_at",
    "redriven",
}


def _contract(change: str) -> dict[str, Any]:
    return interaction("contract_changed", partner_id="P-1", contract_id="K-1", change=change)


def _json(settings: Settings, *args: str) -> Any:
    done = run_ledger(settings, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_look_redrive_and_page_as_the_contract_says(settings: Settings) -> None:
    signed = _contract("signed")
    bad = [keyed(purchase(customer_id=f"C-{n}", lines=[])) for n in range(4)]
    publish(settings, [keyed(signed), *bad, (b"C-9", b"{oops", [])])
    ingest(settings)

    look = _json(settings, "dead-letters")
    assert look["counts"] == {"invalid": 4, "malformed": 1, "rule": 1}
    assert len(look["dead_letters"]) == 6
    assert all(set(row) == ROW_FIELDS and not row["redriven"] for row in look["dead_letters"])
    times = [row["dead_lettered_at"] for row in look["dead_letters"]]
    assert times == sorted(times, reverse=True)
    assert [r["event_id"] for r in look["dead_letters"] if r["error_type"] == "rule"] == [
        signed["event_id"]
    ]
    assert (
        _json(settings, "dead-letters", "--limit", "2")["dead_letters"] == look["dead_letters"][:2]
    )
    malformed = _json(settings, "dead-letters", "--error-type", "malformed")
    assert malformed["counts"] == {"malformed": 1}
    assert [r["event_id"] for r in malformed["dead_letters"]] == [None]

    for api in serve(settings):
        pages, after = [], None
        while True:
            params: dict[str, Any] = {"limit": 4} | ({"after": after} if after else {})
            answer = api.get("/dead-letters", params=params)
            assert answer.status_code == 200, answer.text
            pages.append(answer.json()["dead_letters"])
            after = answer.json()["next"]
            if after is None:
                break
        assert [len(p) for p in pages] == [4, 2]
        assert [row for page in pages for row in page] == look["dead_letters"]
        rules = api.get("/dead-letters", params={"error_type": "rule"}).json()
        assert rules == {"dead_letters": [look["dead_letters"][_index(look, "rule")]], "next": None}
        assert api.get("/dead-letters", params={"after": "not-a-cursor"}).status_code == 422
        assert "/dead-letters" in api.get("/openapi.json").json()["paths"]

        publish(settings, [keyed(_contract("proposed"))])
        ingest(settings)
        dry = _json(settings, "redrive", "--dry-run", "--error-type", "rule")
        assert dry == {"published": {"rule": 1}, "skipped_forgotten": 0, "dry_run": True}
        done = _json(settings, "redrive", "--error-type", "rule")
        assert done == {"published": {"rule": 1}, "skipped_forgotten": 0, "dry_run": False}
        ingest(settings)
        fate = api.get(f"/interactions/{signed['event_id']}").json()
        assert fate["status"] == "recorded"

    after_redrive = _json(settings, "dead-letters")
    assert after_redrive["counts"] == look["counts"]  # redriven ones still count
    assert [r["redriven"] for r in after_redrive["dead_letters"]] == [
        r["error_type"] == "rule" for r in look["dead_letters"]
    ]
    text = run_ledger(settings, "redrive")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"published 5 dead letter(s) to {settings.inbound_topic}")


def _index(look: dict[str, Any], error_type: str) -> int:
    return [r["error_type"] for r in look["dead_letters"]].index(error_type)


def test_bad_input_is_refused_in_one_line(settings: Settings) -> None:
    for args in (["redrive", "--since", "yesterday"], ["redrive", "--until", "2026-05-01"]):
        done = run_ledger(settings, *args)
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("ledger redrive: error: argument")
    done = run_ledger(settings, "dead-letters", "--limit", "-1")
    assert done.returncode == 2 and "is negative" in done.stderr
    typo = run_ledger(settings, "dead-letters", "--error-type", "rules")  # one of five only
    assert typo.returncode == 2 and "invalid choice: 'rules'" in typo.stderr
    text = run_ledger(settings, "dead-letters")
    assert text.returncode == 0 and text.stdout.startswith("0 dead letter(s)")
