"""What callers ask of storage: the bookings and orders to make, the changes to tiers, the
queries. Records of what is stored are in records.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from core.storage.records import (
    SYSTEM_ACTOR,
    Actor,
    BookingStatus,
    EventStatus,
    new_id,
    new_ticket_number,
)


@dataclass(frozen=True, slots=True)
class ChangeQuery:
    event_id: str | None = None
    subject_id: str | None = None
    type: str | None = None
    actor_id: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    before_id: str | None = None
    limit: int = 20


@dataclass(frozen=True, slots=True)
class TierPatch:
    """A change to one tier: fields left None are kept; an unknown code adds a tier."""

    code: str
    name: str | None = None
    price_cents: int | None = None
    capacity: int | None = None
    hidden: bool | None = None
    waitlist_open: bool | None = None


@dataclass(frozen=True, slots=True)
class CodePatch:
    """A change to an access code: fields left None are kept (`clear_*` empties a bound)."""

    max_uses: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    clear_valid_from: bool = False
    clear_valid_until: bool = False
    discount_percent: int | None = None
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class EventQuery:
    statuses: tuple[EventStatus, ...] = ("published",)
    owner_id: str | None = None
    """When set, only that owner's events."""
    starts_from: datetime | None = None
    starts_to: datetime | None = None
    text: str | None = None
    after_id: str | None = None
    offset: int = 0
    limit: int = 20


@dataclass(frozen=True, slots=True)
class ReserveRequest:
    """One booking to make: the seats, who for, and the limits that apply to this buyer."""

    event_id: str
    tier: str
    quantity: int
    owner_id: str
    now: datetime
    hold_until: datetime | None = None
    """None books `confirmed` at once; a time makes a `pending` hold that expires then."""
    max_per_user: int | None = None
    """Seats this buyer may hold in the event, pending and confirmed (None: no limit)."""
    max_pending: int | None = None
    """Seats this buyer may hold pending in the event (None: no limit)."""
    partner_id: str | None = None
    external_ref: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    actor: Actor = SYSTEM_ACTOR
    booking_id: str = field(default_factory=new_id)
    ticket_number: str = field(default_factory=new_ticket_number)
    change_id: str = field(default_factory=new_id)
    waitlist_entry_id: str | None = None
    """Book the seats this waiting-list entry's offer blocks (exactly its quantity)."""
    access_code: str | None = None
    """Book with this access code of the event: a use counted in the same step."""

    @property
    def claimed(self) -> bool:
        """Whether the booking uses an offer or a code (their own atomic step: claims.py)."""
        return self.waitlist_entry_id is not None or self.access_code is not None

    @property
    def storage_key(self) -> str:
        """The key the unique (owner, key) index holds: the caller's Idempotency-Key, or one
        of our own, so that a write whose outcome a lost connection hid can always be retried
        (a repeat finds the first and returns it instead of booking twice)."""
        return self.idempotency_key or f"auto:{self.booking_id}"

    @property
    def status(self) -> BookingStatus:
        return "pending" if self.hold_until else "confirmed"

    @property
    def pending_quantity(self) -> int:
        return self.quantity if self.hold_until else 0

    @property
    def limited(self) -> bool:
        """Whether a per-buyer limit applies, which makes the buyer's count a guard too."""
        return self.max_per_user is not None or (
            self.max_pending is not None and self.hold_until is not None
        )


class BuyerSeats(Protocol):
    """What a buyer's count needs from a booking or an order."""

    @property
    def event_id(self) -> str: ...
    @property
    def owner_id(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def pending_quantity(self) -> int: ...
    @property
    def max_per_user(self) -> int | None: ...
    @property
    def max_pending(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class OrderItem:
    tier: str
    quantity: int
    booking_id: str = field(default_factory=new_id)
    ticket_number: str = field(default_factory=new_ticket_number)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """Several tiers of one event for one buyer, all or nothing (one booking per item)."""

    event_id: str
    items: tuple[OrderItem, ...]
    owner_id: str
    now: datetime
    hold_until: datetime | None = None
    max_per_user: int | None = None
    max_pending: int | None = None
    partner_id: str | None = None
    external_ref: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    actor: Actor = SYSTEM_ACTOR
    order_id: str = field(default_factory=new_id)

    @property
    def quantity(self) -> int:
        return sum(item.quantity for item in self.items)

    @property
    def pending_quantity(self) -> int:
        return self.quantity if self.hold_until else 0

    @property
    def limited(self) -> bool:
        return self.max_per_user is not None or (
            self.max_pending is not None and self.hold_until is not None
        )

    @property
    def storage_key(self) -> str:
        return self.idempotency_key or f"auto:{self.order_id}"

    def booking(self, item: OrderItem) -> ReserveRequest:
        """The booking of one item, as a single booking would be made."""
        return ReserveRequest(
            event_id=self.event_id,
            tier=item.tier,
            quantity=item.quantity,
            owner_id=self.owner_id,
            now=self.now,
            hold_until=self.hold_until,
            partner_id=self.partner_id,
            external_ref=self.external_ref,
            idempotency_key=None,
            actor=self.actor,
            booking_id=item.booking_id,
            ticket_number=item.ticket_number,
        )


@dataclass(frozen=True, slots=True)
class OrderQuery:
    owner_id: str | None = None
    event_id: str | None = None
    status: BookingStatus | None = None
    before_id: str | None = None
    limit: int = 20


@dataclass(frozen=True, slots=True)
class BookingQuery:
    owner_id: str | None = None
    event_id: str | None = None
    status: BookingStatus | None = None
    before_id: str | None = None
    limit: int = 20
