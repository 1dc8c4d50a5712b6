"""Returns in simulated traffic (contract section 8): goods of earlier orders brought back,
and, with faults, returns that break each of the section's rules.

Kept apart from `producers.simulator`, which calls these when its plan asks for retail
life (`SimulationPlan.retail`); each draws from the simulator's own random generator, so
equal plans still give identical traffic.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from itertools import count
from typing import Any, Protocol

from domain.schema import InteractionType

HOLDER = ("customer_id", "card_id")
RULE_FAULTS = (
    "unknown_order",
    "currency",
    "return_id",
    "sku",
    "quantity",
    "price",
    "category",
)
"""The rules of section 8 a faulty return breaks, in turn."""


class Traffic(Protocol):
    """What the returns need of the simulator."""

    rng: Any

    def envelope(self, type: InteractionType, source: str, **fields: Any) -> dict[str, Any]: ...


class Returns:
    """Recent orders that still have goods to return, and the returns made of them."""

    def __init__(self) -> None:
        self.open: deque[dict[str, Any]] = deque(maxlen=2000)
        self.made: deque[dict[str, Any]] = deque(maxlen=500)
        self.numbers = count(1)
        self.faults = 0

    def bought(self, purchase: dict[str, Any]) -> None:
        """Remember a purchase (as sent) that later steps may return goods of."""
        self.open.append(
            {
                "holder": {k: purchase[k] for k in HOLDER if k in purchase},
                "store_id": purchase["store_id"],
                "order_id": purchase["order_id"],
                "currency": purchase["currency"],
                "lines": [dict(line) for line in purchase["lines"]],  # quantity: what is left
            }
        )

    def valid(self, sim: Traffic, holder: dict[str, str] | None = None) -> dict[str, Any] | None:
        """A return of part of a recent order, of `holder`'s if given (None: nothing left
        to return)."""
        if holder is not None:
            k = next((k for k, order in enumerate(self.open) if order["holder"] == holder), -1)
            if k < 0:
                return None
        elif not self.open:
            return None
        else:
            k = int(sim.rng.random() * len(self.open))
        order = self.open[k]
        lines: list[dict[str, Any]] = []
        for line in order["lines"]:
            if line["quantity"] and (not lines or sim.rng.random() < 0.3):
                qty = 1 + int(sim.rng.random() * line["quantity"])
                line["quantity"] -= qty
                lines.append({**line, "quantity": qty})
        if all(line["quantity"] == 0 for line in order["lines"]):
            del self.open[k]
        made = self._return(sim, order, lines)
        self.made.append(made)
        return made

    def _return(
        self, sim: Traffic, order: dict[str, Any], lines: list[dict[str, Any]], **changes: Any
    ) -> dict[str, Any]:
        total = sum(Decimal(line["unit_price"]) * line["quantity"] for line in lines)
        fields = {
            **order["holder"],
            "store_id": order["store_id"],
            "order_id": order["order_id"],
            "return_id": f"R-{next(self.numbers):07d}",
            "currency": order["currency"],
            "total": f"{total:.2f}",
            "lines": lines,
            **changes,
        }
        return sim.envelope(InteractionType.PURCHASE_RETURNED, order["store_id"], **fields)

    def breach(self, sim: Traffic) -> dict[str, Any] | None:
        """A return that breaks one rule of section 8, each rule in turn (None: no order to
        build it on yet)."""
        if not self.open or not self.made:
            return None
        rule = RULE_FAULTS[self.faults % len(RULE_FAULTS)]
        self.faults += 1
        order = self.open[int(sim.rng.random() * len(self.open))]
        line = dict(next(line for line in order["lines"] if line["quantity"]))
        line["quantity"] = 1  # one left to return: only the rule chosen is broken
        if rule == "unknown_order":
            return self._return(sim, order, [line], order_id=f"O-NONE-{next(self.numbers)}")
        if rule == "currency":
            other = "GBP" if order["currency"] != "GBP" else "EUR"
            return self._return(sim, order, [line], currency=other)
        if rule == "return_id":
            earlier = self.made[int(sim.rng.random() * len(self.made))]
            return sim.envelope(
                InteractionType.PURCHASE_RETURNED,
                earlier["store_id"],
                **{k: v for k, v in earlier.items() if k not in _ENVELOPE},
            )
        if rule == "sku":
            line["sku"] = "SKU-NEVER-SOLD"
        elif rule == "quantity":
            line["quantity"] = 10_000
        elif rule == "price":
            line["unit_price"] = f"{Decimal(line['unit_price']) + 1:.2f}"
        else:
            line["category"] = "never-this-category"
        return self._return(sim, order, [line])


_ENVELOPE = frozenset({"event_id", "type", "occurred_at", "source", "schema_version"})
