"""Pydantic models of the inbound interactions (contract section 4, schema version 1).

One strict model per `type` (`InteractionType`), joined in a discriminated union on `type`.
The models only validate: the recorded payload is the producer's own JSON object (unknown
fields kept), see `domain.interactions`. The field types (money, dates, times, ids) and the
envelope every model shares are in `domain.schema_fields`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, Inexact
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, model_validator
from pydantic_core import PydanticCustomError

from domain.schema_fields import (
    _EXACT,
    _NONE,
    MAX_SAFE_INT,
    Count,
    Currency,
    Date,
    Id,
    Money,
    Text,
    _Common,
    _Model,
    money_text,
)


class InteractionType(StrEnum):
    """The `type` of an inbound interaction (contract section 4), one model each below.

    A `StrEnum`: each member is the very string the contract, the stored payloads and the
    JSON use (`InteractionType.PURCHASE == "purchase"`), so nothing stored or sent changes.
    The folds and rules compare with the plain strings: on Python 3.11 reading an enum
    member costs ~100 ns, against ~20 ns for a literal, on the hottest path of ingest.
    """

    CUSTOMER_ENROLLED = "customer_enrolled"
    CARD_SWIPED = "card_swiped"
    PURCHASE = "purchase"
    CALL = "call"
    COMPLAINT_FILED = "complaint_filed"
    COMPLAINT_RESOLVED = "complaint_resolved"
    SURVEY_ANSWERED = "survey_answered"
    CONSENT_CHANGED = "consent_changed"
    CONTRACT_CHANGED = "contract_changed"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_RESOLVED = "dispute_resolved"
    NOTE_ADDED = "note_added"
    PURCHASE_RETURNED = "purchase_returned"
    CARD_REPLACED = "card_replaced"
    CUSTOMERS_MERGED = "customers_merged"
    CUSTOMERS_UNMERGED = "customers_unmerged"


PARTNER_TYPES = frozenset(
    {
        InteractionType.CONTRACT_CHANGED,
        InteractionType.DISPUTE_OPENED,
        InteractionType.DISPUTE_RESOLVED,
    }
)
"""The interactions recorded on a partner's stream; every other one is a customer's or a
card's, but `note_added`, which is a partner's when it names `partner_id` rather than
`customer_id` (`on_partner_stream`)."""


def on_partner_stream(type: str, payload: Mapping[str, Any]) -> bool:
    """Whether an interaction of this type and payload is a partner's: recorded on the
    partner's stream and folded into its status (the key rule: customer_id, else card_id,
    else partner_id)."""
    return type in PARTNER_TYPES or (type == "note_added" and "customer_id" not in payload)


class CustomerEnrolled(_Common):
    type: Literal[InteractionType.CUSTOMER_ENROLLED]
    customer_id: Id
    card_id: Id
    # Personal data (see domain.personal): encrypted per customer by the data-rights work.
    name: str = Field(default=_NONE, json_schema_extra={"x-personal-data": True})
    email: str = Field(default=_NONE, json_schema_extra={"x-personal-data": True})
    birth_date: Date = Field(default=_NONE, json_schema_extra={"x-personal-data": True})
    marketing_consent: bool = False


class CardSwiped(_Common):
    type: Literal[InteractionType.CARD_SWIPED]
    card_id: Id
    store_id: Id
    customer_id: Id = Field(default=_NONE)


class PurchaseLine(_Model):
    sku: Id
    category: Text
    quantity: Annotated[int, Field(gt=0, le=MAX_SAFE_INT)]
    unit_price: Money


class Purchase(_Common):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["customer_id"]}, {"required": ["card_id"]}]}
    )
    type: Literal[InteractionType.PURCHASE]
    customer_id: Id = Field(default=_NONE)
    card_id: Id = Field(default=_NONE)
    store_id: Id
    order_id: Id
    currency: Currency
    total: Money = Field(description="Must equal the sum of quantity * unit_price.")
    lines: list[PurchaseLine] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Purchase:
        return _basket_checked(self)


def _basket_checked(basket: Any) -> Any:
    """A purchase's or a return's rules across fields: a holder (customer_id or card_id),
    and a total equal to the sum of quantity * unit_price, added exactly."""
    if basket.customer_id is None and basket.card_id is None:
        raise PydanticCustomError(
            "missing_holder", "missing field 'customer_id' or 'card_id' (one is needed)"
        )
    try:
        lines_sum = Decimal(0)
        for line in basket.lines:
            lines_sum = _EXACT.add(lines_sum, _EXACT.multiply(line.unit_price, line.quantity))
    except Inexact:
        raise PydanticCustomError(
            "total_mismatch", "total: amounts too large to add up exactly"
        ) from None
    if lines_sum != basket.total:
        raise PydanticCustomError(
            "total_mismatch",
            "total: {total} is not the sum of the lines ({lines_sum})",
            {"total": money_text(basket.total), "lines_sum": money_text(lines_sum)},
        )
    return basket


class Call(_Common):
    type: Literal[InteractionType.CALL]
    customer_id: Id
    direction: Literal["inbound", "outbound"]
    duration_seconds: Count
    topic: Text = Field(json_schema_extra={"x-personal-data": True})
    agent_id: Id = Field(default=_NONE)


class ComplaintFiled(_Common):
    type: Literal[InteractionType.COMPLAINT_FILED]
    customer_id: Id
    complaint_id: Id
    category: Text
    severity: Literal["low", "medium", "high"]
    description: str = Field(default=_NONE, json_schema_extra={"x-personal-data": True})


class ComplaintResolved(_Common):
    type: Literal[InteractionType.COMPLAINT_RESOLVED]
    customer_id: Id
    complaint_id: Id
    resolution: Text = Field(json_schema_extra={"x-personal-data": True})
    satisfied: bool = Field(default=_NONE)


class SurveyAnswered(_Common):
    type: Literal[InteractionType.SURVEY_ANSWERED]
    customer_id: Id
    survey_id: Id
    score: Annotated[int, Field(ge=0, le=10)]


class ConsentChanged(_Common):
    type: Literal[InteractionType.CONSENT_CHANGED]
    customer_id: Id
    marketing_consent: bool


class ContractChanged(_Common):
    type: Literal[InteractionType.CONTRACT_CHANGED]
    partner_id: Id
    contract_id: Id
    change: Literal["proposed", "signed", "amended", "renewed", "terminated"]
    partner_kind: Literal["vendor", "supplier", "distributor", "reseller"] = Field(default=_NONE)
    value: Money = Field(default=_NONE)
    currency: Currency = Field(default=_NONE)
    effective_at: Date = Field(default=_NONE)
    ends_at: Date = Field(default=_NONE)


class DisputeOpened(_Common):
    type: Literal[InteractionType.DISPUTE_OPENED]
    partner_id: Id
    dispute_id: Id
    reason: Text


class DisputeResolved(_Common):
    type: Literal[InteractionType.DISPUTE_RESOLVED]
    partner_id: Id
    dispute_id: Id
    resolution: Text


class NoteAdded(_Common):
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [{"required": ["customer_id"]}, {"required": ["partner_id"]}],
            "description": "A note staff wrote about a customer or a partner (contract "
            "section 8). A customer's note's text is personal data; a partner's is not.",
        }
    )
    type: Literal[InteractionType.NOTE_ADDED]
    note_id: Id = Field(description="Unique per customer or partner.")
    author: Text
    text: Text = Field(json_schema_extra={"x-personal-data": True})
    customer_id: Id = Field(default=_NONE)
    partner_id: Id = Field(default=_NONE)
    stage: Literal["lead", "qualified", "proposal", "negotiation", "won", "lost", "support"] = (
        Field(default=_NONE, description="Where the sales cycle stands, as of this note.")
    )

    @model_validator(mode="after")
    def _check(self) -> NoteAdded:
        if (self.customer_id is None) == (self.partner_id is None):
            raise PydanticCustomError(
                "note_subject", "exactly one of 'customer_id' or 'partner_id' is needed"
            )
        return self


class PurchaseReturned(_Common):
    """Goods of an earlier purchase brought back (contract section 8): recorded on the
    stream the purchase was, and checked against its order there (`domain.returns`)."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["customer_id"]}, {"required": ["card_id"]}]}
    )
    type: Literal[InteractionType.PURCHASE_RETURNED]
    customer_id: Id = Field(default=_NONE)
    card_id: Id = Field(default=_NONE)
    store_id: Id
    order_id: Id = Field(description="The order of the purchase the goods came from.")
    return_id: Id = Field(description="Unique per customer or card, across orders.")
    currency: Currency = Field(description="The order's currency.")
    total: Money = Field(description="The refund: the sum of quantity * unit_price.")
    lines: list[PurchaseLine] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> PurchaseReturned:
        return _basket_checked(self)


class CardReplaced(_Common):
    """A customer's card replaced by a new one (contract section 8): from now on the
    customer holds `new_card_id`, and `old_card_id` is retired for good."""

    type: Literal[InteractionType.CARD_REPLACED]
    customer_id: Id
    old_card_id: Id = Field(description="A card the customer holds now.")
    new_card_id: Id = Field(description="A card nobody holds, never retired.")
    reason: Literal["lost", "stolen", "damaged", "upgrade"] = Field(default=_NONE)

    @model_validator(mode="after")
    def _check(self) -> CardReplaced:
        if self.old_card_id == self.new_card_id:
            raise PydanticCustomError("same_card", "'new_card_id' must not equal 'old_card_id'")
        return self


class CustomersMerged(_Common):
    """Two enrollments of one person joined (contract section 8): `merged_id` is merged
    directly into `survivor_id`, and counts for the root of its tree from now on. Recorded
    on the survivor's stream (the key is `survivor_id`)."""

    type: Literal[InteractionType.CUSTOMERS_MERGED]
    survivor_id: Id = Field(description="The customer merged into; the key.")
    merged_id: Id = Field(description="A customer merged into nobody now.")
    reason: Text = Field(
        default=_NONE,
        json_schema_extra={"x-personal-data": True},
        description="Free text, sealed with the survivor's key.",
    )

    @model_validator(mode="after")
    def _check(self) -> CustomersMerged:
        return _two_customers(self)


class CustomersUnmerged(_Common):
    """A merge undone (contract section 8): both sides are folded again from their own
    trees. Recorded on the survivor's stream (the key is `survivor_id`)."""

    type: Literal[InteractionType.CUSTOMERS_UNMERGED]
    survivor_id: Id = Field(description="The customer `merged_id` is merged directly into.")
    merged_id: Id
    reason: Text = Field(
        default=_NONE,
        json_schema_extra={"x-personal-data": True},
        description="Free text, sealed with the survivor's key.",
    )

    @model_validator(mode="after")
    def _check(self) -> CustomersUnmerged:
        return _two_customers(self)


def _two_customers(model: Any) -> Any:
    if model.survivor_id == model.merged_id:
        raise PydanticCustomError("same_customer", "'merged_id' must not equal 'survivor_id'")
    return model


MODELS: tuple[type[_Common], ...] = (
    CustomerEnrolled,
    CardSwiped,
    Purchase,
    Call,
    ComplaintFiled,
    ComplaintResolved,
    SurveyAnswered,
    ConsentChanged,
    ContractChanged,
    DisputeOpened,
    DisputeResolved,
    NoteAdded,
    PurchaseReturned,
    CardReplaced,
    CustomersMerged,
    CustomersUnmerged,
)

AnyInteraction = Annotated[
    CustomerEnrolled
    | CardSwiped
    | Purchase
    | Call
    | ComplaintFiled
    | ComplaintResolved
    | SurveyAnswered
    | ConsentChanged
    | ContractChanged
    | DisputeOpened
    | DisputeResolved
    | NoteAdded
    | PurchaseReturned
    | CardReplaced
    | CustomersMerged
    | CustomersUnmerged,
    Field(discriminator="type"),
]

INTERACTION_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyInteraction)
"""Built once at import: validating is then a call into pydantic-core."""
