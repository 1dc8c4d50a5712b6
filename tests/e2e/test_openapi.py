"""The OpenAPI document describes what the server answers: schemathesis generates requests
for every operation and validates each answer (status, headers, body) against it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import serve, simulated

from ledger.settings import Settings
from producers.simulator import SimulationPlan

REPOSITORY = Path(__file__).resolve().parents[2]


def test_every_answer_matches_the_openapi_document(settings: Settings, tmp_path: Path) -> None:
    simulated(settings, SimulationPlan(customers=30, partners=3, events=300, seed=3))
    for client in serve(settings):
        # The schemathesis CLI (its pytest plugin does not load under this pytest).
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                # The repository's config: the contract's 503 is an answer, any other 5xx
                # a failure.
                "--config-file",
                str(REPOSITORY / "schemathesis.toml"),
                "run",
                f"{client.base_url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "40",
                "--seed",
                "1",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
