"""The errors the storage port raises: one way for storage to fail, whatever the backend.

Each backend translates its driver's errors into these in one place (sql/base.py,
mongo/base.py); services map them to domain errors."""

from __future__ import annotations

from typing import Literal

from core.storage.records import BookingStatus


class StorageError(Exception):
    """Base of the errors the port raises; services map them to domain errors."""


class DuplicateKey(StorageError):
    """A unique key is taken; `field` names it (email, id, client_id, idempotency_key…)."""

    def __init__(self, field: str) -> None:
        super().__init__(f"duplicate {field}")
        self.field = field


class KeyClaimed(StorageError):
    """The caller's Idempotency-Key already made something of another kind (a booking, an
    order: `kind`); nothing was written."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"the key made a {kind}")
        self.kind = kind


class StorageBusy(StorageError):
    """Conflicts persisted through every retry; the caller may try again shortly."""


class StorageUnavailable(StorageError):
    """The database could not be reached, or the connection broke under a write whose commit
    may or may not have happened; the caller may try again (with the same Idempotency-Key)."""


class Missing(StorageError):
    """The record to change does not exist (or is not the given owner's)."""


class VersionMismatch(StorageError):
    def __init__(self, current: int) -> None:
        super().__init__(f"current version is {current}")
        self.current = current


class CapacityBelowActive(StorageError):
    def __init__(self, tier: str, active: int) -> None:
        super().__init__(f"tier {tier} has {active} seats in active bookings")
        self.tier = tier
        self.active = active


class InvalidTransition(StorageError):
    def __init__(self, current: str) -> None:
        super().__init__(f"not allowed from {current}")
        self.current = current


class HasActiveBookings(StorageError):
    pass


class BookingExpired(StorageError):
    pass


class NotPending(StorageError):
    """The booking is not in a state the operation accepts; `current` says which it is."""

    def __init__(self, current: BookingStatus) -> None:
        super().__init__(f"booking is {current}")
        self.current = current


class Refused(StorageError):
    """`reserve` found the seats (or the buyer's allowance) not there; nothing was written."""


class NoSuchTier(Refused):
    pass


class NotOnSale(Refused):
    pass


class SoldOut(Refused):
    def __init__(self, available: int) -> None:
        super().__init__(f"{available} seats left")
        self.available = available


class ItemsShort(Refused):
    """Some tiers of an order lack the seats: (tier, requested, available) for each."""

    def __init__(self, short: list[tuple[str, int, int]]) -> None:
        super().__init__(", ".join(f"{t}: {a} of {r}" for t, r, a in short))
        self.short = short


class InOrder(StorageError):
    """The booking is part of an order: confirm or cancel the order."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"booking is part of order {order_id}")
        self.order_id = order_id


class BuyerLimit(Refused):
    """The buyer's seats in the event (`max_per_user`) or held pending (`max_pending`)."""

    def __init__(self, limit: Literal["max_per_user", "max_pending"]) -> None:
        super().__init__(f"{limit} reached")
        self.limit = limit


class SeatsAvailable(Refused):
    """A waiting list is joined only while the tier lacks the seats asked for."""

    def __init__(self, available: int) -> None:
        super().__init__(f"{available} seats available")
        self.available = available


class WaitlistClosed(Refused):
    """The organizer turned the tier's waiting list off."""


ClaimReason = Literal[
    "code_unknown",
    "code_disabled",
    "code_expired",
    "code_not_yet_valid",
    "code_used_up",
    "code_other_tier",
    "entry_unknown",
    "entry_not_offered",
    "offer_expired",
    "offer_used",
    "offer_quantity",
]


class ClaimRefused(Refused):
    """A booking with an access code or a waiting-list offer that the code or the offer does
    not allow (`reason`); nothing was written."""

    def __init__(self, reason: ClaimReason, detail: int | None = None) -> None:
        super().__init__(reason)
        self.reason: ClaimReason = reason
        self.detail = detail
