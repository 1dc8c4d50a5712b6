"""Sales notes in simulated traffic (contract section 8): staff notes about customers and
partners through a sales cycle, and, with faults, a note id used twice.

Kept apart from `producers.simulator`, which calls these when its plan asks for retail
life (`SimulationPlan.retail`); each draws from the simulator's own random generator, so
equal plans still give identical traffic.
"""

from __future__ import annotations

from typing import Any, Protocol

from domain.schema import InteractionType

STAGES = ("lead", "qualified", "proposal", "negotiation", "won")
"""The stages a note may give, in the order a sales cycle moves through them (after `won`
or `lost`, notes are `support`)."""
CUSTOMER_NOTES = (
    "asked about the loyalty tiers",
    "prefers e-mail over calls",
    "interested in the business account",
    "wants a call back next week",
    "happy with the last delivery",
)
PARTNER_NOTES = (
    "pricing call went well",
    "asked for a volume discount",
    "legal is reviewing the terms",
    "quarterly review booked",
)


class Traffic(Protocol):
    """What the notes need of the simulator."""

    rng: Any
    cids: list[str]

    def envelope(self, type: InteractionType, source: str, **fields: Any) -> dict[str, Any]: ...


class Notes:
    """Each subject's place in its sales cycle, and every note id issued."""

    def __init__(self) -> None:
        self.numbers = iter(range(1, 10**9))
        self.stage: dict[str, int] = {}  # subject id -> index into STAGES, past it: support
        self.issued: list[tuple[str, str, str]] = []  # (field, subject id, note_id)

    def customer(self, sim: Traffic, c: int) -> dict[str, Any]:
        return self._note(sim, "customer_id", sim.cids[c], sim.rng.choice(CUSTOMER_NOTES))

    def partner(self, sim: Traffic, p: int) -> dict[str, Any]:
        return self._note(sim, "partner_id", f"P-{p + 1:03d}", sim.rng.choice(PARTNER_NOTES))

    def _note(self, sim: Traffic, field: str, subject: str, text: str) -> dict[str, Any]:
        note_id = f"N-{next(self.numbers):06d}"
        self.issued.append((field, subject, note_id))
        staged = {}
        if sim.rng.random() < 0.5:  # half the notes move the cycle on (or lose it)
            at = self.stage.get(subject, -1) + 1
            self.stage[subject] = at
            lost = at < len(STAGES) and sim.rng.random() < 0.1
            staged["stage"] = "lost" if lost else STAGES[at] if at < len(STAGES) else "support"
            if lost:
                self.stage[subject] = len(STAGES)
        author = f"A-{sim.rng.randint(1, 40):03d}"
        return sim.envelope(
            InteractionType.NOTE_ADDED,
            "crm-web",
            note_id=note_id,
            author=author,
            text=text,
            **{field: subject},
            **staged,
        )

    def repeated(self, sim: Traffic) -> dict[str, Any] | None:
        """A rule fault: a new note under an id its subject already has (None: no note
        was issued yet)."""
        if not self.issued:
            return None
        field, subject, note_id = self.issued[sim.rng.randrange(len(self.issued))]
        return sim.envelope(
            InteractionType.NOTE_ADDED,
            "crm-web",
            note_id=note_id,
            author="A-001",
            text="a second note under the same id",
            **{field: subject},
        )
