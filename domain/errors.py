"""Named domain errors: each broken rule becomes a `rule` rejection with a readable reason."""

from __future__ import annotations


class RuleViolation(Exception):
    """An interaction that is valid alone but impossible in its stream (contract section 4)."""

    error_type = "rule"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ComplaintAlreadyFiled(RuleViolation):
    pass


class UnknownComplaint(RuleViolation):
    pass


class ComplaintAlreadyResolved(RuleViolation):
    pass


class DisputeAlreadyOpened(RuleViolation):
    pass


class UnknownDispute(RuleViolation):
    pass


class DisputeAlreadyResolved(RuleViolation):
    pass


class ContractOutOfOrder(RuleViolation):
    pass


class CardHeldByAnother(RuleViolation):
    pass


class NoteAlreadyAdded(RuleViolation):
    pass


class UnknownOrder(RuleViolation):
    """A return names an order with no purchase on its stream."""


class ReturnCurrencyMismatch(RuleViolation):
    pass


class ReturnAlreadyRecorded(RuleViolation):
    pass


class ReturnedSkuNotInOrder(RuleViolation):
    pass


class ReturnedMoreThanBought(RuleViolation):
    """Over all returns of the order, more of a sku than it bought."""


class ReturnPriceAboveOrder(RuleViolation):
    """A line's unit price above the highest the order paid for that sku."""


class ReturnCategoryNotInOrder(RuleViolation):
    pass


class CustomerForgotten(RuleViolation):
    """The customer was forgotten (`ledger forget`): nothing more is recorded about them."""


class CardNotHeld(RuleViolation):
    """A replacement names an old card its customer does not hold now."""


class CardRetired(RuleViolation):
    """An enrollment or a replacement would hold a card that was replaced (retired for good)."""


class CardReplaced(RuleViolation):
    """A swipe or purchase naming only a retired card, made at or after its replacement."""


class CustomerNotEnrolled(RuleViolation):
    """A merge names a customer never enrolled."""


class AlreadyMerged(RuleViolation):
    """A merge's `merged_id` is merged into someone now."""


class MergeLoop(RuleViolation):
    """A merge's survivor belongs to the tree of its `merged_id`."""


class NotMergedInto(RuleViolation):
    """An unmerge whose `merged_id` is not merged directly into its survivor now."""
