"""`ledger partner` and `ledger audience` as a user runs them: every partner status, every
operator of the condition language in a file of one's own, and a bad file refused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support import enrollment, interaction, ledger_env, members, purchase, wait_for
from support import run_ledger as run

from ledger.settings import Settings
from producers.publisher import encode


def ingest_and_project(
    settings: Settings, tmp_path: Path, lines: list[dict[str, Any]], **env: str
) -> None:
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_bytes(b"".join(encode(obj) + b"\n" for obj in lines))
    for args in (
        ("produce", str(traffic)),
        ("consume", "--until-idle"),
        ("project", "--until-idle"),
    ):
        done = run(settings, *args, **env)
        assert done.returncode == 0, done.stderr


def contract(partner: str, contract_id: str, change: str, **terms: Any) -> dict[str, Any]:
    return interaction(
        "contract_changed", partner_id=partner, contract_id=contract_id, change=change, **terms
    )


def test_partner_shows_every_status_and_the_contracts_due_for_renewal(
    settings: Settings, tmp_path: Path
) -> None:
    # The clock is 2026-06-15 (tests/conftest.py): CT-3 ends within 60 days.
    lines = [
        interaction("dispute_opened", partner_id="P-none", dispute_id="D-0", reason="late"),
        contract("P-proposed", "CT-1", "proposed", value="1000.00", currency="EUR"),
        contract("P-active", "CT-3", "proposed", partner_kind="vendor", value=500, currency="EUR"),
        contract("P-active", "CT-3", "signed", ends_at="2026-07-31"),
        contract("P-active", "CT-4", "proposed", value="250.50", currency="EUR"),
        contract("P-active", "CT-4", "renewed", ends_at="2027-12-31"),
        contract("P-risk", "CT-5", "proposed", value="10", currency="USD"),
        contract("P-risk", "CT-5", "signed"),
        interaction("dispute_opened", partner_id="P-risk", dispute_id="D-1", reason="invoice"),
        contract("P-ended", "CT-6", "proposed", value="99", currency="EUR"),
        contract("P-ended", "CT-6", "signed"),
        contract("P-ended", "CT-6", "terminated"),
    ]
    ingest_and_project(settings, tmp_path, lines)

    statuses = {}
    for partner in ("P-none", "P-proposed", "P-active", "P-risk", "P-ended"):
        done = run(settings, "partner", partner, "--json")
        assert done.returncode == 0, done.stderr
        statuses[partner] = json.loads(done.stdout)
    assert {p: s["status"] for p, s in statuses.items()} == {
        "P-none": "prospect",
        "P-proposed": "prospect",
        "P-active": "active",
        "P-risk": "at_risk",
        "P-ended": "terminated",
    }
    active = statuses["P-active"]
    assert active["kind"] == "vendor"
    assert active["active_contract_value"] == {"EUR": "750.50"}
    assert active["contracts"]["CT-3"] == {
        "status": "active",
        "value": "500.00",
        "currency": "EUR",
        "effective_at": None,
        "ends_at": "2026-07-31",
    }
    assert active["renewal_due"] == ["CT-3"]
    assert (statuses["P-risk"]["disputes_open"], statuses["P-none"]["disputes_total"]) == (1, 1)
    assert statuses["P-ended"]["active_contract_value"] == {}

    missing = run(settings, "partner", "P-nobody")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "ledger partner: no partner 'P-nobody' in the ledger"


OPERATORS = """
[audiences.eq]
description = "may be mailed"
field = "marketing_consent"
op = "=="
value = true

[audiences.ne]
description = "not Ada"
field = "name"
op = "!="
value = "Ada"

[audiences.lt]
description = "spent under 20 EUR"
all = [{ field = "total_spend.EUR", op = "<", value = 20 }]

[audiences.le]
description = "at most one purchase"
all = [{ field = "purchase_count", op = "<=", value = 1 }]

[audiences.gt]
description = "spent over 20 EUR (a decimal string)"
all = [{ field = "total_spend.EUR", op = ">", value = "20.00" }]

[audiences.ge]
description = "promoters"
all = [{ field = "nps", op = ">=", value = 9 }]

[audiences.in]
description = "named Ada or Zed"
all = [{ field = "name", op = "in", value = ["Ada", "Zed"] }]

[audiences.contains]
description = "bought toys"
all = [{ field = "categories", op = "contains", value = "toys" }]

[audiences.exists]
description = "has an e-mail address"
all = [{ field = "email", op = "exists" }]

[audiences.within_days]
description = "bought in the last 7 days"
all = [{ field = "last_purchase_at", op = "within_days", value = 7 }]

[audiences.older_than_days]
description = "enrolled more than 30 days ago"
all = [{ field = "enrolled_at", op = "older_than_days", value = 30 }]

[audiences.month_is]
description = "birthday this month"
all = [{ field = "birth_date", op = "month_is", value = "current" }]

[audiences.day_of_year_within]
description = "birthday within 10 days"
all = [{ field = "birth_date", op = "day_of_year_within", value = 10 }]

[audiences.any_not]
description = "not Ada, or never answered a survey"
any = [
  { not = { field = "name", op = "==", value = "Ada" } },
  { field = "nps", op = "exists", value = false },
]
"""


def test_each_operator_of_a_custom_audience_file(settings: Settings, tmp_path: Path) -> None:
    definitions = tmp_path / "audiences.toml"
    definitions.write_text(OPERATORS)
    ada = [
        enrollment(
            "C-A",
            "K-A",
            name="Ada",
            email="ada@example.com",
            birth_date="1990-06-20",
            marketing_consent=True,
            occurred_at="2026-03-01T10:00:00Z",
        ),
        purchase(customer_id="C-A", occurred_at="2026-06-10T10:00:00Z"),
        interaction("survey_answered", customer_id="C-A", survey_id="S-1", score=9),
    ]
    toys = {"sku": "T-1", "category": "toys", "quantity": 1, "unit_price": "15.00"}
    bob = [
        enrollment(
            "C-B", "K-B", name="Bob", birth_date="1985-01-05", occurred_at="2026-06-01T10:00:00Z"
        ),
        *(
            purchase(
                customer_id="C-B", occurred_at="2026-05-01T10:00:00Z", total="15.00", lines=[toys]
            )
            for _ in range(2)
        ),
    ]
    ingest_and_project(settings, tmp_path, ada + bob, LEDGER_AUDIENCES=str(definitions))

    expected = {
        "eq": {"C-A"},
        "ne": {"C-B"},
        "lt": {"C-A"},
        "le": {"C-A"},
        "gt": {"C-B"},
        "ge": {"C-A"},
        "in": {"C-A"},
        "contains": {"C-B"},
        "exists": {"C-A"},
        "within_days": {"C-A"},
        "older_than_days": {"C-A"},
        "month_is": {"C-A"},
        "day_of_year_within": {"C-A"},
        "any_not": {"C-B"},
    }
    assert members(settings) == expected
    shown = run(settings, "audience", "contains", "--json", LEDGER_AUDIENCES=str(definitions))
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert (document["name"], document["description"], document["size"]) == (
        "contains",
        "bought toys",
        1,
    )
    (member,) = document["members"]
    assert member["customer_id"] == "C-B"
    assert member["since"] == "2026-06-15T12:00:00Z"
    assert member["reason"].startswith('categories contains "toys" became true, by event purchase')


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (OPERATORS.replace('op = "!="', 'op = "=~"'), 11, "unknown operator '=~'"),
        (OPERATORS.replace('"nps", op = ">="', '"npss", op = ">="'), 28, "unknown profile field"),
        (OPERATORS.replace("value = 7 }", 'value = "a week" }'), 44, "needs a number of days"),
        (OPERATORS.replace('description = "promoters"\n', ""), 26, "needs a description"),
        (OPERATORS + "\n[audiences.broken\n", 65, "not valid TOML"),
    ],
)
def test_a_bad_audience_file_is_refused_with_its_line_and_reason(
    settings: Settings, tmp_path: Path, text: str, line: int, reason: str
) -> None:
    definitions = tmp_path / "audiences.toml"
    definitions.write_text(text)
    done = run(settings, "project", "--until-idle", LEDGER_AUDIENCES=str(definitions))
    assert done.returncode == 1
    (message,) = done.stderr.strip().splitlines()
    assert message.startswith(f"ledger project: {definitions}, line {line}: ")
    assert reason in message
    assert "Traceback" not in done.stderr


def test_a_second_projection_runner_waits_for_the_first(settings: Settings) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "project"],
        env=ledger_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: projection_lock_held(settings), 60, "the first runner's lock")
    second = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "project", "--until-idle"],
        env=ledger_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert second.stderr is not None
    assert "waiting for it to stop" in second.stderr.readline()
    assert second.poll() is None
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0
    assert out.startswith("projected 0 event(s)")


def projection_lock_held(settings: Settings) -> bool:
    with psycopg.connect(settings.database_url or "") as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243"
        ).fetchone()
    return bool(row and row[0])
