"""The answers the read side gives (contract sections 5 and 6), as pydantic models.

The CLI's `--json` and the HTTP API validate every answer with these same models, so the
two cannot drift apart, and the OpenAPI document describes exactly what is served.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Money = dict[str, str]
"""`{currency: "decimal string"}`."""


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Profile(_Answer):
    customer_id: str
    cards: list[str] = Field(description="card ids held now, sorted")
    retired_cards: list[str] = Field(description="card ids it held and replaced, sorted")
    merged_ids: list[str] = Field(
        description="every other customer of its tree of merges, sorted (a merged "
        "customer's read answers its root's profile: `customer_id` names the root)"
    )
    enrolled_at: str | None
    name: str | None
    email: str | None
    birth_date: str | None
    marketing_consent: bool
    interaction_count: int
    swipe_count: int
    purchase_count: int
    call_count: int
    total_spend: Money
    last_purchase_at: str | None
    last_interaction_at: str | None
    top_categories: list[str] = Field(max_length=3)
    categories: list[str]
    complaints_total: int
    complaints_open: int
    nps: int | None
    return_count: int = Field(description="returns that count for the customer")
    total_refunded: Money = Field(description="refunds per currency")
    net_spend: Money = Field(description="total_spend less total_refunded, per currency")
    notes_count: int = Field(description="notes about it (`note_added`)")
    last_note_at: str | None = Field(description="the latest `occurred_at` of a note")
    stage: (
        Literal["lead", "qualified", "proposal", "negotiation", "won", "lost", "support"] | None
    ) = Field(description="the stage of the latest note that gave one")


class Contract(_Answer):
    status: Literal["proposed", "active", "terminated"]
    value: str | None
    currency: str | None
    effective_at: str | None
    ends_at: str | None


class PartnerStatus(_Answer):
    partner_id: str
    kind: Literal["vendor", "supplier", "distributor", "reseller"] | None
    status: Literal["at_risk", "active", "prospect", "terminated"]
    contracts: dict[str, Contract]
    active_contract_value: Money
    disputes_open: int
    disputes_total: int
    notes_count: int = Field(description="notes about it (`note_added`)")
    last_note_at: str | None = Field(description="the latest `occurred_at` of a note")
    stage: (
        Literal["lead", "qualified", "proposal", "negotiation", "won", "lost", "support"] | None
    ) = Field(description="the stage of the latest note that gave one")
    renewal_due: list[str] = Field(
        description="active contracts ending within 60 days of today (or already ended)"
    )


class AudienceSummary(_Answer):
    name: str
    description: str
    size: int


class Member(_Answer):
    customer_id: str
    since: str
    reason: str


class AudienceMembers(AudienceSummary):
    """`ledger audience NAME --json`."""

    members: list[Member]


class MembersPage(_Answer):
    """`GET /audiences/{name}/members`: pass `next` as `after` for the following page."""

    members: list[Member]
    next: str | None


class Recorded(_Answer):
    status: Literal["recorded"]
    position: int


ErrorType = Literal["malformed", "invalid", "rule", "conflict", "internal"]
"""Why a message was dead-lettered (contract sections 3 and 8)."""
ERROR_TYPES: tuple[str, ...] = ErrorType.__args__  # type: ignore[attr-defined]


class DeadLettered(_Answer):
    status: Literal["dead_lettered"]
    error_type: ErrorType = Field(
        description="internal: the ledger failed to decide it (a bug); redrive it once fixed"
    )
    error: str


class Health(_Answer):
    status: Literal["ok", "kafka unreachable"]
    position: int = Field(description="the position every projection has reached")
    head: int = Field(description="the ledger's last notification id")
    projection_lag: int = Field(description="head - position: events not yet projected")
    ingest_lag: int | None = Field(
        description="Kafka end offsets - recorded offsets, all partitions (null: Kafka down)"
    )


class HistoryEvent(_Answer):
    position: int = Field(description="the ledger's notification id")
    stream: str
    originator_id: str = Field(description="the store's id of the stream: uuid5 of its name")
    version: int
    type: str
    event_id: str
    occurred_at: str | None
    recorded_at: str
    payload: dict[str, object] = Field(
        description="the interaction, personal fields opened (`[erased]` once forgotten)"
    )
    hashed_payload: dict[str, object] = Field(
        description=(
            "the payload exactly as `hash` covers it (personal fields sealed): "
            "hash = sha256(RFC 8785 of {stream, version, type, payload: hashed_payload, "
            "prev_hash})"
        )
    )
    prev_hash: str
    hash: str


class History(_Answer):
    """`ledger history ID --json` and `GET /customers/{id}/history`."""

    events: list[HistoryEvent]


class Problem(_Answer):
    detail: str


class AudienceStanding(_Answer):
    audience: str
    member: bool = Field(description="false: the customer was a member once and left")
    since: str = Field(description="when the customer last entered or left")
    reason: str = Field(description="why: the tests that flipped, and what caused it")


class ConsentChange(_Answer):
    marketing_consent: bool
    occurred_at: str
    type: Literal["customer_enrolled", "consent_changed"]
    event_id: str


class RejectedMessage(_Answer):
    source_topic: str
    source_partition: int
    source_offset: int
    event_id: str | None
    error_type: str
    error: str
    value: str = Field(description="the message as sent (UTF-8)")
    recorded_at: str


class Export(_Answer):
    """`ledger export ID` and `GET /customers/{id}/export`: everything the ledger holds about
    a person (GDPR articles 15 and 20), personal fields opened."""

    customer_id: str
    position: int = Field(description="the projections' position the profile reflects")
    profile: Profile | None = Field(description="null: not projected yet")
    history: list[HistoryEvent] = Field(description="every recorded event, decrypted")
    audiences: list[AudienceStanding]
    consent: list[ConsentChange] = Field(description="in the order the changes occurred")
    dead_letters: list[RejectedMessage] = Field(
        description="rejected messages naming the customer or its cards, or its name or e-mail"
    )


class Forgotten(_Answer):
    """`ledger forget ID --json` and `DELETE /customers/{id}`."""

    customer_id: str
    event_id: str = Field(description="the customer_forgotten event's id")
    cards: list[str] = Field(description="the cards closed with the customer")
    position: int = Field(description="where the ledger recorded the forgetting")
    first: bool = Field(description="false: the customer had been forgotten before")
    projected: bool = Field(
        description="every projection has forgotten the person (else: not within 5 s)"
    )
