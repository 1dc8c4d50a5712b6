"""Returns (contract section 8): what a stream's purchases make returnable, and the rules a
`purchase_returned` must pass on that stream.

A return is recorded on the stream its purchase was (the customer's when it names
`customer_id`, else the card's), so each stream keeps, per `order_id`, what its purchases
bought (lines pooled over every purchase with that id) and what was returned of it, and
the return ids it has seen. Pure, like the aggregates that hold it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain import errors
from domain.interactions import BASKETS

RETURNABLE = BASKETS
"""The types a stream's orders are folded from: those with lines (`domain.interactions`)."""


@dataclass(slots=True)
class _Order:
    """One order's pooled lines: per sku, the quantity bought, the highest unit price paid
    and the categories it had; and the quantity returned so far."""

    currencies: set[str] = field(default_factory=set)
    bought: dict[str, int] = field(default_factory=dict)
    price: dict[str, Decimal] = field(default_factory=dict)
    categories: dict[str, set[str]] = field(default_factory=dict)
    returned: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Orders:
    """A stream's orders and return ids (equal when they hold the same: a stream rebuilt
    from the store equals the one that recorded it).

    Folding is deferred until a return is checked: ingest records purchases on thousands
    of streams a batch and checks a return on a few (folding every purchase's lines cost
    about 5% of ingest); the payloads wait in `_pending`, which the ingest worker drops
    with the orders of every stream a batch does not return on (`consumers.loader`)."""

    _orders: dict[str, _Order] = field(default_factory=dict)
    _returns: set[str] = field(default_factory=set)
    _pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def fold(self, type: str, payload: dict[str, Any]) -> None:
        """A recorded purchase or return, folded in before the next check."""
        self._pending.append((type, payload))

    def _settle(self) -> None:
        pending, self._pending = self._pending, []
        for type, payload in pending:
            if type == "purchase":
                self.bought(payload)
            else:
                self.returned(payload)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Orders):
            return NotImplemented
        self._settle()
        other._settle()
        return (self._orders, self._returns) == (other._orders, other._returns)

    def bought(self, payload: dict[str, Any]) -> None:
        """Fold a recorded purchase in (one the ledger did not validate, in a test or an
        edited store, that lacks what an order needs adds nothing: `ledger verify` reports
        an edit; the stream must still load)."""
        with contextlib.suppress(KeyError, TypeError, ArithmeticError):
            self._bought(payload)

    def _bought(self, payload: dict[str, Any]) -> None:
        order = self._orders.get(payload["order_id"])
        if order is None:
            order = self._orders[payload["order_id"]] = _Order()
        order.currencies.add(payload["currency"])
        for line in payload["lines"]:
            sku, price = line["sku"], Decimal(line["unit_price"])
            order.bought[sku] = order.bought.get(sku, 0) + line["quantity"]
            order.price[sku] = max(order.price.get(sku, price), price)
            order.categories.setdefault(sku, set()).add(line["category"])

    def returned(self, payload: dict[str, Any]) -> None:
        """Fold a recorded return in (as `bought`, one that cannot be read adds nothing)."""
        with contextlib.suppress(KeyError, TypeError):
            self._returned(payload)

    def _returned(self, payload: dict[str, Any]) -> None:
        self._returns.add(payload["return_id"])
        order = self._orders.get(payload["order_id"])
        if order is None:  # only in a ledger recorded without these rules
            return
        for line in payload["lines"]:
            sku = line["sku"]
            order.returned[sku] = order.returned.get(sku, 0) + line["quantity"]

    def check(self, payload: dict[str, Any]) -> None:
        """Raise the first rule of contract section 8 this return breaks, in the contract's
        order: each rule is checked over every line before the next rule."""
        self._settle()
        order_id, return_id = payload["order_id"], payload["return_id"]
        order = self._orders.get(order_id)
        if order is None:
            raise errors.UnknownOrder(f"order {order_id!r} has no purchase to return from")
        if payload["currency"] not in order.currencies:
            paid = ", ".join(sorted(order.currencies))
            raise errors.ReturnCurrencyMismatch(
                f"return in {payload['currency']} of order {order_id!r}, paid in {paid}"
            )
        if return_id in self._returns:
            raise errors.ReturnAlreadyRecorded(f"return {return_id!r} was already recorded")
        lines = payload["lines"]
        for line in lines:
            if line["sku"] not in order.bought:
                raise errors.ReturnedSkuNotInOrder(f"order {order_id!r} has no sku {line['sku']!r}")
        asked: dict[str, int] = {}
        for line in lines:
            asked[line["sku"]] = asked.get(line["sku"], 0) + line["quantity"]
        for sku, quantity in asked.items():
            left = order.bought[sku] - order.returned.get(sku, 0)
            if quantity > left:
                raise errors.ReturnedMoreThanBought(
                    f"sku {sku!r} of order {order_id!r}: {quantity} returned, "
                    f"{left} of {order.bought[sku]} bought left to return"
                )
        for line in lines:
            sku = line["sku"]
            if Decimal(line["unit_price"]) > order.price[sku]:
                raise errors.ReturnPriceAboveOrder(
                    f"sku {sku!r} returned at {line['unit_price']}, above the "
                    f"{order.price[sku]:.2f} paid in order {order_id!r}"
                )
        for line in lines:
            sku = line["sku"]
            if line["category"] not in order.categories[sku]:
                raise errors.ReturnCategoryNotInOrder(
                    f"sku {sku!r} returned as {line['category']!r}, not a category it had "
                    f"in order {order_id!r}"
                )
